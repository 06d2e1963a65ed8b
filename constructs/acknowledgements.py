"""Acknowledge a cdk-nag finding or skip a checkov check on one resource, always with a reason.

cdk-nag v3 accepts an empty reason and checkov accepts a missing comment; this project does not.
Every acknowledgement made here must also appear, with the same reason, in
``quality/acknowledgements.yaml``: ``tests/infra/test_acknowledgements.py`` compares the two, so a
new exception to a security rule is always a reviewed change to that file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aws_cdk import Acknowledgment, CfnResource, Validations

from constructs import IConstruct

MIN_REASON_LENGTH = 25
# Where CDK records acknowledgements on a construct (read by the audit below).
_ACKNOWLEDGED_KEY = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
# Reasons a reviewer cannot check; say what makes the rule not apply instead.
_VAGUE_REASONS = re.compile(r"^\s*(false positive|n/?a|not needed|ignore|todo|tbd)\W*$", re.I)


class AcknowledgementError(ValueError):
    """An acknowledgement without a checkable reason."""


def check_reason(rule_id: str, reason: str | None) -> str:
    """Return the reason, or raise naming the rule and what a usable reason looks like."""
    text = (reason or "").strip()
    if len(text) < MIN_REASON_LENGTH or _VAGUE_REASONS.match(text):
        raise AcknowledgementError(
            f"{rule_id}: the reason must say why the rule does not apply to this resource "
            f"(at least {MIN_REASON_LENGTH} characters, not 'false positive'); got {reason!r}"
        )
    return text


def acknowledge_nag(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge a cdk-nag finding (``AwsSolutions-IAM5[Resource::*]`` style) on ``scope``."""
    Validations.of(scope).acknowledge(
        Acknowledgment(id=rule_id, reason=check_reason(rule_id, reason))
    )


def skip_checkov(resource: IConstruct, check_id: str, reason: str) -> None:
    """Skip one checkov check on one CloudFormation resource, with the reason as its comment."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        raise AcknowledgementError(
            f"{check_id}: {resource.node.path} has no CloudFormation resource"
        )
    comment = check_reason(check_id, reason)
    existing: Any = cfn.get_metadata("checkov") or {}
    skips = list(existing.get("skip", []))
    skips.append({"id": check_id, "comment": comment})
    cfn.add_metadata("checkov", {"skip": skips})


# --- Audit: what the app acknowledges, against the checked-in allow-list -------------------------


@dataclass(frozen=True, order=True)
class Acknowledged:
    """One exception to a rule: ``kind`` is ``nag`` or ``checkov``; ``path`` is below the stack."""

    kind: str
    path: str
    rule: str
    reason: str


def collect_acknowledgements(root: IConstruct) -> set[Acknowledged]:
    """Every cdk-nag acknowledgement and checkov skip under ``root``, whichever API made it."""
    found: set[Acknowledged] = set()
    for node in root.node.find_all():
        path = _path_below_stack(node)
        for entry in node.node.metadata:
            if entry.type == _ACKNOWLEDGED_KEY:
                for rule, reason in dict(entry.data).items():
                    found.add(Acknowledged("nag", path, rule.removeprefix("Annotation::"), reason))
        if isinstance(node, CfnResource):
            checkov: Any = node.get_metadata("checkov") or {}
            for skip in checkov.get("skip", []):
                found.add(Acknowledged("checkov", path, skip["id"], skip.get("comment") or ""))
    return found


def collect_from_assembly(outdir: Path, stacks: Collection[str] | None = None) -> set[Acknowledged]:
    """The same set as :func:`collect_acknowledgements` of an app, read from the cloud assembly
    it was synthesized to (``outdir``): each stack's metadata file keeps every construct's
    acknowledgements and logical id by construct path, and the template keeps the checkov skips.

    Reading files is about a thousand times cheaper than walking a large construct tree through
    jsii, one call per node and per metadata entry (tests/infra/test_acknowledgements.py checks
    that both give the same set). ``stacks``: only these stack artifacts (their ids).
    """
    found: set[Acknowledged] = set()
    seen: set[str] = set()
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    for artifact_id, artifact in manifest["artifacts"].items():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        if stacks is not None and artifact_id not in stacks:
            continue
        seen.add(artifact_id)
        metadata: dict[str, list[dict[str, Any]]] = dict(artifact.get("metadata") or {})
        if "additionalMetadataFile" in artifact:
            extra = outdir / artifact["additionalMetadataFile"]
            metadata.update(json.loads(extra.read_text(encoding="utf-8")))
        template_file = outdir / artifact["properties"]["templateFile"]
        resources = json.loads(template_file.read_text(encoding="utf-8")).get("Resources", {})
        for construct_path, entries in metadata.items():
            # "/<stack>/<path below the stack>", as _path_below_stack gives it.
            path = construct_path.lstrip("/").partition("/")[2]
            for entry in entries:
                if entry["type"] == _ACKNOWLEDGED_KEY:
                    for rule, reason in entry["data"].items():
                        found.add(
                            Acknowledged("nag", path, rule.removeprefix("Annotation::"), reason)
                        )
                elif entry["type"] == "aws:cdk:logicalId":
                    resource = resources.get(entry["data"], {})
                    checkov = resource.get("Metadata", {}).get("checkov") or {}
                    for skip in checkov.get("skip", []):
                        found.add(
                            Acknowledged("checkov", path, skip["id"], skip.get("comment") or "")
                        )
    missing = sorted(set(stacks or ()) - seen)
    if missing:
        raise ValueError(f"collect_from_assembly: no stack artifact {missing} in {outdir}")
    return found


def load_allowlist(path: Path) -> set[Acknowledged]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {
        Acknowledged(kind, item["path"], item["rule"], item["reason"])
        for kind in ("nag", "checkov")
        for item in data.get(kind) or []
    }


def audit(found: set[Acknowledged], allowlist: set[Acknowledged]) -> list[str]:
    """Problems that make the acknowledgements ``found`` (:func:`collect_acknowledgements`,
    :func:`collect_from_assembly`) unacceptable; an empty list means all is well."""
    problems = []
    for ack in sorted(found):
        try:
            check_reason(ack.rule, ack.reason)
        except AcknowledgementError as exc:
            problems.append(f"{ack.kind} {ack.path}: {exc}")
        if ack not in allowlist:
            problems.append(
                f"{ack.kind} {ack.path} {ack.rule}: not in the allow-list with this exact reason"
            )
    for ack in sorted(allowlist - found):
        problems.append(f"{ack.kind} {ack.path} {ack.rule}: allow-listed but no longer made")
    return problems


def _path_below_stack(node: IConstruct) -> str:
    # Stack ids carry the config's name; the allow-list holds for every config.
    return node.node.path.partition("/")[2]
