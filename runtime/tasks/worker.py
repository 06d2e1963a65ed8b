"""Running one task message: claim, run the agent step, record the outcome, hand off the callback.

Framework-neutral: the SQS Lambda (:mod:`runtime.handlers.task_worker`) and the container queue
worker call :meth:`TaskWorker.process` per message and act on how it ends:

* it returns: the message is done (delete it / report success);
* :class:`~runtime.tasks.queues.RetryLaterError`: keep the message and make it visible again
  after ``delay_seconds`` (report it failed in the batch response);
* :class:`~runtime.tasks.queues.PoisonMessageError` or anything else: keep the message; after
  ``maxReceiveCount`` receives SQS moves it to the DLQ.

Failures are sorted once, here. Transient ones (the model timed out or was rate limited, a
concurrent turn on the same session) are retried with a growing back-off; on the queue's last
receive the task is marked ``failed`` (retryable, so an operator's DLQ redrive runs it again)
and the caller is told by callback. Permanent ones (the session is full, the model rejects the
request as invalid) fail the task at once: retrying cannot help.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from runtime.agent import run_step
from runtime.llm.types import LLMClient, LLMError, LLMUpstreamError
from runtime.session_store import SessionConflictError, SessionStore, SessionTooLargeError
from runtime.tasks.queues import (
    CallbackMessage,
    MessageQueue,
    PoisonMessageError,
    RetryLaterError,
    parse_task_message,
)
from runtime.tasks.settings import TaskSettings
from runtime.tasks.store import Task, TaskError, TaskStore
from runtime.tools import ToolRegistry

Outcome = Literal["succeeded", "failed", "duplicate", "callback_resent"]

# Model answers that retrying cannot change (the request itself is bad); 408/409/429 are
# transient by HTTP's own definition.
_TRANSIENT_CLIENT_STATUSES = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class AgentOptions:
    max_iterations: int
    system_prompt: str | None


def retry_backoff(receive_count: int, *, base_seconds: int, max_seconds: int) -> int:
    """Seconds before the next try after the ``receive_count``-th failed: base * 2^(n-1), capped."""
    if receive_count < 1:
        raise ValueError("receive_count starts at 1")
    return int(min(max_seconds, base_seconds * 2 ** min(receive_count - 1, 30)))


def _permanent(exc: BaseException) -> TaskError | None:
    """The task-level error for a failure retrying cannot fix, or ``None`` if it is transient."""
    if isinstance(exc, SessionTooLargeError):
        return TaskError("session_too_large", str(exc))
    if (
        isinstance(exc, LLMUpstreamError)
        and exc.status is not None
        and 400 <= exc.status < 500
        and exc.status not in _TRANSIENT_CLIENT_STATUSES
    ):
        return TaskError("model_rejected_request", str(exc))
    return None


def _transient_error(exc: BaseException) -> TaskError:
    if isinstance(exc, LLMError):
        return TaskError("model_unavailable", str(exc))
    if isinstance(exc, SessionConflictError):
        return TaskError("session_conflict", str(exc))
    # Unexpected (a bug, an AWS outage): the type only, details are in the logs.
    return TaskError("internal_error", f"the worker failed with {type(exc).__name__}")


@dataclass
class TaskWorker:
    store: TaskStore
    sessions: SessionStore
    tools: ToolRegistry
    callback_queue: MessageQueue
    settings: TaskSettings
    agent: AgentOptions
    clock: Callable[[], float] = time.time
    new_owner: Callable[[], str] = lambda: uuid.uuid4().hex

    def process(self, body: str, *, receive_count: int, llm: LLMClient) -> Outcome:
        task_id = parse_task_message(body)
        now = int(self.clock())
        owner = self.new_owner()
        claim = self.store.claim(
            task_id, owner=owner, lease_seconds=self.settings.task_lease_seconds, now=now
        )
        if claim.outcome == "missing":
            # Expired or never written: nothing can make this message processable.
            raise PoisonMessageError(f"task {task_id} does not exist (expired or never created)")
        if claim.outcome == "busy":
            assert claim.task is not None
            # Another copy of this message is being processed; look again once its lease ends,
            # so a worker that died mid-run is still taken over.
            lease_left = (claim.task.lease_expires_at or now) - now
            raise RetryLaterError(
                f"task {task_id} is running elsewhere", delay_seconds=max(1, lease_left + 1)
            )
        if claim.outcome == "done":
            assert claim.task is not None
            return self._resend_callback_if_lost(claim.task)
        assert claim.task is not None
        return self._run(claim.task, owner=owner, receive_count=receive_count, llm=llm)

    def _run(self, task: Task, *, owner: str, receive_count: int, llm: LLMClient) -> Outcome:
        try:
            step = run_step(
                store=self.sessions,
                llm=llm,
                tools=self.tools,
                session_id=task.session_id,
                user_input=task.input,
                max_iterations=self.agent.max_iterations,
                system_prompt=self.agent.system_prompt,
            )
        except Exception as exc:
            return self._failed(task, exc, owner=owner, receive_count=receive_count)
        result = {
            "output": step.output,
            "session_id": step.session_id,
            "session_version": step.version,
            "iterations": step.iterations,
            "stop_reason": step.stop_reason,
            "usage": {
                "input_tokens": step.usage.input_tokens,
                "output_tokens": step.usage.output_tokens,
            },
        }
        done = self.store.complete(
            task.task_id,
            owner=owner,
            status="succeeded",
            result=result,
            error=None,
            retryable=False,
            has_callback=task.callback_url is not None,
            now=int(self.clock()),
        )
        if done is None:
            # Our lease ran out and another worker took the task over; its outcome stands.
            return "duplicate"
        self._send_first_callback(done)
        return "succeeded"

    def _failed(self, task: Task, exc: Exception, *, owner: str, receive_count: int) -> Outcome:
        permanent = _permanent(exc)
        last_try = receive_count >= self.settings.max_receive_count
        now = int(self.clock())
        if permanent is None and not last_try:
            self.store.release(
                task.task_id, owner=owner, error=_transient_error(exc).message, now=now
            )
            raise RetryLaterError(
                f"task {task.task_id}: {type(exc).__name__}; retrying",
                delay_seconds=retry_backoff(
                    receive_count,
                    base_seconds=self.settings.task_retry_base_seconds,
                    max_seconds=self.settings.task_retry_max_seconds,
                ),
            ) from exc
        done = self.store.complete(
            task.task_id,
            owner=owner,
            status="failed",
            result=None,
            error=permanent or _transient_error(exc),
            retryable=permanent is None,
            has_callback=task.callback_url is not None,
            now=now,
        )
        if done is not None:
            self._send_first_callback(done)
        if permanent is not None:
            return "failed"
        # The queue's last try: the message goes on to the DLQ, where an operator can redrive it
        # (the task is retryable). Visible at once, so the move does not wait a whole back-off.
        raise RetryLaterError(
            f"task {task.task_id} failed on its last try: {type(exc).__name__}", delay_seconds=0
        ) from exc

    def _send_first_callback(self, task: Task) -> None:
        if task.callback_url is None:
            return
        message = CallbackMessage(task_id=task.task_id, event=task.callback_event, attempt=1)
        self.callback_queue.send(message.to_dict())
        self.store.mark_callback_enqueued(
            task.task_id, event=task.callback_event, now=int(self.clock())
        )

    def _resend_callback_if_lost(self, task: Task) -> Outcome:
        # A worker that crashed after recording the outcome but before queueing the callback
        # leaves it ``pending``; this redelivery finishes the hand-off. (If the callback worker
        # already holds it, its attempt claim makes the extra message a no-op.)
        if task.callback_url is not None and task.callback_status == "pending":
            self._send_first_callback(task)
            return "callback_resent"
        return "duplicate"
