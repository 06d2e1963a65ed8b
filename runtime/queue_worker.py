"""The container image's long-running queue worker (``python -m runtime.service worker``).

It consumes the webhook pattern's task queue (and, with ``WORKER_QUEUES``, the callback queue)
the way the Lambda handlers do, without Lambda's 15-minute ceiling. Each message is handed to the
same :meth:`TaskWorker.process <runtime.tasks.worker.TaskWorker.process>` (or
:meth:`CallbackWorker.process <runtime.tasks.callbacks.CallbackWorker.process>`) the Lambda
calls, and its ending becomes a queue action exactly as in :mod:`runtime.handlers.sqs_batch`:

* it returns: the message is deleted;
* :class:`~runtime.tasks.queues.RetryLaterError`: its visibility is set to ``delay_seconds``;
* anything else: the message is left alone; it comes back when its visibility runs out (at most
  ``WORKER_VISIBILITY_SECONDS`` after the last heartbeat) and SQS dead-letters it after
  ``maxReceiveCount`` receives.

**Visibility heartbeat.** Messages are received with ``VisibilityTimeout=WORKER_VISIBILITY_SECONDS``
and, while held (running, or received in the same batch and waiting their turn), a background
thread extends them back to that value every ``WORKER_HEARTBEAT_SECONDS`` (default: a third of
it, so two beats can fail before a message is redelivered). A task may therefore run far longer
than the queue's visibility timeout, while a crashed worker's message is back within one
visibility period. A message stops being extended the moment its task ends, before its outcome
is applied, so a beat can never undo a back-off.

**Graceful shutdown.** On SIGTERM/SIGINT the worker stops receiving at once and releases the
messages it holds but has not started (visibility 0: another worker takes them now). The task in
progress gets ``WORKER_DRAIN_SECONDS`` (keep it below ECS's ``stopTimeout``) to finish; if it
does, its outcome is applied as usual. If it does not, its message is released (visibility 0),
never deleted, and the process exits anyway: the task record still carries this worker's lease,
so the next receive sees it ``busy`` and retries after the lease ends (the takeover the task
store is built for). Exit status: 0 when every started task finished, 1 when one was cut off.

**Model time budget.** Each task's model calls go through :class:`~runtime.wiring.DeadlineLLM`
with a time left of the task lease (``TASK_LEASE_SECONDS``, after which another worker may take
the task over) while running, and of the drain time left once shutdown began. A model call that
starts during the drain is sized to end before it, or is refused, in which case the task worker
records a transient failure and the message gets its retry back-off: a clean drain. Only a call
already in flight at SIGTERM can outlive the drain, and then the message is released as above.

**Redis queues.** A queue URL of the form ``redis://host:port/db#<list-name>`` (``rediss://`` for
TLS; the AUTH token in ``REDIS_PASSWORD``) is served by
:class:`~runtime.tasks.redis_queue.RedisQueueClient`, which has SQS's semantics (visibility,
receive counts, dead-lettering after ``TASK_MAX_RECEIVE_COUNT`` receives, delays) and keeps the
ready messages in the plain list ``<list-name>`` that KEDA's ``redis`` trigger measures with
``LLEN``. Everything above applies unchanged; each queue URL picks its own backend, so the task
queue may be in Redis while the callback queue is on SQS.

**One-shot mode** (a KEDA ScaledJob: one Job per backlog, not a long-running Deployment):
``--max-messages N`` or ``WORKER_MAX_MESSAGES=N`` (the flag wins). The worker receives at most N
messages in all (its consumers share the count) and exits once it has finished them, or as soon
as a receive comes back empty (after its ``WORKER_RECEIVE_WAIT_SECONDS`` long poll): nothing to do,
so the Job completes rather than idles. A receive that fails is retried with back-off, not taken
for an empty queue. Shutdown and exit status are as above: 0 when every started task finished.

**ECS scale-in protection.** With ``ECS_AGENT_URI`` set (ECS sets it in every task), the worker
asks the agent to protect the task while it holds messages and drops the protection once a
receive comes back empty, so a scale-in never stops a task mid-run. Failures are logged only:
protection is an optimisation; the drain and the visibility rules keep the work safe without it.

Logs are one JSON object per line on stdout (the stdlib ``logging``; Powertools is not in the
container image), with ``queue``, ``message_id``, ``task_id``, ``receive_count`` and ``outcome``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.observability.correlation import CorrelationIdFilter, correlation
from runtime.settings import RuntimeSettings, SettingsError, parse_environment
from runtime.tasks.queues import RetryLaterError
from runtime.wiring import DeadlineLLM, LLMFactory

if TYPE_CHECKING:
    import httpx
    from mypy_boto3_sqs.client import SQSClient

    from runtime.tasks.callbacks import CallbackWorker
    from runtime.tasks.wiring import TaskClients
    from runtime.tasks.worker import TaskWorker

logger = logging.getLogger("runtime.queue_worker")

QueueName = Literal["task", "callback"]
# How often a waiting loop looks at its task and the stop event: the lag of a drain decision.
_POLL_SECONDS = 0.05
# SQS batch calls take at most ten entries.
_SQS_BATCH = 10
# Receive errors (throttling, network) back off up to this long between tries.
_MAX_RECEIVE_BACKOFF_SECONDS = 30.0
# After the drain, the main thread waits this much longer for the loops to return.
_EXIT_MARGIN_SECONDS = 2.0
# The ECS agent's ceiling for ExpiresInMinutes (48 hours).
_MAX_PROTECTION_MINUTES = 2880
# The environment cannot run a worker (EX_CONFIG in sysexits.h), as for ``runtime.service serve``.
EXIT_CONFIG_ERROR = 78


class WorkerSettings(BaseModel):
    """The worker's own knobs; the queues, tables and model come from the shared settings."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Which queues this process consumes: scale task and callback workers apart, or run both.
    queues: Literal["task", "callback", "both"] = Field(default="task", alias="WORKER_QUEUES")
    # Messages per receive. Tasks run one at a time per queue, so 1 leaves the rest of the
    # queue to other workers; a larger batch saves receives for short tasks.
    batch_size: int = Field(default=1, ge=1, le=10, alias="WORKER_BATCH_SIZE")
    # Visibility of a held message, renewed by the heartbeat: how long a crashed worker's message
    # stays hidden before another worker gets it.
    visibility_seconds: int = Field(default=60, ge=2, le=43_200, alias="WORKER_VISIBILITY_SECONDS")
    # Time the task in progress gets to finish after SIGTERM: below the platform's kill timeout
    # (ECS's stopTimeout, at most 120 s; a pod's terminationGracePeriodSeconds, which has no cap,
    # so the Kubernetes worker drains for its longest task).
    drain_seconds: float = Field(default=25.0, ge=0, le=86_400, alias="WORKER_DRAIN_SECONDS")
    # Interval between visibility extensions; default visibility / 3.
    heartbeat_seconds: float | None = Field(default=None, gt=0, alias="WORKER_HEARTBEAT_SECONDS")
    # Long-poll wait. 20 (SQS's maximum) in deployments: fewer empty receives to pay for; lower
    # only for local queues and tests, where a stop should not wait out a 20-second poll.
    receive_wait_seconds: int = Field(default=20, ge=1, le=20, alias="WORKER_RECEIVE_WAIT_SECONDS")
    # One-shot mode (KEDA ScaledJob): receive at most this many messages, exit when they are
    # finished or a receive comes back empty. Unset: run until SIGTERM. ``--max-messages`` wins.
    max_messages: int | None = Field(default=None, ge=1, alias="WORKER_MAX_MESSAGES")
    # Set by ECS in every task (not configured by hand): enables scale-in protection.
    ecs_agent_uri: str | None = Field(default=None, alias="ECS_AGENT_URI")

    @model_validator(mode="after")
    def _heartbeat_inside_visibility(self) -> WorkerSettings:
        if self.heartbeat_seconds is not None and self.heartbeat_seconds >= self.visibility_seconds:
            raise ValueError(
                "WORKER_HEARTBEAT_SECONDS must be less than WORKER_VISIBILITY_SECONDS, or held "
                "messages become visible between beats"
            )
        return self

    @property
    def heartbeat_interval(self) -> float:
        if self.heartbeat_seconds is not None:
            return self.heartbeat_seconds
        return self.visibility_seconds / 3

    def consumed(self) -> tuple[QueueName, ...]:
        return ("task", "callback") if self.queues == "both" else (self.queues,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerSettings:
        return parse_environment(cls, environ, "worker")


@dataclass(frozen=True)
class ReceivedMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int

    @classmethod
    def from_sqs(cls, message: Mapping[str, Any]) -> ReceivedMessage:
        attributes = message.get("Attributes") or {}
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message["Body"],
            receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
        )

    @property
    def task_id(self) -> str | None:
        """For the logs only: both queues' messages name their task (processing re-parses)."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        task_id = data.get("task_id") if isinstance(data, dict) else None
        return task_id if isinstance(task_id, str) else None

    @property
    def correlation_id(self) -> str:
        """The task id (what the caller holds: POST /webhook answered it), else the message id."""
        return self.task_id or self.message_id


Handler = Callable[[ReceivedMessage, Callable[[], float]], str]
"""Runs one message; gets the seconds its model calls may still use. Returns an outcome label,
raises RetryLaterError for a back-off, anything else to leave the message for redelivery."""


def task_handler(worker: TaskWorker, llm_factory: LLMFactory) -> Handler:
    """The task queue's handler: the Lambda's ``TaskWorker.process`` with a drain-aware budget."""

    def handle(message: ReceivedMessage, seconds_left: Callable[[], float]) -> str:
        return worker.process(
            message.body,
            receive_count=message.receive_count,
            llm=DeadlineLLM(llm_factory, seconds_left),
        )

    return handle


def callback_handler(worker: CallbackWorker) -> Handler:
    """The callback queue's handler: one delivery attempt, as the callback Lambda makes."""

    def handle(message: ReceivedMessage, _seconds_left: Callable[[], float]) -> str:
        # An attempt is bounded by CALLBACK_TIMEOUT_SECONDS (at most 60 s), not by a budget.
        return worker.process(message.body)

    return handle


# --- ECS task scale-in protection --------------------------------------------------------------


class TaskProtection:
    """Scale-in protection of this ECS task while any consumer holds messages.

    Consumers :meth:`acquire` when they start holding messages and :meth:`release` when a receive
    comes back empty; the agent is called only when the count moves between 0 and 1, and again
    (:meth:`refresh`) when half the protection's lifetime has passed while busy. The expiry is a
    safety net: a worker that dies protected is unprotected again after ``expires_in_minutes``.
    """

    def __init__(
        self,
        agent_uri: str,
        *,
        expires_in_minutes: int,
        http_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeout_seconds: float = 2.0,
    ) -> None:
        if not 1 <= expires_in_minutes <= _MAX_PROTECTION_MINUTES:
            raise ValueError(f"expires_in_minutes must be 1-{_MAX_PROTECTION_MINUTES}")
        self.url = agent_uri.rstrip("/") + "/task-protection/v1/state"
        self.expires_in_minutes = expires_in_minutes
        self._http_client = http_client
        self._clock = clock
        self._timeout = timeout_seconds
        # Held while calling the agent, so an "on" and an "off" can never arrive out of order.
        self._lock = threading.Lock()
        self._holders = 0
        self._enabled_at: float | None = None

    def acquire(self) -> None:
        with self._lock:
            self._holders += 1
            if self._holders == 1 or self._due():
                self._enabled_at = self._clock() if self._put(enabled=True) else None

    def refresh(self) -> None:
        with self._lock:
            if self._holders > 0 and self._due():
                self._enabled_at = self._clock() if self._put(enabled=True) else None

    def release(self) -> None:
        with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            if self._holders == 0:
                self._put(enabled=False)
                self._enabled_at = None

    def close(self) -> None:
        if self._http_client is not None:
            self._http_client.close()

    def _due(self) -> bool:
        # Not enabled (or the last call failed), or past half its lifetime: (re)enable.
        if self._enabled_at is None:
            return True
        return self._clock() - self._enabled_at >= self.expires_in_minutes * 30

    def _client(self) -> httpx.Client:
        if self._http_client is None:
            import httpx

            self._http_client = httpx.Client(timeout=self._timeout)
        return self._http_client

    def _put(self, *, enabled: bool) -> bool:
        body: dict[str, Any] = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = self.expires_in_minutes
        try:
            response = self._client().put(self.url, json=body)
            answer = response.json() if response.content else {}
        except Exception as exc:  # the agent unreachable or a garbled answer: never fatal
            logger.warning(
                "task protection call failed",
                extra={"protection_enabled": enabled, "error": f"{type(exc).__name__}: {exc}"},
            )
            return False
        # The agent answers 200 with {"failure": ...} when ECS refused the change.
        failure = (
            (answer.get("failure") or answer.get("error")) if isinstance(answer, dict) else None
        )
        if response.status_code >= 300 or failure:
            logger.warning(
                "task protection refused",
                extra={
                    "protection_enabled": enabled,
                    "status_code": response.status_code,
                    "error": failure or response.text[:500],
                },
            )
            return False
        logger.info("task protection set", extra={"protection_enabled": enabled})
        return True


# --- visibility heartbeat ----------------------------------------------------------------------


class VisibilityHeartbeat:
    """Keeps held messages invisible: every ``interval`` seconds, back to ``visibility_seconds``.

    :meth:`drop` takes the beat's lock, so once it returns no extension of that message is in
    flight or will follow: the caller's own visibility change or delete is the last word.
    """

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        *,
        queue: str,
        visibility_seconds: int,
        interval_seconds: float,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue = queue
        self._visibility = visibility_seconds
        self._interval = interval_seconds
        self._lock = threading.Lock()
        self._held: dict[str, ReceivedMessage] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"{queue}-visibility-heartbeat", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def hold(self, messages: Iterable[ReceivedMessage]) -> None:
        with self._lock:
            for message in messages:
                self._held[message.message_id] = message

    def drop(self, messages: Iterable[ReceivedMessage]) -> None:
        with self._lock:
            for message in messages:
                self._held.pop(message.message_id, None)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            with self._lock:
                held = list(self._held.values())
                if held:
                    failed = change_visibility(
                        self._sqs, self._queue_url, held, seconds=self._visibility
                    )
                    for message_id, error in failed.items():
                        logger.warning(
                            "visibility extension failed",
                            extra={"queue": self._queue, "message_id": message_id, "error": error},
                        )


def change_visibility(
    sqs: SQSClient, queue_url: str, messages: Sequence[ReceivedMessage], *, seconds: int
) -> dict[str, str]:
    """Set the visibility of ``messages``; returns ``{message_id: error}`` for those it missed."""
    from botocore.exceptions import BotoCoreError, ClientError

    failed: dict[str, str] = {}
    for start in range(0, len(messages), _SQS_BATCH):
        chunk = messages[start : start + _SQS_BATCH]
        try:
            response = sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {
                        "Id": str(index),
                        "ReceiptHandle": message.receipt_handle,
                        "VisibilityTimeout": seconds,
                    }
                    for index, message in enumerate(chunk)
                ],
            )
        except (BotoCoreError, ClientError) as exc:
            failed.update({message.message_id: str(exc) for message in chunk})
            continue
        for entry in response.get("Failed", []):
            message = chunk[int(entry["Id"])]
            failed[message.message_id] = f"{entry.get('Code')}: {entry.get('Message', '')}"
    return failed


# --- one queue's loop --------------------------------------------------------------------------


class MessageBudget:
    """The messages a one-shot worker may still receive, shared by its consumers.

    Before each receive a consumer takes up to a batch (:meth:`take`), and afterwards gives back
    what the receive did not fill (:meth:`give_back`): the process never receives more than its
    total, whichever queues the messages come from.
    """

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError("a message budget must be at least 1")
        self._left = total
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        with self._lock:
            granted = min(wanted, self._left)
            self._left -= granted
            return granted

    def give_back(self, count: int) -> None:
        with self._lock:
            self._left += count


@dataclass
class _Run:
    """One message being processed on its own thread; ``lock`` orders its end vs. a cut-off."""

    message: ReceivedMessage
    started: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str | None = None
    error: BaseException | None = None
    abandoned: bool = False


class QueueConsumer:
    """Receives from one queue and runs its messages one at a time until ``stop`` is set.

    Everything it needs is injected (SQS client, handler, clock, stop event), so tests drive it
    against moto with a fake model. :meth:`run` returns ``True`` after a clean drain and
    ``False`` when a task had to be cut off (its message released) or the loop failed.
    """

    def __init__(
        self,
        *,
        queue: QueueName,
        sqs: SQSClient,
        queue_url: str,
        handler: Handler,
        settings: WorkerSettings,
        lease_seconds: float,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        protection: TaskProtection | None = None,
        budget: MessageBudget | None = None,
    ) -> None:
        self.queue = queue
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._settings = settings
        self._lease_seconds = lease_seconds
        self._stop = stop
        self._clock = clock
        self._protection = protection
        if budget is None and settings.max_messages is not None:
            budget = MessageBudget(settings.max_messages)
        self._budget = budget
        self._heartbeat = VisibilityHeartbeat(
            sqs,
            queue_url,
            queue=queue,
            visibility_seconds=settings.visibility_seconds,
            interval_seconds=settings.heartbeat_interval,
        )
        self._waiting: deque[ReceivedMessage] = deque()
        self._drain_lock = threading.Lock()
        self._drain_deadline: float | None = None
        self._protected = False
        self._receive_backoff = 0.0
        self.in_task = False
        # Task threads cut off by the drain; they end with the process (tests join them).
        self.abandoned: list[threading.Thread] = []

    # -- the loop

    def run(self) -> bool:
        log = {"queue": self.queue}
        logger.info("consumer started", extra=log)
        self._heartbeat.start()
        clean = True
        try:
            while not self._stop.is_set():
                limit = self._settings.batch_size
                if self._budget is not None:
                    limit = self._budget.take(limit)
                    if limit == 0:
                        logger.info("message budget used up; one-shot consumer done", extra=log)
                        break
                messages = self._receive(limit)
                if self._budget is not None:
                    self._budget.give_back(limit - len(messages or ()))
                if not messages:
                    self._set_protected(False)
                    if messages is not None and self._budget is not None:
                        # One-shot: nothing to do, so the Job completes rather than idles.
                        logger.info("queue empty; one-shot consumer done", extra=log)
                        break
                    continue
                self._set_protected(True)
                self._heartbeat.hold(messages)
                self._waiting.extend(messages)
                while self._waiting and not self._stop.is_set():
                    if not self._process(self._waiting.popleft()):
                        clean = False
                        break
        except Exception:
            # A bug, not a message's failure (those are handled in _process): stop the whole
            # process so the platform restarts it rather than run with a dead loop.
            logger.exception("consumer failed; stopping the worker", extra=log)
            self._stop.set()
            clean = False
        finally:
            self._release_waiting()
            self._heartbeat.stop()
            self._set_protected(False)
        logger.info("consumer stopped", extra={**log, "clean": clean})
        return clean

    def _receive(self, limit: int) -> list[ReceivedMessage] | None:
        """Up to ``limit`` messages; None when the receive failed (and was backed off)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=limit,
                WaitTimeSeconds=self._settings.receive_wait_seconds,
                VisibilityTimeout=self._settings.visibility_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except (BotoCoreError, ClientError) as exc:
            self._receive_backoff = min(
                _MAX_RECEIVE_BACKOFF_SECONDS, max(1.0, self._receive_backoff * 2)
            )
            logger.warning(
                "receive failed; backing off",
                extra={
                    "queue": self.queue,
                    "error": str(exc),
                    "backoff_seconds": self._receive_backoff,
                },
            )
            self._stop.wait(self._receive_backoff)
            return None
        self._receive_backoff = 0.0
        messages = [ReceivedMessage.from_sqs(message) for message in response.get("Messages", [])]
        if messages and self._stop.is_set():
            # Received while the stop arrived: hand them straight back.
            self._release(messages, reason="received during shutdown")
            return []
        return messages

    def _process(self, message: ReceivedMessage) -> bool:
        """Run one message to its end, or cut it off at the drain deadline (returns False)."""
        with correlation(message.correlation_id):
            return self._process_correlated(message)

    def _process_correlated(self, message: ReceivedMessage) -> bool:
        run = _Run(message=message, started=self._clock())
        log = self._log_fields(message)
        logger.info("message started", extra=log)
        self.in_task = True
        thread = threading.Thread(
            target=self._execute,
            args=(run,),
            name=f"{self.queue}-message-{message.message_id[:8]}",
            daemon=True,
        )
        thread.start()
        try:
            while not run.done.wait(_POLL_SECONDS):
                deadline = self.drain_deadline()
                if deadline is None:
                    continue
                self._release_waiting()
                if self._clock() < deadline:
                    continue
                with run.lock:
                    if not run.done.is_set():
                        run.abandoned = True
                if run.abandoned:
                    self._heartbeat.drop([message])
                    self._release([message], reason="drain time over")
                    self.abandoned.append(thread)
                    logger.warning(
                        "task cut off by shutdown; message released",
                        extra={**log, "outcome": "released", "duration_ms": self._ms(run)},
                    )
                    return False
                break
            self._heartbeat.drop([message])
            self._settle(run, log)
            return True
        finally:
            self.in_task = False

    def _execute(self, run: _Run) -> None:
        outcome: str | None = None
        error: BaseException | None = None
        try:
            # A thread of its own starts with an empty context: set the message's id again.
            with correlation(run.message.correlation_id):
                outcome = self._handler(run.message, lambda: self._seconds_left(run))
        except BaseException as exc:  # reported by the loop thread, which owns the message
            error = exc
        with run.lock:
            run.outcome, run.error = outcome, error
            run.done.set()
            abandoned = run.abandoned
        if abandoned:
            # Its message went back to the queue; whoever receives it next sees this outcome in
            # the task record (a finished task is not run twice).
            logger.warning(
                "task finished after its message was released",
                extra={
                    **self._log_fields(run.message),
                    "outcome": outcome or type(error).__name__,
                },
            )

    def _settle(self, run: _Run, log: dict[str, Any]) -> None:
        """Apply a finished message's outcome to the queue, exactly as the Lambda adapters do."""
        fields = {**log, "duration_ms": self._ms(run)}
        if run.error is None:
            self._delete(run.message)
            logger.info("message done", extra={**fields, "outcome": run.outcome})
        elif isinstance(run.error, RetryLaterError):
            delay = run.error.delay_seconds
            failed = change_visibility(self._sqs, self._queue_url, [run.message], seconds=delay)
            logger.warning(
                "message postponed",
                extra={
                    **fields,
                    "outcome": "retry_later",
                    "delay_seconds": delay,
                    "reason": str(run.error),
                    **({"error": failed[run.message.message_id]} if failed else {}),
                },
            )
        else:
            logger.error(
                "message failed; left for redelivery",
                extra={**fields, "outcome": "error"},
                exc_info=(type(run.error), run.error, run.error.__traceback__),
            )

    # -- drain and time budget

    def drain_deadline(self) -> float | None:
        """When the drain ends, once a stop was requested (fixed the first time it is seen)."""
        if not self._stop.is_set():
            return None
        with self._drain_lock:
            if self._drain_deadline is None:
                self._drain_deadline = self._clock() + self._settings.drain_seconds
            return self._drain_deadline

    def _seconds_left(self, run: _Run) -> float:
        now = self._clock()
        left = run.started + self._lease_seconds - now
        deadline = self.drain_deadline()
        return left if deadline is None else min(left, deadline - now)

    # -- queue actions

    def _delete(self, message: ReceivedMessage) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message.receipt_handle)
        except (BotoCoreError, ClientError) as exc:
            # The work is recorded; a redelivered copy finds the task done and is deleted then.
            logger.warning("delete failed", extra={**self._log_fields(message), "error": str(exc)})

    def _release(self, messages: Sequence[ReceivedMessage], *, reason: str) -> None:
        failed = change_visibility(self._sqs, self._queue_url, messages, seconds=0)
        for message in messages:
            logger.info(
                "message released",
                extra={
                    **self._log_fields(message),
                    "outcome": "released",
                    "reason": reason,
                    **(
                        {"error": failed[message.message_id]}
                        if message.message_id in failed
                        else {}
                    ),
                },
            )

    def _release_waiting(self) -> None:
        if not self._waiting:
            return
        waiting = list(self._waiting)
        self._waiting.clear()
        self._heartbeat.drop(waiting)
        self._release(waiting, reason="not started before shutdown")

    def _set_protected(self, busy: bool) -> None:
        if self._protection is None:
            return
        if busy and self._protected:
            self._protection.refresh()
        elif busy:
            self._protection.acquire()
        elif self._protected:
            self._protection.release()
        self._protected = busy

    def _log_fields(self, message: ReceivedMessage) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "message_id": message.message_id,
            "task_id": message.task_id,
            "receive_count": message.receive_count,
        }

    def _ms(self, run: _Run) -> int:
        return int((self._clock() - run.started) * 1000)


# --- process: consumers, signals, logging, main ------------------------------------------------


def run_consumers(
    consumers: Sequence[QueueConsumer],
    stop: threading.Event,
    *,
    drain_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run each consumer on its own thread until ``stop``; the process exit status."""
    results: dict[str, bool] = {}

    def target(consumer: QueueConsumer) -> None:
        results[consumer.queue] = consumer.run()

    threads = [
        threading.Thread(target=target, args=(c,), name=f"{c.queue}-consumer", daemon=True)
        for c in consumers
    ]
    for thread in threads:
        thread.start()
    # Short waits keep this (main) thread responsive: signal handlers run between them.
    while not stop.is_set() and any(thread.is_alive() for thread in threads):
        stop.wait(0.5)
    stop.set()  # one consumer ending (a crash) stops the others too
    deadline = clock() + drain_seconds + _EXIT_MARGIN_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - clock()))
    status = 0
    for consumer, thread in zip(consumers, threads, strict=True):
        if thread.is_alive():
            # Still inside a long poll (or an SQS call): nothing of its own is running. What the
            # poll returns after the exit reappears when its visibility runs out.
            if consumer.in_task:
                status = 1
            logger.warning("consumer still busy at exit", extra={"queue": consumer.queue})
        elif not results.get(consumer.queue, False):
            status = 1
    logger.info("worker stopped", extra={"exit_status": status})
    return status


def install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM (ECS stopping the task) and SIGINT set ``stop``; returns a function that restores
    the previous handlers. Must be called from the main thread."""
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.getsignal(signum) for signum in signals}

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            logger.info("shutdown already in progress", extra={"signal": name})
            return
        logger.info("shutdown requested; draining", extra={"signal": name})
        stop.set()

    for signum in signals:
        signal.signal(signum, handle)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


# LogRecord attributes that are not "extra" fields.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception_type"] = record.exc_info[0].__name__
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """JSON lines on ``stream`` (stdout) for the whole process, read by the awslogs driver.

    The worker owns its process, so it replaces the root handlers: no line is logged twice.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter())
    # Each line written while a message runs carries its task id as the correlation id.
    handler.addFilter(CorrelationIdFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Their INFO lines (credential lookups, retries) are noise at one per receive.
    for noisy in ("botocore", "boto3", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


def build_consumers(
    settings: WorkerSettings,
    clients: TaskClients,
    stop: threading.Event,
    *,
    environ: Mapping[str, str],
) -> tuple[list[QueueConsumer], TaskProtection | None]:
    """The consumers ``WORKER_QUEUES`` names, wired as the Lambda handlers wire theirs; each
    queue's client (SQS or Redis) is the one its URL calls for."""
    consumed = settings.consumed()
    lease_by_queue: dict[QueueName, float] = {}
    handlers: dict[QueueName, Handler] = {}
    if "task" in consumed:
        from runtime.wiring import build_dependencies

        agent = build_dependencies(RuntimeSettings.from_env(environ))
        handlers["task"] = task_handler(clients.task_worker(agent), agent.llm_factory)
        lease_by_queue["task"] = clients.settings.task_lease_seconds
    if "callback" in consumed:
        handlers["callback"] = callback_handler(clients.callback_worker())
        # An attempt's HTTP timeout plus time to record it, as the callback lease counts it.
        lease_by_queue["callback"] = clients.settings.callback_timeout_seconds + 30

    protection = None
    if settings.ecs_agent_uri:
        # Outlives the longest legitimate run (a task's lease); refreshed while busy.
        minutes = math.ceil(max(lease_by_queue.values()) / 60) + 1
        protection = TaskProtection(
            settings.ecs_agent_uri, expires_in_minutes=min(minutes, _MAX_PROTECTION_MINUTES)
        )
    urls: dict[QueueName, str] = {
        "task": clients.settings.task_queue_url,
        "callback": clients.settings.callback_queue_url,
    }
    # One count for the whole process: N messages per Job, whichever queue they come from.
    budget = MessageBudget(settings.max_messages) if settings.max_messages is not None else None
    consumers = [
        QueueConsumer(
            queue=name,
            sqs=clients.queue_client(urls[name]),
            queue_url=urls[name],
            handler=handlers[name],
            settings=settings,
            lease_seconds=lease_by_queue[name],
            stop=stop,
            protection=protection,
            budget=budget,
        )
        for name in consumed
    ]
    return consumers, protection


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker until SIGTERM/SIGINT (or, one-shot, until its messages are done or the
    queue is empty); the process exit status: 0 after a clean end, 1 if a task was cut off (or a
    consumer failed), :data:`EXIT_CONFIG_ERROR` for a bad environment."""
    parser = argparse.ArgumentParser(
        prog="python -m runtime.service worker",
        description="Consume the task (and callback) queue until SIGTERM; see WORKER_* settings.",
    )
    parser.add_argument(
        "--max-messages",
        type=_positive_int,
        metavar="N",
        help="one-shot (KEDA ScaledJob): exit 0 after N messages, or after an empty receive; "
        "overrides WORKER_MAX_MESSAGES",
    )
    args = parser.parse_args(argv)
    configure_logging()
    environ = dict(os.environ)
    try:
        from botocore.config import Config

        from runtime.tasks.settings import TaskSettings
        from runtime.tasks.wiring import TaskClients

        settings = WorkerSettings.from_env(environ)
        if args.max_messages is not None:
            settings = settings.model_copy(update={"max_messages": args.max_messages})
        clients = TaskClients(
            TaskSettings.from_env(environ),
            # The read timeout must outlast the 20-second long poll; standard retries ride out
            # throttling without the loop seeing it. (Redis queues poll client-side.)
            sqs_config=Config(
                read_timeout=settings.receive_wait_seconds + 10,
                connect_timeout=5,
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )
        stop = threading.Event()
        consumers, protection = build_consumers(settings, clients, stop, environ=environ)
    except SettingsError as exc:
        logger.error("invalid configuration", extra={"reason": str(exc)})
        return EXIT_CONFIG_ERROR
    logger.info(
        "worker starting",
        extra={
            "queues": list(settings.consumed()),
            "batch_size": settings.batch_size,
            "visibility_seconds": settings.visibility_seconds,
            "heartbeat_seconds": settings.heartbeat_interval,
            "drain_seconds": settings.drain_seconds,
            "max_messages": settings.max_messages,
            "task_protection": protection is not None,
        },
    )
    restore = install_signal_handlers(stop)
    try:
        return run_consumers(consumers, stop, drain_seconds=settings.drain_seconds)
    finally:
        restore()
        if protection is not None:
            protection.close()
