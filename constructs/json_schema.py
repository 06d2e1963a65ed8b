"""Turn a plain JSON Schema document into API Gateway's ``JsonSchema``, keyword by keyword.

The runtime owns request schemas as plain dicts (``runtime/tasks/schema.py``) and validates
bodies with them; the API's request model is built from the same dict here, so the gateway and
the handler cannot drift apart. Only the draft-04 keywords those schemas use are converted; any
other keyword is an error rather than silently dropped, which would make the gateway accept
less strictly than the handler without anyone noticing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import aws_apigateway as apigw

_TYPES = {
    "object": apigw.JsonSchemaType.OBJECT,
    "string": apigw.JsonSchemaType.STRING,
    "integer": apigw.JsonSchemaType.INTEGER,
    "number": apigw.JsonSchemaType.NUMBER,
    "boolean": apigw.JsonSchemaType.BOOLEAN,
    "array": apigw.JsonSchemaType.ARRAY,
    "null": apigw.JsonSchemaType.NULL,
}
# Keywords whose value is copied as is, by their CDK argument name.
_SCALARS = {
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "maxProperties": "max_properties",
    "required": "required",
}
SUPPORTED_KEYWORDS = frozenset({"type", "properties", "additionalProperties", *_SCALARS})


def to_api_gateway_schema(schema: Mapping[str, Any], *, path: str = "$") -> apigw.JsonSchema:
    """The draft-04 ``apigw.JsonSchema`` equal to ``schema``; ``path`` names nested errors."""
    unknown = sorted(set(schema) - SUPPORTED_KEYWORDS)
    if unknown:
        raise ValueError(
            f"{path}: JSON Schema keyword(s) {', '.join(unknown)} not supported by the API "
            f"Gateway model converter; supported: {', '.join(sorted(SUPPORTED_KEYWORDS))}"
        )
    args: dict[str, Any] = {
        _SCALARS[key]: value for key, value in schema.items() if key in _SCALARS
    }
    if "type" in schema:
        if schema["type"] not in _TYPES:
            raise ValueError(f"{path}: unknown JSON Schema type {schema['type']!r}")
        args["type"] = _TYPES[schema["type"]]
    if "properties" in schema:
        args["properties"] = {
            name: to_api_gateway_schema(sub, path=f"{path}.properties.{name}")
            for name, sub in schema["properties"].items()
        }
    if "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        args["additional_properties"] = (
            extra
            if isinstance(extra, bool)
            else to_api_gateway_schema(extra, path=f"{path}.additionalProperties")
        )
    if path == "$":
        args["schema"] = apigw.JsonSchemaVersion.DRAFT4
    return apigw.JsonSchema(**args)
