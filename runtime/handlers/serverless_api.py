"""Lambda handler for the serverless agent behind API Gateway (REST API, proxy integration).

Each request restores the session from DynamoDB, runs one agent step and saves it back with a
fresh TTL (:func:`runtime.agent.run_step`). Routes::

    POST /sessions/{session_id}/messages   {"message": "...", "expected_version": 3}
    GET  /sessions/{session_id}

Every error is ``{"error": {"code", "message"}}`` with a meaningful status; stack traces only go
to the logs. The request rules and the error mapping are :mod:`runtime.sessions_api`'s, shared
with the container service; this module adds Powertools' logs, metrics and tracing. boto3, httpx,
the DynamoDB store and the LLM factory are imported on the first request, inside
:func:`dependencies`, so the cold start only loads what the handler itself needs.
Tests swap the dependencies with :func:`set_dependencies`.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from runtime.agent import run_step
from runtime.handlers.http import (
    error_response,
    json_response,
    raw_body,
    register_common_errors,
)
from runtime.handlers.tracing import lambda_tracer
from runtime.llm.types import LLMError, LLMRateLimitedError, LLMTimeoutError
from runtime.session_store import (
    SessionConflictError,
    SessionStoreUnavailableError,
    SessionTooLargeError,
)
from runtime.sessions_api import (
    check_session_id,
    parse_step_request,
    session_response,
    step_failure,
    step_response,
)
from runtime.settings import RuntimeSettings
from runtime.wiring import (
    DeadlineLLM,
    Dependencies,
    build_dependencies,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = lambda_tracer()
metrics = Metrics()
# Behind the hybrid front door (an HTTP API, payload format 1.0, route ANY /v1/sessions/{proxy+})
# the path keeps the /v1 the REST API's stage removes; either way the routes below match.
app = APIGatewayRestResolver(strip_prefixes=["/v1"])

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


def _remaining_seconds() -> float:
    return float(app.lambda_context.get_remaining_time_in_millis()) / 1000.0


@app.post("/sessions/<session_id>/messages")
@tracer.capture_method(capture_response=False)
def post_message(session_id: str) -> Response[str]:
    check_session_id(session_id)
    deps = dependencies()
    request = parse_step_request(
        raw_body(app.current_event),
        max_body_bytes=deps.settings.max_body_bytes,
        max_message_chars=deps.settings.max_message_chars,
    )
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
    return json_response(200, step_response(result))


@app.get("/sessions/<session_id>")
@tracer.capture_method(capture_response=False)
def get_session(session_id: str) -> Response[str]:
    check_session_id(session_id)
    session = dependencies().store.get(session_id)
    metrics.add_metric(name="SessionReads", unit=MetricUnit.Count, value=1)
    return json_response(200, session_response(session, session_id))


def _handle_conflict(error: SessionConflictError) -> Response[str]:
    metrics.add_metric(name="SessionConflicts", unit=MetricUnit.Count, value=1)
    return error_response(step_failure(error))


def _handle_llm_timeout(error: LLMTimeoutError) -> Response[str]:
    metrics.add_metric(name="LLMTimeouts", unit=MetricUnit.Count, value=1)
    logger.warning("model call timed out", extra={"reason": str(error)})
    return error_response(step_failure(error))


def _handle_llm_rate_limited(error: LLMRateLimitedError) -> Response[str]:
    metrics.add_metric(name="LLMRateLimited", unit=MetricUnit.Count, value=1)
    logger.warning("model rate limited", extra={"reason": str(error)})
    return error_response(step_failure(error))


def _handle_llm_error(error: LLMError) -> Response[str]:
    metrics.add_metric(name="LLMErrors", unit=MetricUnit.Count, value=1)
    logger.error("model call failed", extra={"reason": str(error)})
    return error_response(step_failure(error))


def _handle_session_too_large(error: SessionTooLargeError) -> Response[str]:
    metrics.add_metric(name="SessionTooLarge", unit=MetricUnit.Count, value=1)
    logger.warning("session too large", extra={"reason": str(error)})
    return error_response(step_failure(error))


def _handle_store_unavailable(error: SessionStoreUnavailableError) -> Response[str]:
    metrics.add_metric(name="SessionStoreUnavailable", unit=MetricUnit.Count, value=1)
    logger.error("session store unavailable", extra={"reason": str(error)})
    return error_response(step_failure(error))


register_common_errors(app, logger=logger, metrics=metrics)
app.exception_handler(SessionConflictError)(_handle_conflict)
app.exception_handler(SessionTooLargeError)(_handle_session_too_large)
app.exception_handler(SessionStoreUnavailableError)(_handle_store_unavailable)
app.exception_handler(LLMTimeoutError)(_handle_llm_timeout)
app.exception_handler(LLMRateLimitedError)(_handle_llm_rate_limited)
app.exception_handler(LLMError)(_handle_llm_error)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
