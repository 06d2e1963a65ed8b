"""Accepting a task: validate, deduplicate, record, enqueue. Framework-neutral.

The Lambda ingress (:mod:`runtime.handlers.webhook_api`) and the container service call
:func:`submit_task` after reading the raw body and headers. The order of the writes is what makes
"202 means it will run" true:

1. the task record is written (``queued``) — with its Idempotency-Key item in one transaction;
2. the task message is sent to the queue;
3. the record is marked ``enqueued_at``.

If the queue refuses (2), a task without a key is deleted again and the caller gets a 503 to
retry; a task with a key is kept, and the retry with the same key finds it without
``enqueued_at`` and sends the message then. A crash between (2) and (3) can at worst enqueue a
task twice, which the worker's claim makes harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runtime.api_errors import ApiError
from runtime.tasks.queues import MessageQueue, task_message
from runtime.tasks.schema import task_request_schema
from runtime.tasks.settings import TaskSettings
from runtime.tasks.store import (
    IdempotencyMismatchError,
    Task,
    TaskStore,
    idempotency_key,
    request_fingerprint,
)
from runtime.tools import ArgumentsError, validate
from runtime.webhooks.ssrf import Resolver, UnsafeUrlError, check_url, system_resolver

# Stripe's and the IETF draft's bound; longer keys are almost always a client bug.
MAX_IDEMPOTENCY_KEY_CHARS = 255
QUEUE_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class TaskRequest:
    input: str
    session_id: str | None = None
    callback_url: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, max_input_chars: int) -> TaskRequest:
        """Validate against the same schema API Gateway's model is built from."""
        try:
            validate(data, task_request_schema(max_input_chars), path="body")
        except ArgumentsError as exc:
            raise ApiError(400, "validation_error", str(exc)) from None
        return cls(
            input=data["input"],
            session_id=data.get("session_id"),
            callback_url=data.get("callback_url"),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Submitted:
    task: Task
    # False when an earlier request with the same Idempotency-Key created the task.
    created: bool
    # True when that earlier request was already accepted (enqueued): this answer repeats it.
    # False for a retry after a 503, which is the first acceptance the caller sees.
    replayed: bool


def check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_CHARS or not value.isprintable():
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable characters "
            "(a UUID per logical request is a good choice)",
        )
    return value


def submit_task(
    request: TaskRequest,
    *,
    raw_request: Mapping[str, Any],
    store: TaskStore,
    queue: MessageQueue,
    settings: TaskSettings,
    caller: str,
    idempotency_key_value: str | None,
    now: int,
    resolve: Resolver = system_resolver,
    new_task_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> Submitted:
    """Record and enqueue ``request``; raises :class:`ApiError` for anything the caller can fix.

    ``caller`` scopes Idempotency-Keys (the API key id, IAM principal, or webhook source).
    """
    if request.callback_url is not None:
        _check_callback_url(
            request.callback_url, store=store, settings=settings, now=now, resolve=resolve
        )
    task_id = new_task_id()
    idem_pk = (
        idempotency_key(caller, idempotency_key_value)
        if idempotency_key_value is not None
        else None
    )
    try:
        task, created = store.create(
            task_id=task_id,
            user_input=request.input,
            session_id=request.session_id or task_id,
            callback_url=request.callback_url,
            metadata=request.metadata,
            now=now,
            idempotency=(
                (idem_pk, request_fingerprint(raw_request), settings.idempotency_window_seconds)
                if idem_pk is not None
                else None
            ),
        )
    except IdempotencyMismatchError as exc:
        raise ApiError(422, "idempotency_key_reused", str(exc)) from None
    replayed = not created and task.enqueued_at is not None
    if task.enqueued_at is None:
        _enqueue(task, store=store, queue=queue, idem_pk=idem_pk, created=created, now=now)
    return Submitted(task=task, created=created, replayed=replayed)


def _check_callback_url(
    url: str, *, store: TaskStore, settings: TaskSettings, now: int, resolve: Resolver
) -> None:
    try:
        check_url(url, allow_http_loopback=settings.callback_allow_http_loopback, resolve=resolve)
    except UnsafeUrlError as exc:
        raise ApiError(400, "invalid_callback_url", str(exc)) from None
    gone_since = store.endpoint_gone_since(url, now=now)
    if gone_since is not None:
        when = datetime.fromtimestamp(gone_since, UTC).isoformat(timespec="seconds")
        raise ApiError(
            400,
            "callback_url_gone",
            f"callback_url answered 410 Gone at {when}, so it gets no callbacks; use another "
            "URL, or omit callback_url and poll GET /tasks/{task_id}",
        )


def _enqueue(
    task: Task,
    *,
    store: TaskStore,
    queue: MessageQueue,
    idem_pk: str | None,
    created: bool,
    now: int,
) -> None:
    try:
        queue.send(task_message(task.task_id))
    except (ClientError, BotoCoreError) as exc:
        if created and idem_pk is None:
            # Nobody can ever ask for this task again: remove it rather than leave it queued.
            store.delete_unqueued(task.task_id, None)
        raise ApiError(
            503,
            "queue_unavailable",
            f"the task queue did not accept the task ({type(exc).__name__}); retry"
            + (" with the same Idempotency-Key" if idem_pk is not None else ""),
            headers={"Retry-After": str(QUEUE_RETRY_AFTER_SECONDS)},
        ) from exc
    store.mark_enqueued(task.task_id, now=now)
