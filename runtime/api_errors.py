"""Client-facing errors, independent of the web framework that renders them.

Every adapter (the Lambda handlers, the container service) turns :class:`ApiError` into the same
JSON shape, ``{"error": {"code", "message"}}``, with the status and headers it carries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def describe_validation_error(exc: ValidationError) -> str:
    # Location and message only: pydantic's full text echoes the input values back.
    parts = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def parse_json_object(raw: bytes, *, max_body_bytes: int, what: str = "body") -> dict[str, Any]:
    """The body as a JSON object, or a 413 / 400 that says what is wrong with it.

    ``what`` names the payload in the messages (a WebSocket frame is not a body).
    """
    if len(raw) > max_body_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"the {what} is {len(raw)} bytes; the limit is {max_body_bytes}",
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers both malformed JSON and bytes that are not UTF-8.
        raise ApiError(400, "invalid_json", f"the {what} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "validation_error", f"{what}: must be a JSON object")
    return data
