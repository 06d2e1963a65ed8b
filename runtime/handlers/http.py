"""Rendering for the API Gateway handlers: JSON responses, errors, and the raw request body."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.metrics import MetricUnit

from runtime.api_errors import ApiError

# Re-exported: the body rules are framework-neutral (the container service uses them too), and
# the Lambda handlers import every rendering helper from this module.
from runtime.api_errors import parse_json_object as parse_json_object

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


def register_common_errors(
    app: APIGatewayRestResolver, *, logger: Logger, metrics: Metrics
) -> None:
    """Unknown routes, :class:`ApiError` and anything unexpected, the same way in every API.

    Registered by call: Powertools' decorators are untyped, which strict mypy rejects on a def.
    The resolver picks the handler of the most specific class in the exception's MRO, so a
    module's own handlers (registered before or after) win over ``Exception``.
    """

    def handle_api_error(error: ApiError) -> Response[str]:
        metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
        return error_response(error)

    def handle_unknown_route(_: NotFoundError) -> Response[str]:
        return handle_api_error(ApiError(404, "not_found", "no such route"))

    def handle_unexpected(_: Exception) -> Response[str]:
        metrics.add_metric(name="InternalErrors", unit=MetricUnit.Count, value=1)
        # The traceback goes to the logs only, never into the response.
        logger.exception("unhandled error")
        return error_response(ApiError(500, "internal_error", "internal error"))

    app.not_found(handle_unknown_route)
    app.exception_handler(ApiError)(handle_api_error)
    app.exception_handler(Exception)(handle_unexpected)
