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

import base64
import binascii
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.agent import run_step
from runtime.llm.types import (
    LLMClient,
    LLMError,
    LLMRateLimitedError,
    LLMResponse,
    LLMTimeoutError,
    Message,
    ToolSpec,
)
from runtime.session_store import SessionConflictError, SessionStore, SessionTooLargeError
from runtime.settings import RuntimeSettings
from runtime.tools import ToolRegistry, default_registry

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver()

SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
# Left for the work after the last model call (tools, the DynamoDB save, the response) so that a
# slow model ends in our 504 rather than in Lambda killing the invocation mid-save.
LLM_SAFETY_MARGIN_SECONDS = 3.0
# Providers' rate windows are short; a fixed hint keeps clients from hammering without a number
# the LLM client does not expose.
RATE_LIMIT_RETRY_AFTER_SECONDS = 10

LLMFactory = Callable[[float], LLMClient]
"""Builds an LLM client whose calls give up after the given number of seconds."""


@dataclass(frozen=True)
class Dependencies:
    settings: RuntimeSettings
    store: SessionStore
    llm_factory: LLMFactory
    tools: ToolRegistry


_dependencies: Dependencies | None = None


@cache
def settings() -> RuntimeSettings:
    """The environment, validated on first use and then reused for the container's lifetime."""
    return RuntimeSettings.from_env(os.environ)


def dependencies() -> Dependencies:
    global _dependencies
    if _dependencies is None:
        _dependencies = _build_dependencies(settings())
    return _dependencies


def set_dependencies(replacement: Dependencies | None) -> None:
    """Use ``replacement`` for the following invocations; ``None`` rebuilds the real ones.

    ``None`` also forgets the cached settings, so a test can change the environment between runs.
    """
    global _dependencies
    _dependencies = replacement
    if replacement is None:
        settings.cache_clear()


def _build_dependencies(config: RuntimeSettings) -> Dependencies:
    import boto3

    from runtime.dynamodb_store import DynamoDBSessionStore
    from runtime.llm.factory import build_llm_client

    store = DynamoDBSessionStore(
        config.session_table_name,
        ttl_seconds=config.session_ttl_seconds,
        client=boto3.client("dynamodb"),
    )
    secrets_client = (
        boto3.client("secretsmanager") if config.llm_api_key_secret_arn is not None else None
    )
    http_client = None
    if config.llm_provider == "openai-compatible":
        import httpx

        # One pool per container, reused by every invocation's client: no new TLS handshake per
        # request. Timeouts are set per request by the client from its time budget.
        http_client = httpx.Client()

    # One key cache per container: clients are built per model call (for the time budget), and
    # a cache per client would fetch the secret on every call.
    api_key = None
    if config.llm_api_key_secret_arn is not None:
        from runtime.llm.secrets import SecretCache

        api_key = SecretCache(config.llm_api_key_secret_arn, client=secrets_client)

    def llm_factory(budget_seconds: float) -> LLMClient:
        # No shared Bedrock client on purpose: the factory only applies the budget to the
        # read timeout of a client it builds itself.
        return build_llm_client(
            config,
            secrets_client=secrets_client,
            http_client=http_client,
            total_budget_seconds=budget_seconds,
            api_key=api_key,
        )

    return Dependencies(
        settings=config, store=store, llm_factory=llm_factory, tools=default_registry()
    )


class _DeadlineLLM:
    """Gives every model call of a step only the time the invocation has left.

    The factory's budget bounds one ``complete`` call; a step makes several, so each call gets a
    client built with what remains right now, and none starts once the time is gone.
    """

    def __init__(self, factory: LLMFactory, remaining_seconds: Callable[[], float]) -> None:
        self._factory = factory
        self._remaining_seconds = remaining_seconds

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        system: str | None = None,
    ) -> LLMResponse:
        budget = self._remaining_seconds() - LLM_SAFETY_MARGIN_SECONDS
        if budget <= 0:
            raise LLMTimeoutError("the invocation's time budget for model calls is spent")
        return self._factory(budget).complete(messages, tools=tools, system=system)


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


class StepRequest(BaseModel):
    # strict: "3" or true is not a version, and a typo'd field name must not be silently ignored.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    message: str = Field(min_length=1)
    expected_version: int | None = Field(default=None, ge=0)


def _json_response(
    status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(payload, ensure_ascii=False),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _error_response(error: ApiError) -> Response[str]:
    return _json_response(
        error.status, {"error": {"code": error.code, "message": error.message}}, error.headers
    )


def _check_session_id(session_id: str) -> None:
    if SESSION_ID_PATTERN.fullmatch(session_id) is None:
        raise ApiError(
            400,
            "invalid_session_id",
            "session_id must be 1-128 characters of letters, digits and _ . : - "
            "starting with a letter or digit",
        )


def _raw_body(event: APIGatewayProxyEvent) -> bytes:
    body = event.body
    if body is None:
        return b""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "invalid_body", "the body is not valid base64") from None
    return body.encode("utf-8")


def _parse_step_request(event: APIGatewayProxyEvent, config: RuntimeSettings) -> StepRequest:
    raw = _raw_body(event)
    if len(raw) > config.max_body_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"the body is {len(raw)} bytes; the limit is {config.max_body_bytes}",
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers both malformed JSON and bytes that are not UTF-8.
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "validation_error", "body: must be a JSON object")
    try:
        request = StepRequest.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "validation_error", _describe(exc)) from None
    if len(request.message) > config.max_message_chars:
        raise ApiError(
            400,
            "validation_error",
            f"message: must be at most {config.max_message_chars} characters",
        )
    return request


def _describe(exc: ValidationError) -> str:
    # Location and message only: pydantic's full text echoes the input values back.
    parts = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


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
        llm=_DeadlineLLM(deps.llm_factory, _remaining_seconds),
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
    return _json_response(
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
    return _json_response(
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


def _handle_api_error(error: ApiError) -> Response[str]:
    metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
    return _error_response(error)


def _handle_unknown_route(_: NotFoundError) -> Response[str]:
    return _handle_api_error(ApiError(404, "not_found", "no such route"))


def _handle_conflict(error: SessionConflictError) -> Response[str]:
    metrics.add_metric(name="SessionConflicts", unit=MetricUnit.Count, value=1)
    return _error_response(ApiError(409, "conflict", str(error)))


def _handle_llm_timeout(error: LLMTimeoutError) -> Response[str]:
    metrics.add_metric(name="LLMTimeouts", unit=MetricUnit.Count, value=1)
    logger.warning("model call timed out", extra={"reason": str(error)})
    return _error_response(
        ApiError(504, "llm_timeout", "the model did not answer in time; the session is unchanged")
    )


def _handle_llm_rate_limited(error: LLMRateLimitedError) -> Response[str]:
    metrics.add_metric(name="LLMRateLimited", unit=MetricUnit.Count, value=1)
    logger.warning("model rate limited", extra={"reason": str(error)})
    return _error_response(
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
    return _error_response(
        ApiError(502, "llm_error", "the model provider failed; the session is unchanged")
    )


def _handle_session_too_large(error: SessionTooLargeError) -> Response[str]:
    # 409, not 413: the request is fine, the stored session has no room for another turn.
    metrics.add_metric(name="SessionTooLarge", unit=MetricUnit.Count, value=1)
    logger.warning("session too large", extra={"reason": str(error)})
    return _error_response(ApiError(409, "session_too_large", str(error)))


def _handle_unexpected(error: Exception) -> Response[str]:
    metrics.add_metric(name="InternalErrors", unit=MetricUnit.Count, value=1)
    logger.exception("unhandled error")
    return _error_response(ApiError(500, "internal_error", "internal error"))


# Registered by call: Powertools' decorators are untyped, which strict mypy rejects on a def.
# The resolver picks the handler of the most specific class in the exception's MRO.
app.not_found(_handle_unknown_route)
app.exception_handler(ApiError)(_handle_api_error)
app.exception_handler(SessionConflictError)(_handle_conflict)
app.exception_handler(SessionTooLargeError)(_handle_session_too_large)
app.exception_handler(LLMTimeoutError)(_handle_llm_timeout)
app.exception_handler(LLMRateLimitedError)(_handle_llm_rate_limited)
app.exception_handler(LLMError)(_handle_llm_error)
app.exception_handler(Exception)(_handle_unexpected)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
