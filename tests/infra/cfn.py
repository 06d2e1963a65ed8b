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


# A config with ``dr`` builds global tables (AWS::DynamoDB::GlobalTable); others a Table.
TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")


def tables(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] in TABLE_TYPES]


def one_table(template: dict[str, Any]) -> dict[str, Any]:
    found = tables(template)
    assert len(found) == 1, f"expected one table, found {len(found)}"
    return found[0]


def table_properties(table: dict[str, Any]) -> dict[str, Any]:
    """A table's properties as a Table states them, for a Table or a GlobalTable.

    A GlobalTable keeps PITR, deletion protection, the key and tags per replica; this merges in
    the replica of the template's own region (the one whose key is a resource of the template).
    """
    props: dict[str, Any] = table["Properties"]
    if table["Type"] != "AWS::DynamoDB::GlobalTable":
        return props
    [local] = [
        r
        for r in props["Replicas"]
        if "Fn::GetAtt" in json.dumps(r.get("SSESpecification", {}).get("KMSMasterKeyId"))
    ]
    own = {k: v for k, v in local.items() if k not in ("Region", "SSESpecification")}
    merged = {**props, **own}
    merged["SSESpecification"] = {**props["SSESpecification"], **local["SSESpecification"]}
    return merged
