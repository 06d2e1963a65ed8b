"""Rendering for the API Gateway handlers: JSON responses, errors, and the raw request body."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response, content_types

from runtime.api_errors import ApiError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent


def json_response(
    status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(payload, ensure_ascii=False),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error_response(error: ApiError) -> Response[str]:
    return json_response(error.status, error.to_dict(), error.headers)


def raw_body(event: APIGatewayProxyEvent) -> bytes:
    """The body exactly as the client sent it: signatures are computed over these bytes."""
    body = event.body
    if body is None:
        return b""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "invalid_body", "the body is not valid base64") from None
    return body.encode("utf-8")


def parse_json_object(raw: bytes, *, max_body_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, or a 413 / 400 that says what is wrong with it."""
    if len(raw) > max_body_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"the body is {len(raw)} bytes; the limit is {max_body_bytes}",
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers both malformed JSON and bytes that are not UTF-8.
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "validation_error", "body: must be a JSON object")
    return data
