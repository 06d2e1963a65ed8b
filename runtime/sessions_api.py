"""The sessions API's rules, independent of the web framework that serves them.

Two adapters serve the same routes: the API Gateway Lambda (:mod:`runtime.handlers.serverless_api`)
and the container service (:mod:`runtime.service`)::

    POST /sessions/{session_id}/messages   {"message": "...", "expected_version": 3}
    GET  /sessions/{session_id}

What a valid request is, which status a failed step gets and what an answer looks like are decided
here once, so a client sees the same API whichever pattern is deployed. Adapters add only their
framework's rendering, logs and metrics.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.agent import StepResult
from runtime.api_errors import ApiError, describe_validation_error, parse_json_object
from runtime.llm.types import LLMError, LLMRateLimitedError, LLMTimeoutError
from runtime.session_store import (
    Session,
    SessionConflictError,
    SessionStoreUnavailableError,
    SessionTooLargeError,
)

SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
# Providers' rate windows are short; a fixed hint keeps clients from hammering without a number
# the LLM client does not expose.
RATE_LIMIT_RETRY_AFTER_SECONDS = 10
# A store outage is a network blip or a failover (ElastiCache promotes a replica in seconds).
STORE_RETRY_AFTER_SECONDS = 5

StepFailure = SessionConflictError | SessionTooLargeError | SessionStoreUnavailableError | LLMError
"""A step that failed for a reason the client can act on; anything else is a bug (500)."""
STEP_FAILURES = (SessionConflictError, SessionTooLargeError, SessionStoreUnavailableError, LLMError)


class StepRequest(BaseModel):
    # strict: "3" or true is not a version, and a typo'd field name must not be silently ignored.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    message: str = Field(min_length=1)
    expected_version: int | None = Field(default=None, ge=0)


def check_session_id(session_id: str) -> None:
    if SESSION_ID_PATTERN.fullmatch(session_id) is None:
        raise ApiError(
            400,
            "invalid_session_id",
            "session_id must be 1-128 characters of letters, digits and _ . : - "
            "starting with a letter or digit",
        )


def parse_step_request(
    raw: bytes, *, max_body_bytes: int, max_message_chars: int, what: str = "body"
) -> StepRequest:
    """The step request in ``raw``, or the 413 / 400 :class:`ApiError` that says what is wrong.

    ``what`` names the payload in the messages: ``"body"`` (HTTP) or ``"frame"`` (WebSocket).
    """
    data = parse_json_object(raw, max_body_bytes=max_body_bytes, what=what)
    try:
        request = StepRequest.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "validation_error", describe_validation_error(exc)) from None
    if len(request.message) > max_message_chars:
        raise ApiError(
            400,
            "validation_error",
            f"message: must be at most {max_message_chars} characters",
        )
    return request


def step_failure(error: StepFailure) -> ApiError:
    """What the client is told when a step raised ``error`` (the session is unchanged)."""
    if isinstance(error, SessionConflictError):
        return ApiError(409, "conflict", str(error))
    if isinstance(error, SessionTooLargeError):
        # 409, not 413: the request is fine, the stored session has no room for another turn.
        return ApiError(409, "session_too_large", str(error))
    if isinstance(error, SessionStoreUnavailableError):
        # The store's own message (hosts, the failing command) stays in the logs.
        return ApiError(
            503,
            "store_unavailable",
            "the session store is unavailable; retry later",
            headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(error, LLMTimeoutError):
        return ApiError(
            504, "llm_timeout", "the model did not answer in time; the session is unchanged"
        )
    if isinstance(error, LLMRateLimitedError):
        return ApiError(
            503,
            "llm_rate_limited",
            "the model provider is rate limiting requests; retry later",
            headers={"Retry-After": str(RATE_LIMIT_RETRY_AFTER_SECONDS)},
        )
    # The provider's own text stays in the logs: it may quote the prompt or name internals.
    return ApiError(502, "llm_error", "the model provider failed; the session is unchanged")


def step_response(result: StepResult) -> dict[str, Any]:
    return {
        "session_id": result.session_id,
        "output": result.output,
        "version": result.version,
        "iterations": result.iterations,
        "stop_reason": result.stop_reason,
        "usage": {
            "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens,
        },
    }


def session_response(session: Session | None, session_id: str) -> dict[str, Any]:
    """The stored session, or a 404 :class:`ApiError` when it does not exist or has expired."""
    if session is None:
        raise ApiError(404, "not_found", f"session {session_id!r} does not exist or has expired")
    return {
        "session_id": session.session_id,
        "version": session.version,
        "messages": [message.to_dict() for message in session.messages],
        "created_at": session.created_at,
        "updated_at": session.updated_at,
        "expires_at": session.expires_at,
    }
