"""Lambda handler for the webhook ingress and task status API (API Gateway REST, proxy).

Routes::

    POST /webhook            {"input": "...", "callback_url"?, "session_id"?, "metadata"?}
                             -> 202 {"task_id", "status"}, Location: .../tasks/{task_id}
    GET  /tasks/{task_id}    -> 200 status, result or error, timestamps

When the deployment configures an inbound signature (a GitHub-style or Standard Webhooks
source), the signature over the raw body is checked before anything else is parsed: an
unsigned or forged request costs no JSON parsing, no table write and no queue message.
The work itself is in :mod:`runtime.tasks.ingress`, shared with the container service.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from runtime.api_errors import ApiError
from runtime.handlers.http import (
    error_response,
    json_response,
    parse_json_object,
    raw_body,
    register_common_errors,
)
from runtime.handlers.tracing import lambda_tracer
from runtime.tasks.ingress import TaskRequest, check_idempotency_key, submit_task
from runtime.tasks.keys import SecretReadError
from runtime.tasks.schema import TASK_ID_REGEX
from runtime.tasks.store import TaskStoreBusyError
from runtime.tasks.wiring import TaskClients
from runtime.webhooks.signing import WebhookVerificationError, verify_inbound

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = lambda_tracer()
metrics = Metrics()
app = APIGatewayRestResolver()

_TASK_ID = re.compile(TASK_ID_REGEX)
_clients: TaskClients | None = None


def clients() -> TaskClients:
    global _clients
    if _clients is None:
        _clients = TaskClients.from_env()
    return _clients


def set_clients(replacement: TaskClients | None) -> None:
    """Use ``replacement`` for the following invocations; ``None`` rebuilds from the environment."""
    global _clients
    _clients = replacement


def _caller() -> str:
    """Who is calling, to scope Idempotency-Keys: API key, IAM principal, or the source."""
    identity = app.current_event.request_context.identity
    for value in (identity.api_key_id, identity.user_arn, identity.caller):
        if value:
            return value
    return "signed-webhook-source" if clients().settings.inbound_signature_style != "none" else "-"


def _verify_signature(body: bytes) -> None:
    deps = clients()
    settings = deps.settings
    if settings.inbound_signature_style == "none" or deps.inbound_secret is None:
        return
    try:
        verify_inbound(
            settings.inbound_signature_style,
            dict(app.current_event.headers or {}),
            body,
            deps.inbound_secret.values(),
            header=settings.inbound_signature_header,
            tolerance_seconds=settings.inbound_signature_tolerance_seconds,
        )
    except WebhookVerificationError as exc:
        metrics.add_metric(name="SignatureRejected", unit=MetricUnit.Count, value=1)
        raise ApiError(401, "invalid_signature", str(exc)) from None


# A signed source's own delivery id doubles as the Idempotency-Key: a replayed or redelivered
# request (same id, same body) returns the first task instead of starting a second run, across
# every container, for the whole idempotency window (not just the signature's 5 minutes).
_SOURCE_DELIVERY_ID_HEADERS = {"standard": "webhook-id", "github": "x-github-delivery"}


def _idempotency_key_header() -> str | None:
    headers = app.current_event.headers
    explicit = headers.get("idempotency-key")
    if explicit is not None:
        return explicit
    source_header = _SOURCE_DELIVERY_ID_HEADERS.get(clients().settings.inbound_signature_style)
    return headers.get(source_header) if source_header is not None else None


def _status_location(task_id: str) -> str:
    # The path the client called, minus this resource: keeps the stage prefix (/v1) or a custom
    # domain's base path, whichever the client used.
    path = app.current_event.request_context.path or app.current_event.path
    prefix = path[: -len("/webhook")] if path.endswith("/webhook") else ""
    return f"{prefix}/tasks/{task_id}"


@app.post("/webhook")
@tracer.capture_method(capture_response=False)
def post_webhook() -> Response[str]:
    deps = clients()
    settings = deps.settings
    body = raw_body(app.current_event)
    if len(body) > settings.max_body_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"the body is {len(body)} bytes; the limit is {settings.max_body_bytes}",
        )
    _verify_signature(body)
    data = parse_json_object(body, max_body_bytes=settings.max_body_bytes)
    request = TaskRequest.from_json(data, max_input_chars=settings.max_message_chars)
    key = check_idempotency_key(_idempotency_key_header())
    submitted = submit_task(
        request,
        raw_request=data,
        store=deps.store,
        queue=deps.task_queue,
        settings=settings,
        caller=_caller(),
        idempotency_key_value=key,
        now=int(time.time()),
        resolve=deps.resolve,
    )
    task = submitted.task
    metrics.add_metric(
        name="TasksReplayed" if submitted.replayed else "TasksAccepted",
        unit=MetricUnit.Count,
        value=1,
    )
    logger.info(
        "task accepted",
        extra={"task_id": task.task_id, "replayed": submitted.replayed},
    )
    headers = {"Location": _status_location(task.task_id)}
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(202, {"task_id": task.task_id, "status": task.status}, headers)


@app.get("/tasks/<task_id>")
@tracer.capture_method(capture_response=False)
def get_task(task_id: str) -> Response[str]:
    if _TASK_ID.fullmatch(task_id) is None:
        raise ApiError(400, "invalid_task_id", "task_id must be the 32 hex characters of a task id")
    task = clients().store.get(task_id, now=int(time.time()))
    if task is None:
        raise ApiError(404, "not_found", f"task {task_id} does not exist or has expired")
    return json_response(200, task.public_view())


def _handle_busy(error: TaskStoreBusyError) -> Response[str]:
    logger.warning("task store busy", extra={"reason": str(error)})
    return error_response(ApiError(503, "busy", str(error), headers={"Retry-After": "2"}))


def _handle_secret(error: SecretReadError) -> Response[str]:
    logger.error("inbound signature secret unavailable", extra={"reason": str(error)})
    return error_response(
        ApiError(503, "signature_secret_unavailable", "cannot verify signatures right now")
    )


register_common_errors(app, logger=logger, metrics=metrics)
app.exception_handler(TaskStoreBusyError)(_handle_busy)
app.exception_handler(SecretReadError)(_handle_secret)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
