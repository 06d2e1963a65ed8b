"""Small readers of synthesized CloudFormation templates, shared by the stack tests."""

from __future__ import annotations

import json
from typing import Any


def of_type(template: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == resource_type]


def ids_of_type(template: dict[str, Any], resource_type: str) -> list[str]:
    return [k for k, r in template["Resources"].items() if r["Type"] == resource_type]


def one(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = of_type(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
    return found[0]


def policy_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s
        for policy in of_type(template, "AWS::IAM::Policy")
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def refers_to(value: Any, logical_id: str) -> bool:
    """Whether ``value`` (a Ref, GetAtt, Join, ...) mentions the resource ``logical_id``."""
    text = json.dumps(value)
    return f'"Ref": "{logical_id}"' in text or f'["{logical_id}",' in text
