"""Snapshots of every synthesized template, asset hashes normalised.

A change to any template shows up in review as a snapshot diff; update deliberately with
``make test PYTEST_ARGS=--snapshot-update`` (or ``.venv/bin/pytest --snapshot-update``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.conftest import Synthesized, all_configs

_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
# Lambda version logical ids end in a hash of the function's code and configuration.
_VERSION_ID = re.compile(r"(CurrentVersion[0-9A-F]{8})[0-9a-f]{32}")


def normalise(template: dict[str, Any]) -> Any:
    text = json.dumps(template, sort_keys=True)
    text = _ASSET_HASH.sub("<asset-hash>", text)
    text = _VERSION_ID.sub(r"\1<code-hash>", text)
    return json.loads(text)


def test_normalise_hides_only_hashes() -> None:
    code_hash = "d4e40e04b62f2c5dfe6641d81939a1dc"
    asset_hash = "88a44dd1bd0ec9c7009babdc52e7aad7c2650126597a6a9a37bb63870b891e48"
    template = {
        "Resources": {
            f"FnCurrentVersionD103AE4B{code_hash}": {"Type": "AWS::Lambda::Version"},
            "Fn": {"Properties": {"S3Key": f"{asset_hash}.zip", "MemorySize": 512}},
        }
    }
    assert normalise(template) == {
        "Resources": {
            "FnCurrentVersionD103AE4B<code-hash>": {"Type": "AWS::Lambda::Version"},
            "Fn": {"Properties": {"S3Key": "<asset-hash>.zip", "MemorySize": 512}},
        }
    }


@pytest.mark.parametrize("config_name", [c.name for c in all_configs()])
def test_template_snapshot(
    synth: Synthesized, snapshot: SnapshotAssertion, config_name: str
) -> None:
    template = synth.template(config_name)
    assert normalise(template) == snapshot(extension_class=JSONSnapshotExtension)


@pytest.mark.parametrize("config_name", [c.name for c in all_configs()])
def test_async_template_snapshot(
    synth: Synthesized, snapshot: SnapshotAssertion, config_name: str
) -> None:
    template = synth.template(config_name, "async")
    assert normalise(template) == snapshot(extension_class=JSONSnapshotExtension)


@pytest.mark.parametrize("config_name", [c.name for c in all_configs() if c.container.enabled])
def test_container_template_snapshot(
    synth: Synthesized, snapshot: SnapshotAssertion, config_name: str
) -> None:
    template = synth.template(config_name, "container")
    assert normalise(template) == snapshot(extension_class=JSONSnapshotExtension)


@pytest.mark.parametrize("pattern", ["network", "memory", "frontdoor"])
@pytest.mark.parametrize("config_name", [c.name for c in all_configs() if c.hybrid is not None])
def test_hybrid_template_snapshot(
    synth: Synthesized, snapshot: SnapshotAssertion, config_name: str, pattern: str
) -> None:
    template = synth.template(config_name, pattern)
    assert normalise(template) == snapshot(extension_class=JSONSnapshotExtension)


@pytest.mark.parametrize("config_name", [c.name for c in all_configs() if c.operations is not None])
def test_cost_template_snapshot(
    synth: Synthesized, snapshot: SnapshotAssertion, config_name: str
) -> None:
    template = synth.template(config_name, "cost")
    assert normalise(template) == snapshot(extension_class=JSONSnapshotExtension)


# The stacks the tests above snapshot one by one, per config.
_PATTERNS = ("serverless", "async", "container", "network", "memory", "frontdoor", "cost")


@pytest.mark.parametrize("config_name", [c.name for c in all_configs()])
def test_every_other_stack_is_snapshotted(
    synth: Synthesized, snapshot: SnapshotAssertion, config_name: str
) -> None:
    # The operations stacks (backup, WAF, edge ACL, DR keys and registry, the standby region's
    # copies): one snapshot per config holding each of them by stack name, so a stack added later
    # lands in a snapshot without a new test.
    covered = {f"{config_name}-{pattern}" for pattern in _PATTERNS}
    others = {
        name: normalise(template)
        for name, template in sorted(synth.templates.items())
        if name.startswith(f"{config_name}-") and name not in covered
    }
    assert others == snapshot(extension_class=JSONSnapshotExtension)
