"""Acknowledge a cdk-nag finding or skip a checkov check on one resource, always with a reason.

cdk-nag v3 accepts an empty reason and checkov accepts a missing comment; this project does not.
Every acknowledgement made here must also appear, with the same reason, in
``quality/acknowledgements.yaml``: ``tests/infra/test_acknowledgements.py`` compares the two, so a
new exception to a security rule is always a reviewed change to that file.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Acknowledgment, CfnResource, Validations

from constructs import IConstruct

MIN_REASON_LENGTH = 25
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
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=check_reason(rule_id, reason)))


def skip_checkov(resource: IConstruct, check_id: str, reason: str) -> None:
    """Skip one checkov check on one CloudFormation resource, with the reason as its comment."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        raise AcknowledgementError(f"{check_id}: {resource.node.path} has no CloudFormation resource")
    comment = check_reason(check_id, reason)
    existing: Any = cfn.get_metadata("checkov") or {}
    skips = list(existing.get("skip", []))
    skips.append({"id": check_id, "comment": comment})
    cfn.add_metadata("checkov", {"skip": skips})
