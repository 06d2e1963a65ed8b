"""Delivering a task's outcome to its ``callback_url``: one attempt per queue message.

Each attempt is a message on the callback queue. A failed attempt never sleeps: it sends the
next attempt's message with a delay (exponential back-off with jitter; SQS delays at most 15
minutes, longer waits hop through several delayed messages via ``not_before``) and returns. So
a slow or dead receiver costs no worker time, and the schedule survives any worker crash.

Per attempt (see :class:`~runtime.tasks.store.TaskStore` for the conditions that make each step
safe under duplicate messages and crashes):

* 2xx: delivered, done;
* 410 Gone: the receiver asked for no more callbacks; the endpoint is remembered as gone (new
  tasks naming it are refused, pending callbacks to it stop) and the callback ends ``gone``;
* anything else: retried until ``max_attempts``, then the callback ends ``failed`` and a record
  with the last error goes to the callback DLQ, where an operator sees it (the DLQ alarm) and
  can redrive it: the record is itself a callback message marked ``restart``, so a redrive
  (``aws sqs start-message-move-task``) starts the attempts over;
* a URL that no longer passes the SSRF guard (its DNS changed to a private address): ``failed``
  at once, with the reason, and the DLQ record.

The request is signed per Standard Webhooks. ``webhook-id`` is ``msg_<task_id>_<event>``: the same
for every attempt of one outcome, so receivers deduplicate retries, and different for the outcome
of a redriven run. ``webhook-timestamp`` is the attempt's time.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from runtime.tasks.queues import (
    MAX_DELAY_SECONDS,
    CallbackMessage,
    MessageQueue,
    RetryLaterError,
)
from runtime.tasks.settings import TaskSettings
from runtime.tasks.store import Task, TaskStore
from runtime.webhooks.delivery import DeliveryResult, deliver, retry_delay
from runtime.webhooks.signing import signed_headers
from runtime.webhooks.ssrf import Resolver, system_resolver

Outcome = Literal["delivered", "gone", "retry_scheduled", "failed", "stale", "waiting", "expired"]
# An attempt's lease: its HTTP timeout plus time to record the result. A worker that dies
# mid-attempt frees it after this long.
_LEASE_MARGIN_SECONDS = 30


def callback_id(task: Task) -> str:
    return f"msg_{task.task_id}_{task.callback_event}"


def callback_payload(task: Task, *, now: float) -> bytes:
    """The Standard Webhooks payload shape: ``{"type", "timestamp", "data"}``."""
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "status": task.status,
        "session_id": task.session_id,
        "metadata": dict(task.metadata),
        "created_at": task.created_at,
        "finished_at": task.finished_at,
        "result": dict(task.result) if task.result is not None else None,
        "error": task.error.to_dict() if task.error is not None else None,
    }
    return json.dumps(
        {
            "type": f"task.{task.status}",
            "timestamp": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            "data": data,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


@dataclass
class CallbackWorker:
    store: TaskStore
    callback_queue: MessageQueue
    callback_dlq: MessageQueue
    # The signing secrets: [current] or, during a rotation overlap, [current, previous].
    signing_secrets: Callable[[], Sequence[str]]
    http_client: httpx.Client
    settings: TaskSettings
    resolve: Resolver = system_resolver
    clock: Callable[[], float] = time.time
    random: Callable[[], float] = field(default=random.random)

    def process(self, body: str) -> Outcome:
        message = CallbackMessage.parse(body)
        now = int(self.clock())
        if message.not_before > now:
            self._send(message, wait_seconds=message.not_before - now)
            return "waiting"
        task = self.store.get(message.task_id, now=now)
        if task is None:
            return "expired"
        if task.callback_url is None or task.callback_event != message.event:
            # A later run of the task superseded this outcome; its own callback is on the way.
            return "stale"
        if message.restart:
            # Redriven from the callback DLQ: the attempts start over. Only a failed callback
            # restarts; a copy redriven twice, or one that already got through, is a no-op.
            if not self.store.reopen_callback(task.task_id, event=message.event, now=now):
                return "stale"
            message = CallbackMessage(task.task_id, message.event, attempt=1)
        lease = int(self.settings.callback_timeout_seconds) + _LEASE_MARGIN_SECONDS
        claimed = self.store.claim_callback_attempt(
            task.task_id,
            event=message.event,
            attempt=message.attempt,
            lease_seconds=lease,
            now=now,
        )
        if claimed is None:
            return self._not_claimed(message, now=now)
        assert claimed.callback_url is not None
        gone_since = self.store.endpoint_gone_since(claimed.callback_url, now=now)
        if gone_since is not None:
            self._finish(claimed, message, "gone", f"endpoint answered 410 Gone at {gone_since}")
            return "gone"
        result = self._attempt(claimed, now=now)
        if result.outcome == "delivered":
            self._finish(claimed, message, "delivered", None)
            return "delivered"
        if result.outcome == "gone":
            self.store.mark_endpoint_gone(
                claimed.callback_url, now=now, ttl_seconds=self.settings.callback_gone_ttl_seconds
            )
            self._finish(claimed, message, "gone", "HTTP 410 Gone")
            return "gone"
        error = result.error or f"HTTP {result.status_code}"
        if result.outcome == "retry" and message.attempt < self.settings.callback_max_attempts:
            # CALLBACK_BASE_DELAY_SECONDS=0 (allowed: local development, tests) means "retry at
            # once"; retry_delay itself insists on a positive base.
            delay = (
                retry_delay(
                    message.attempt,
                    base_seconds=self.settings.callback_base_delay_seconds,
                    max_seconds=self.settings.callback_max_delay_seconds,
                    random=self.random,
                )
                if self.settings.callback_base_delay_seconds > 0
                else 0.0
            )
            # The next attempt is queued before this one is recorded: a crash in between leaves
            # a message that can still claim attempt n + 1, never a lost retry.
            self._send(
                CallbackMessage(task.task_id, message.event, message.attempt + 1),
                wait_seconds=round(delay),
            )
            self._finish(claimed, message, "retrying", error)
            return "retry_scheduled"
        self.callback_dlq.send(
            {
                # A callback message (redrivable as is: it restarts the attempts) ...
                **CallbackMessage(task.task_id, message.event, 1, restart=True).to_dict(),
                # ... plus what an operator needs to decide whether to redrive it.
                "callback_url": claimed.callback_url,
                "webhook_id": callback_id(claimed),
                "attempts": message.attempt,
                "last_status": result.status_code,
                "last_error": error,
                "reason": "rejected" if result.outcome == "rejected" else "attempts_exhausted",
                "failed_at": now,
            }
        )
        self._finish(claimed, message, "failed", error)
        return "failed"

    def _attempt(self, task: Task, *, now: int) -> DeliveryResult:
        assert task.callback_url is not None
        body = callback_payload(task, now=now)
        headers = signed_headers(callback_id(task), now, body, list(self.signing_secrets()))
        return deliver(
            task.callback_url,
            body,
            headers,
            client=self.http_client,
            timeout_seconds=self.settings.callback_timeout_seconds,
            allow_http_loopback=self.settings.callback_allow_http_loopback,
            resolve=self.resolve,
        )

    def _not_claimed(self, message: CallbackMessage, *, now: int) -> Outcome:
        current = self.store.get(message.task_id, now=now)
        if (
            current is not None
            and current.callback_event == message.event
            and current.callback_attempts == message.attempt
            and current.callback_status == "delivering"
        ):
            # Another copy of this message is mid-attempt. Come back when its lease ends: if
            # that worker died, this copy takes the attempt over.
            lease_left = (current.callback_lease_expires_at or now) - now
            raise RetryLaterError(
                f"callback attempt {message.attempt} of task {message.task_id} is in progress",
                delay_seconds=max(1, lease_left + 1),
            )
        return "stale"

    def _send(self, message: CallbackMessage, *, wait_seconds: int) -> None:
        now = int(self.clock())
        if wait_seconds > MAX_DELAY_SECONDS:
            message = CallbackMessage(
                message.task_id, message.event, message.attempt, not_before=now + wait_seconds
            )
        self.callback_queue.send(
            message.to_dict(), delay_seconds=max(0, min(wait_seconds, MAX_DELAY_SECONDS))
        )

    def _finish(
        self,
        task: Task,
        message: CallbackMessage,
        status: Literal["delivered", "gone", "retrying", "failed"],
        error: str | None,
    ) -> None:
        self.store.finish_callback_attempt(
            task.task_id,
            event=message.event,
            attempt=message.attempt,
            status=status,
            error=error,
            now=int(self.clock()),
        )
