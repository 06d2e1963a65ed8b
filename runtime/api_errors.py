"""Client-facing errors, independent of the web framework that renders them.

Every adapter (the Lambda handlers, the container service) turns :class:`ApiError` into the same
JSON shape, ``{"error": {"code", "message"}}``, with the status and headers it carries.
"""

from __future__ import annotations

from collections.abc import Mapping

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
