"""Lambda handler for the serverless agent behind API Gateway (REST API, proxy integration).

Each request restores the session from DynamoDB, runs one agent step and saves it back with a
fresh TTL (:func:`runtime.agent.run_step`). Routes::

    POST /sessions/{session_id}/messages   {"message": "...", "expected_version": 3}
    GET  /sessions/{session_id}

Every error is ``{"error": {"code", "message"}}`` with a meaningful status; stack traces only go
to the logs. boto3, httpx, the DynamoDB store and the LLM factory are imported on the first
request, inside :func:`dependencies`, so the cold start only loads what the handler itself needs.
Tests swap the dependencies with :func:`set_dependencies`.
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.agent import run_step
from runtime.api_errors import ApiError, describe_validation_error
from runtime.handlers.http import (
    error_response,
    json_response,
    parse_json_object,
    raw_body,
    register_common_errors,
)
from runtime.llm.types import LLMError, LLMRateLimitedError, LLMTimeoutError
from runtime.session_store import SessionConflictError, SessionTooLargeError
from runtime.settings import RuntimeSettings
from runtime.wiring import (
    DeadlineLLM,
    Dependencies,
    build_dependencies,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver()

SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
# Providers' rate windows are short; a fixed hint keeps clients from hammering without a number
# the LLM client does not expose.
RATE_LIMIT_RETRY_AFTER_SECONDS = 10

_dependencies: Dependencies | None = None


@cache
def settings() -> RuntimeSettings:
    """The environment, validated on first use and then reused for the container's lifetime."""
    return RuntimeSettings.from_env(os.environ)


def dependencies() -> Dependencies:
    global _dependencies
    if _dependencies is None:
        _dependencies = build_dependencies(settings())
    return _dependencies


def set_dependencies(replacement: Dependencies | None) -> None:
    """Use ``replacement`` for the following invocations; ``None`` rebuilds the real ones.

    ``None`` also forgets the cached settings, so a test can change the environment between runs.
    """
    global _dependencies
    _dependencies = replacement
    if replacement is None:
        settings.cache_clear()


class StepRequest(BaseModel):
    # strict: "3" or true is not a version, and a typo'd field name must not be silently ignored.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    message: str = Field(min_length=1)
    expected_version: int | None = Field(default=None, ge=0)


def _check_session_id(session_id: str) -> None:
    if SESSION_ID_PATTERN.fullmatch(session_id) is None:
        raise ApiError(
            400,
            "invalid_session_id",
            "session_id must be 1-128 characters of letters, digits and _ . : - "
            "starting with a letter or digit",
        )


def _parse_step_request(event: APIGatewayProxyEvent, config: RuntimeSettings) -> StepRequest:
    data = parse_json_object(raw_body(event), max_body_bytes=config.max_body_bytes)
    try:
        request = StepRequest.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "validation_error", describe_validation_error(exc)) from None
    if len(request.message) > config.max_message_chars:
        raise ApiError(
            400,
            "validation_error",
            f"message: must be at most {config.max_message_chars} characters",
        )
    return request


def _remaining_seconds() -> float:
    return float(app.lambda_context.get_remaining_time_in_millis()) / 1000.0


@app.post("/sessions/<session_id>/messages")
@tracer.capture_method(capture_response=False)
def post_message(session_id: str) -> Response[str]:
    _check_session_id(session_id)
    deps = dependencies()
    request = _parse_step_request(app.current_event, deps.settings)
    result = run_step(
        store=deps.store,
        llm=DeadlineLLM(deps.llm_factory, _remaining_seconds),
        tools=deps.tools,
        session_id=session_id,
        user_input=request.message,
        max_iterations=deps.settings.agent_max_iterations,
        system_prompt=deps.settings.agent_system_prompt or None,
        expected_version=request.expected_version,
    )
    metrics.add_metric(name="AgentSteps", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="AgentIterations", unit=MetricUnit.Count, value=result.iterations)
    metrics.add_metric(name="ToolCalls", unit=MetricUnit.Count, value=len(result.tool_calls))
    metrics.add_metric(
        name="LLMInputTokens", unit=MetricUnit.Count, value=result.usage.input_tokens
    )
    metrics.add_metric(
        name="LLMOutputTokens", unit=MetricUnit.Count, value=result.usage.output_tokens
    )
    # Identifiers and counts only: the conversation itself stays out of the logs.
    logger.info(
        "agent step done",
        extra={
            "session_id": session_id,
            "version": result.version,
            "iterations": result.iterations,
            "stop_reason": result.stop_reason,
            "tools": [call.name for call in result.tool_calls],
        },
    )
    return json_response(
        200,
        {
            "session_id": result.session_id,
            "output": result.output,
            "version": result.version,
            "iterations": result.iterations,
            "stop_reason": result.stop_reason,
            "usage": {
                "input_tokens": result.usage.input_tokens,
                "output_tokens": result.usage.output_tokens,
            },
        },
    )


@app.get("/sessions/<session_id>")
@tracer.capture_method(capture_response=False)
def get_session(session_id: str) -> Response[str]:
    _check_session_id(session_id)
    session = dependencies().store.get(session_id)
    metrics.add_metric(name="SessionReads", unit=MetricUnit.Count, value=1)
    if session is None:
        raise ApiError(404, "not_found", f"session {session_id!r} does not exist or has expired")
    return json_response(
        200,
        {
            "session_id": session.session_id,
            "version": session.version,
            "messages": [message.to_dict() for message in session.messages],
            "created_at": session.created_at,
            "updated_at": session.updated_at,
            "expires_at": session.expires_at,
        },
    )


def _handle_conflict(error: SessionConflictError) -> Response[str]:
    metrics.add_metric(name="SessionConflicts", unit=MetricUnit.Count, value=1)
    return error_response(ApiError(409, "conflict", str(error)))


def _handle_llm_timeout(error: LLMTimeoutError) -> Response[str]:
    metrics.add_metric(name="LLMTimeouts", unit=MetricUnit.Count, value=1)
    logger.warning("model call timed out", extra={"reason": str(error)})
    return error_response(
        ApiError(504, "llm_timeout", "the model did not answer in time; the session is unchanged")
    )


def _handle_llm_rate_limited(error: LLMRateLimitedError) -> Response[str]:
    metrics.add_metric(name="LLMRateLimited", unit=MetricUnit.Count, value=1)
    logger.warning("model rate limited", extra={"reason": str(error)})
    return error_response(
        ApiError(
            503,
            "llm_rate_limited",
            "the model provider is rate limiting requests; retry later",
            headers={"Retry-After": str(RATE_LIMIT_RETRY_AFTER_SECONDS)},
        )
    )


def _handle_llm_error(error: LLMError) -> Response[str]:
    metrics.add_metric(name="LLMErrors", unit=MetricUnit.Count, value=1)
    logger.error("model call failed", extra={"reason": str(error)})
    return error_response(
        ApiError(502, "llm_error", "the model provider failed; the session is unchanged")
    )


def _handle_session_too_large(error: SessionTooLargeError) -> Response[str]:
    # 409, not 413: the request is fine, the stored session has no room for another turn.
    metrics.add_metric(name="SessionTooLarge", unit=MetricUnit.Count, value=1)
    logger.warning("session too large", extra={"reason": str(error)})
    return error_response(ApiError(409, "session_too_large", str(error)))


register_common_errors(app, logger=logger, metrics=metrics)
app.exception_handler(SessionConflictError)(_handle_conflict)
app.exception_handler(SessionTooLargeError)(_handle_session_too_large)
app.exception_handler(LLMTimeoutError)(_handle_llm_timeout)
app.exception_handler(LLMRateLimitedError)(_handle_llm_rate_limited)
app.exception_handler(LLMError)(_handle_llm_error)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
