"""Callback delivery: ``CallbackWorker`` per message, its Lambda handler, ``RotatingSecret``.

Deliveries go to a real HTTP receiver on 127.0.0.1 and the task records live in moto. The
schedule tests use a fake clock, a fixed jitter draw and a queue fake that records every
``send``, so each delay is asserted exactly and nothing sleeps: a failed attempt schedules the
next one as a delayed message and returns.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from runtime.handlers import callback_worker
from runtime.tasks.callbacks import CallbackWorker, Outcome
from runtime.tasks.keys import RotatingSecret, SecretReadError
from runtime.tasks.queues import MAX_DELAY_SECONDS, CallbackMessage, RetryLaterError, SqsQueue
from runtime.tasks.settings import TaskSettings
from runtime.tasks.store import Task, TaskError, TaskStore
from runtime.webhooks import signing
from runtime.webhooks.delivery import retry_delay
from tests.fakes.clock import FakeClock
from tests.fakes.sqs_lambda import drain, lambda_record, queue_depth
from tests.fakes.webhook_receiver import RecordedRequest, Reply, WebhookReceiver
from tests.runtime.async_env import AsyncEnv, install_async_app, make_async_env, uninstall
from tests.runtime.conftest import FakeLambdaContext, ScriptedLLM, text

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

MAX_ATTEMPTS = 5
BASE_DELAY = 5
MAX_DELAY = 3600
# The jitter draw every scheduled delay in these tests uses.
FIXED_DRAW = 0.25
# The worker's lease on an attempt: CALLBACK_TIMEOUT_SECONDS (2, from make_async_env) + 30 s.
ATTEMPT_LEASE_SECONDS = 32


class RecordingQueue:
    """A ``MessageQueue`` that records ``(body, delay_seconds)``, with SQS's delay bound."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> None:
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"SQS refuses DelaySeconds={delay_seconds}")
        self.sent.append((dict(body), delay_seconds))


class FakeDNS:
    def __init__(self, records: Mapping[str, Sequence[str]]) -> None:
        self.records = {name: list(addresses) for name, addresses in records.items()}

    def __call__(self, host: str) -> list[str]:
        return list(self.records.get(host, []))


@dataclass
class Harness:
    """One moto env, a fake clock, and CallbackWorkers built over them."""

    env: AsyncEnv
    clock: FakeClock
    http: httpx.Client
    dns: FakeDNS
    queue: RecordingQueue = field(default_factory=RecordingQueue)

    @property
    def store(self) -> TaskStore:
        return self.env.store()

    @property
    def now(self) -> int:
        return int(self.clock())

    def worker(
        self,
        *,
        settings: TaskSettings | None = None,
        secrets: Callable[[], Sequence[str]] | None = None,
        draw: float = FIXED_DRAW,
    ) -> CallbackWorker:
        return CallbackWorker(
            store=self.store,
            callback_queue=self.queue,
            callback_dlq=SqsQueue(self.env.callback_dlq_url, client=self.env.sqs),
            signing_secrets=secrets or (lambda: [self.env.signing_secret]),
            http_client=self.http,
            settings=settings or self.env.settings(),
            resolve=self.dns,
            clock=self.clock,
            random=lambda: draw,
        )

    def finished_task(
        self,
        url: str,
        *,
        error: TaskError | None = None,
        metadata: Mapping[str, str] | None = None,
        retryable: bool = False,
    ) -> Task:
        """A task that ran and completed now, with its callback event opened (event 1)."""
        task_id = uuid.uuid4().hex
        self.store.create(
            task_id=task_id,
            user_input="what is 2 + 2?",
            session_id=f"s-{task_id}",
            callback_url=url,
            metadata=metadata or {},
            now=self.now,
        )
        assert self.store.claim(task_id, owner="w1", lease_seconds=60, now=self.now).task
        done = self.store.complete(
            task_id,
            owner="w1",
            status="failed" if error is not None else "succeeded",
            result=None if error is not None else {"output": "4", "iterations": 1},
            error=error,
            retryable=retryable,
            has_callback=True,
            now=self.now,
        )
        assert done is not None
        assert done.callback_event == 1
        return done

    def task(self, task_id: str) -> Task:
        task = self.store.get(task_id, now=self.now)
        assert task is not None
        return task

    def dlq_records(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in drain(self.env.sqs, self.env.callback_dlq_url)]


def message(task: Task, attempt: int = 1) -> str:
    return json.dumps(CallbackMessage(task.task_id, task.callback_event, attempt).to_dict())


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def signatures(request: RecordedRequest) -> list[str]:
    return request.headers["webhook-signature"].split()


@pytest.fixture
def env(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[AsyncEnv]:
    yield make_async_env(
        monkeypatch,
        {
            "CALLBACK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "CALLBACK_BASE_DELAY_SECONDS": str(BASE_DELAY),
            "CALLBACK_MAX_DELAY_SECONDS": str(MAX_DELAY),
        },
    )
    uninstall()


@pytest.fixture
def clock() -> FakeClock:
    # Whole seconds at the real time: the moto secret's CreatedDate and the ingress (which
    # reads time.time()) agree with it, and epoch seconds stay exact.
    return FakeClock(float(int(time.time())))


@pytest.fixture
def harness(env: AsyncEnv, clock: FakeClock) -> Iterator[Harness]:
    with httpx.Client() as http:
        yield Harness(env, clock, http, FakeDNS({"localhost": ["127.0.0.1"]}))


# --- what is sent -------------------------------------------------------------------------------


def test_a_success_callback_is_signed_standard_webhooks_with_the_result_and_metadata(
    harness: Harness,
) -> None:
    """Headers, signature and payload of a ``task.succeeded`` callback, as a receiver sees them."""
    with WebhookReceiver(secrets=[harness.env.signing_secret], now=harness.clock) as receiver:
        task = harness.finished_task(receiver.url, metadata={"ticket": "T-1"})
        outcome = harness.worker().process(message(task))

    assert outcome == "delivered"
    webhook_id = f"msg_{task.task_id}_1"
    assert receiver.accepted == [webhook_id]
    [request] = receiver.requests
    assert request.headers["webhook-id"] == webhook_id
    assert request.headers["webhook-timestamp"] == str(harness.now)
    assert request.headers["content-type"] == "application/json"
    assert len(signatures(request)) == 1
    assert (
        signing.verify(request.headers, request.body, [harness.env.signing_secret], now=harness.now)
        == webhook_id
    )
    with pytest.raises(signing.InvalidSignatureError):
        signing.verify(request.headers, request.body, [signing.generate_secret()], now=harness.now)
    assert json.loads(request.body) == {
        "type": "task.succeeded",
        "timestamp": iso(harness.now),
        "data": {
            "task_id": task.task_id,
            "status": "succeeded",
            "session_id": f"s-{task.task_id}",
            "metadata": {"ticket": "T-1"},
            "created_at": task.created_at,
            "finished_at": task.finished_at,
            "result": {"output": "4", "iterations": 1},
            "error": None,
        },
    }
    after = harness.task(task.task_id)
    assert (after.callback_status, after.callback_attempts) == ("delivered", 1)
    assert after.callback_delivered_at == harness.now
    assert harness.queue.sent == []


def test_a_failure_callback_is_task_failed_with_the_error(harness: Harness) -> None:
    """A failed task's callback reports the error and no result."""
    with WebhookReceiver(secrets=[harness.env.signing_secret], now=harness.clock) as receiver:
        task = harness.finished_task(
            receiver.url, error=TaskError("model_unavailable", "the provider answered 503")
        )
        assert harness.worker().process(message(task)) == "delivered"

    payload = json.loads(receiver.requests[0].body)
    assert payload["type"] == "task.failed"
    assert payload["data"]["status"] == "failed"
    assert payload["data"]["result"] is None
    assert payload["data"]["error"] == {
        "code": "model_unavailable",
        "message": "the provider answered 503",
    }


# --- the retry schedule -------------------------------------------------------------------------


def test_a_receiver_that_always_fails_gets_max_attempts_then_one_dlq_record(
    harness: Harness,
) -> None:
    """Each failed attempt queues exactly one next attempt with the jittered back-off; the last
    one ends the callback ``failed`` with one DLQ record holding the last error."""
    worker = harness.worker()
    with WebhookReceiver(reply=Reply(500, b"upstream exploded")) as receiver:
        task = harness.finished_task(receiver.url)
        body = message(task)
        attempt_times: list[int] = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            attempt_times.append(harness.now)
            outcome = worker.process(body)
            after = harness.task(task.task_id)
            assert after.callback_attempts == attempt
            assert after.callback_last_error == "HTTP 500: upstream exploded"
            if attempt == MAX_ATTEMPTS:
                break
            assert outcome == "retry_scheduled"
            assert after.callback_status == "retrying"
            assert len(harness.queue.sent) == attempt
            next_body, delay = harness.queue.sent[-1]
            assert next_body == CallbackMessage(task.task_id, 1, attempt + 1).to_dict()
            expected = retry_delay(
                attempt, base_seconds=BASE_DELAY, max_seconds=MAX_DELAY, random=lambda: FIXED_DRAW
            )
            assert delay == round(expected)
            harness.clock.advance(delay)
            body = json.dumps(next_body)

    assert outcome == "failed"
    # base 5 s doubling, equal jitter with the draw 0.25: 0.625 x (5, 10, 20, 40), rounded.
    assert [delay for _, delay in harness.queue.sent] == [3, 6, 12, 25]
    assert len(harness.queue.sent) == MAX_ATTEMPTS - 1  # nothing after the last attempt
    assert len(receiver.requests) == MAX_ATTEMPTS
    # One outcome, one webhook-id across every attempt; each attempt stamped with its own time.
    assert {r.headers["webhook-id"] for r in receiver.requests} == {f"msg_{task.task_id}_1"}
    assert [int(r.headers["webhook-timestamp"]) for r in receiver.requests] == attempt_times
    final = harness.task(task.task_id)
    assert (final.callback_status, final.callback_attempts) == ("failed", MAX_ATTEMPTS)
    assert final.callback_delivered_at is None
    [record] = harness.dlq_records()
    expected_record = {
        "task_id": task.task_id,
        "event": 1,
        "callback_url": receiver.url,
        "webhook_id": f"msg_{task.task_id}_1",
        "attempts": MAX_ATTEMPTS,
        "last_status": 500,
        "last_error": "HTTP 500: upstream exploded",
        "reason": "attempts_exhausted",
        "failed_at": attempt_times[-1],
    }
    assert {name: record.get(name) for name in expected_record} == expected_record


def test_redriving_a_dead_lettered_callback_starts_its_attempts_over_once(
    harness: Harness,
) -> None:
    """The callback DLQ record is a callback message marked ``restart``: moving it back to the
    callback queue (what ``aws sqs start-message-move-task`` does) runs the attempts again from 1
    and delivers; a second copy of the same record changes nothing."""
    settings = harness.env.settings().model_copy(update={"callback_max_attempts": 1})
    worker = harness.worker(settings=settings)
    receiver_down = True

    def reply(_: RecordedRequest) -> Reply | None:
        return Reply(503, b"maintenance") if receiver_down else None

    with WebhookReceiver([harness.env.signing_secret], reply=reply) as receiver:
        task = harness.finished_task(receiver.url)
        assert worker.process(message(task)) == "failed"
        [record] = harness.dlq_records()
        assert record["restart"] is True
        assert harness.task(task.task_id).callback_status == "failed"

        receiver_down = False
        redriven = json.dumps(record)
        assert worker.process(redriven) == "delivered"
        assert worker.process(redriven) == "stale"

    assert [r.headers["webhook-id"] for r in receiver.requests] == [f"msg_{task.task_id}_1"] * 2
    assert receiver.accepted == [f"msg_{task.task_id}_1"]
    final = harness.task(task.task_id)
    assert (final.callback_status, final.callback_attempts) == ("delivered", 1)


def test_a_zero_base_delay_retries_at_once(harness: Harness) -> None:
    """CALLBACK_BASE_DELAY_SECONDS=0 is valid (local development, tests): the next attempt is
    queued without delay instead of the attempt crashing in retry_delay (a fixed bug)."""
    settings = harness.env.settings().model_copy(
        update={"callback_base_delay_seconds": 0, "callback_max_delay_seconds": 0}
    )
    with WebhookReceiver(reply=Reply(503)) as receiver:
        task = harness.finished_task(receiver.url)
        outcome = harness.worker(settings=settings).process(message(task))

    assert outcome == "retry_scheduled"
    assert harness.queue.sent == [(CallbackMessage(task.task_id, 1, 2).to_dict(), 0)]
    assert harness.task(task.task_id).callback_status == "retrying"


def test_back_offs_beyond_15_minutes_hop_through_not_before(harness: Harness) -> None:
    """A 2000 s wait is 900 + 900 + 200 s of SQS delays; early copies re-queue, never deliver."""
    settings = harness.env.settings().model_copy(
        update={"callback_base_delay_seconds": 2000, "callback_max_delay_seconds": 86_400}
    )

    def reply(request: RecordedRequest) -> Reply | None:
        return Reply(500) if len(receiver.requests) == 1 else None  # then verify -> 204

    worker = harness.worker(settings=settings, draw=1.0)
    with WebhookReceiver(
        secrets=[harness.env.signing_secret], reply=reply, now=harness.clock
    ) as receiver:
        task = harness.finished_task(receiver.url)
        start = harness.now
        assert worker.process(message(task)) == "retry_scheduled"
        due = start + 2000  # retry_delay(1, base 2000, draw 1.0) = 2000
        expected = {"v": 1, "task_id": task.task_id, "event": 1, "attempt": 2, "not_before": due}
        assert harness.queue.sent == [(expected, MAX_DELAY_SECONDS)]

        for elapsed, remaining in ((900, 900), (1800, 200), (1999, 1)):
            harness.clock.now = start + elapsed
            assert worker.process(json.dumps(expected)) == "waiting"
            assert harness.queue.sent[-1] == (expected, remaining)
            assert len(receiver.requests) == 1
            assert harness.task(task.task_id).callback_status == "retrying"

        harness.clock.now = due
        assert worker.process(json.dumps(expected)) == "delivered"

    assert len(receiver.requests) == 2
    assert receiver.accepted == [f"msg_{task.task_id}_1"]
    assert int(receiver.requests[1].headers["webhook-timestamp"]) == due
    assert len(harness.queue.sent) == 4


def test_a_2xx_after_failures_stops_the_retries(harness: Harness) -> None:
    """500, 500, then a verified 204: delivered on attempt 3, nothing queued after it; every
    attempt carries the same webhook-id, its own timestamp, and a signature valid for it."""
    secret = harness.env.signing_secret

    def reply(request: RecordedRequest) -> Reply | None:
        return Reply(500) if len(receiver.requests) <= 2 else None

    worker = harness.worker()
    with WebhookReceiver(secrets=[secret], reply=reply, now=harness.clock) as receiver:
        task = harness.finished_task(receiver.url)
        body = message(task)
        outcomes: list[Outcome] = []
        for _ in range(3):
            outcomes.append(worker.process(body))
            if outcomes[-1] == "retry_scheduled":
                next_body, delay = harness.queue.sent[-1]
                body = json.dumps(next_body)
                harness.clock.advance(delay)

    assert outcomes == ["retry_scheduled", "retry_scheduled", "delivered"]
    assert len(harness.queue.sent) == 2
    final = harness.task(task.task_id)
    assert (final.callback_status, final.callback_attempts) == ("delivered", 3)
    assert final.callback_delivered_at == harness.now
    assert receiver.accepted == [f"msg_{task.task_id}_1"]
    timestamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert len(set(timestamps)) == 3
    for request, timestamp in zip(receiver.requests, timestamps, strict=True):
        assert request.headers["webhook-id"] == f"msg_{task.task_id}_1"
        signing.verify(request.headers, request.body, [secret], now=timestamp)
        assert json.loads(request.body)["timestamp"] == iso(timestamp)


# --- outcomes that stop delivery ----------------------------------------------------------------


def test_410_gone_stops_and_marks_the_endpoint_gone(harness: Harness) -> None:
    """One attempt, no retry; other callbacks to the URL end ``gone`` without a request, and the
    ingress refuses new tasks naming it."""
    worker = harness.worker()
    with WebhookReceiver(reply=Reply(410)) as receiver:
        first = harness.finished_task(receiver.url)
        second = harness.finished_task(receiver.url)

        assert worker.process(message(first)) == "gone"
        assert len(receiver.requests) == 1
        assert harness.queue.sent == []
        assert harness.store.endpoint_gone_since(receiver.url, now=harness.now) == harness.now
        after = harness.task(first.task_id)
        assert (after.callback_status, after.callback_attempts) == ("gone", 1)

        assert worker.process(message(second)) == "gone"
        assert len(receiver.requests) == 1
        assert harness.task(second.task_id).callback_status == "gone"

        app = install_async_app(harness.env, ScriptedLLM(), resolve=harness.dns)
        status, _, body = app.submit({"input": "x", "callback_url": receiver.url})

    assert status == 400
    assert body["error"]["code"] == "callback_url_gone"
    assert harness.dlq_records() == []


def test_a_url_whose_dns_turned_private_is_rejected_at_delivery(harness: Harness) -> None:
    """Through the three handlers: the SSRF guard runs again per attempt, so a name that now
    resolves to a private address gets no request, the callback fails at once, and the DLQ
    record says ``rejected``. (The first task shows the same URL did reach the receiver.)"""
    llm = ScriptedLLM([text("first answer"), text("second answer")])
    app = install_async_app(harness.env, llm, resolve=harness.dns)
    with WebhookReceiver(secrets=[harness.env.signing_secret]) as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        delivered_id = app.submit({"input": "one", "callback_url": url})[2]["task_id"]
        app.task_source.poll()
        app.callback_source.poll()
        assert receiver.accepted == [f"msg_{delivered_id}_1"]

        status, _, body = app.submit({"input": "two", "callback_url": url})
        assert status == 202, body
        app.task_source.poll()
        harness.dns.records["localhost"] = ["10.1.2.3"]
        app.callback_source.poll()

    assert len(receiver.requests) == 1
    view = app.get_task(body["task_id"])[1]
    assert view["status"] == "succeeded"
    assert view["callback"]["status"] == "failed"
    assert view["callback"]["attempts"] == 1
    assert "10.1.2.3, a private address" in view["callback"]["last_error"]
    assert queue_depth(harness.env.sqs, harness.env.callback_queue_url) == 0
    [record] = harness.dlq_records()
    assert record["task_id"] == body["task_id"]
    assert record["reason"] == "rejected"
    assert record["attempts"] == 1
    assert record["last_status"] is None
    assert "10.1.2.3" in record["last_error"]


# --- duplicates, staleness, crashes -------------------------------------------------------------


def test_the_same_message_twice_delivers_once(harness: Harness) -> None:
    """SQS may deliver a message twice; the attempt claim makes the copy a no-op."""
    worker = harness.worker()
    with WebhookReceiver(secrets=[harness.env.signing_secret], now=harness.clock) as receiver:
        task = harness.finished_task(receiver.url)
        assert worker.process(message(task)) == "delivered"
        assert worker.process(message(task)) == "stale"

    assert len(receiver.requests) == 1


def test_a_message_for_a_superseded_event_is_stale(harness: Harness) -> None:
    """After a redriven run completed again (event 2), event 1's message sends nothing; event 2's
    callback goes out under its own webhook-id."""
    store, now = harness.store, harness.now
    with WebhookReceiver(secrets=[harness.env.signing_secret], now=harness.clock) as receiver:
        task = harness.finished_task(
            receiver.url, error=TaskError("model_unavailable", "503"), retryable=True
        )
        # The operator redrives the failed task from the DLQ; it runs again and succeeds.
        assert store.claim(task.task_id, owner="w2", lease_seconds=60, now=now).outcome == "claimed"
        rerun = store.complete(
            task.task_id,
            owner="w2",
            status="succeeded",
            result={"output": "ok"},
            error=None,
            retryable=False,
            has_callback=True,
            now=now,
        )
        assert rerun is not None
        assert rerun.callback_event == 2

        worker = harness.worker()
        assert worker.process(message(task)) == "stale"
        assert receiver.requests == []
        assert worker.process(message(rerun)) == "delivered"

    assert receiver.accepted == [f"msg_{task.task_id}_2"]
    assert json.loads(receiver.requests[0].body)["type"] == "task.succeeded"


def test_a_message_for_a_missing_or_expired_task_is_expired(harness: Harness) -> None:
    """Nothing is sent for a task that never existed or whose record outlived its TTL."""
    worker = harness.worker()
    with WebhookReceiver(secrets=[harness.env.signing_secret], now=harness.clock) as receiver:
        task = harness.finished_task(receiver.url)
        unknown = json.dumps(CallbackMessage(uuid.uuid4().hex, 1, 1).to_dict())
        assert worker.process(unknown) == "expired"
        harness.clock.advance(harness.env.settings().task_ttl_seconds)
        assert worker.process(message(task)) == "expired"

    assert receiver.requests == []
    assert harness.queue.sent == []


def test_a_crashed_attempt_is_taken_over_after_its_lease(harness: Harness) -> None:
    """A worker that claimed attempt 1 and died blocks copies until its lease ends, then the
    redelivered message re-takes the same attempt and delivers."""
    with WebhookReceiver(secrets=[harness.env.signing_secret], now=harness.clock) as receiver:
        task = harness.finished_task(receiver.url)
        claimed_at = harness.now
        assert harness.store.claim_callback_attempt(
            task.task_id, event=1, attempt=1, lease_seconds=ATTEMPT_LEASE_SECONDS, now=claimed_at
        )
        # ... and that worker dies without recording anything.
        worker = harness.worker()

        harness.clock.advance(10)
        with pytest.raises(RetryLaterError) as busy:
            worker.process(message(task))
        assert busy.value.delay_seconds == ATTEMPT_LEASE_SECONDS - 10 + 1
        harness.clock.now = claimed_at + ATTEMPT_LEASE_SECONDS  # the lease's last second
        with pytest.raises(RetryLaterError):
            worker.process(message(task))
        assert receiver.requests == []
        assert harness.task(task.task_id).callback_status == "delivering"

        harness.clock.advance(1)
        assert worker.process(message(task)) == "delivered"

    assert receiver.accepted == [f"msg_{task.task_id}_1"]
    after = harness.task(task.task_id)
    assert (after.callback_status, after.callback_attempts) == ("delivered", 1)


# --- signing-secret rotation --------------------------------------------------------------------


def test_callbacks_carry_both_signatures_during_a_rotation_overlap(harness: Harness) -> None:
    """After put_secret_value, receivers on the old or the new secret both verify; once the
    overlap is over, only the new signature is sent and an old-secret receiver rejects."""
    env, old, new = harness.env, harness.env.signing_secret, signing.generate_secret()
    overlap = 600
    env.secrets.put_secret_value(SecretId=env.signing_secret_arn, SecretString=new)
    rotating = RotatingSecret(
        env.signing_secret_arn, client=env.secrets, overlap_seconds=overlap, clock=harness.clock
    )
    worker = harness.worker(secrets=rotating.values)
    with (
        WebhookReceiver(secrets=[old], now=harness.clock) as old_only,
        WebhookReceiver(secrets=[new], now=harness.clock) as new_only,
    ):
        to_old = harness.finished_task(old_only.url)
        to_new = harness.finished_task(new_only.url)
        assert worker.process(message(to_old)) == "delivered"
        assert worker.process(message(to_new)) == "delivered"
        assert old_only.accepted == [f"msg_{to_old.task_id}_1"]
        assert new_only.accepted == [f"msg_{to_new.task_id}_1"]
        request = old_only.requests[0]
        assert len(signatures(request)) == 2
        assert all(token.startswith("v1,") for token in signatures(request))
        for secret in (old, new):
            signing.verify(request.headers, request.body, [secret], now=harness.now)

        # Past the overlap (and the 5-minute cache): the old secret is no longer used.
        harness.clock.advance(overlap + 60)
        late = harness.finished_task(old_only.url)
        assert worker.process(message(late)) == "retry_scheduled"

    late_request = old_only.requests[-1]
    assert len(signatures(late_request)) == 1
    signing.verify(late_request.headers, late_request.body, [new], now=harness.now)
    assert len(old_only.rejected) == 1
    assert "no v1 signature" in old_only.rejected[0]
    assert harness.task(late.task_id).callback_last_error == f"HTTP 401: {old_only.rejected[0]}"


# --- the Lambda handler -------------------------------------------------------------------------


def test_the_handler_reports_only_the_malformed_record_as_failed(harness: Harness) -> None:
    """A batch with one unreadable record: the others are delivered and only that one is in
    batchItemFailures (so SQS retries and eventually dead-letters just it)."""
    env = harness.env
    install_async_app(env, ScriptedLLM(), resolve=harness.dns)
    with WebhookReceiver(secrets=[env.signing_secret]) as receiver:
        tasks = [harness.finished_task(receiver.url) for _ in range(2)]
        for task in tasks:
            env.sqs.send_message(QueueUrl=env.callback_queue_url, MessageBody=message(task))
        bad_id = env.sqs.send_message(
            QueueUrl=env.callback_queue_url,
            MessageBody=json.dumps({"v": 1, "task_id": tasks[0].task_id, "attempt": 1}),
        )["MessageId"]
        received = env.sqs.receive_message(QueueUrl=env.callback_queue_url, MaxNumberOfMessages=10)[
            "Messages"
        ]
        assert len(received) == 3
        arn = env.sqs.get_queue_attributes(
            QueueUrl=env.callback_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        event = {"Records": [lambda_record(dict(m), arn) for m in received]}

        response = callback_worker.lambda_handler(event, FakeLambdaContext(remaining_millis=60_000))

    assert response == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert sorted(receiver.accepted) == sorted(f"msg_{t.task_id}_1" for t in tasks)


# --- RotatingSecret -----------------------------------------------------------------------------


class CountingSecrets:
    """Wraps the moto client: counts reads per version stage, can fail the AWSPREVIOUS read."""

    def __init__(self, inner: SecretsManagerClient, *, previous_error: Exception | None = None):
        self.inner = inner
        self.previous_error = previous_error
        self.stages: list[str] = []

    def get_secret_value(self, **kwargs: Any) -> Any:
        stage = kwargs.get("VersionStage", "AWSCURRENT")
        self.stages.append(stage)
        if stage == "AWSPREVIOUS" and self.previous_error is not None:
            raise self.previous_error
        return self.inner.get_secret_value(**kwargs)


def rotating(
    client: CountingSecrets | SecretsManagerClient, arn: str, clock: FakeClock, overlap: float
) -> RotatingSecret:
    return RotatingSecret(
        arn, client=cast("SecretsManagerClient", client), overlap_seconds=overlap, clock=clock
    )


def test_a_never_rotated_secret_is_just_the_current_value(env: AsyncEnv, clock: FakeClock) -> None:
    """No AWSPREVIOUS version: one value, even inside the overlap window."""
    counting = CountingSecrets(env.secrets)
    assert rotating(counting, env.signing_secret_arn, clock, 86_400).values() == [
        env.signing_secret
    ]
    assert counting.stages == ["AWSCURRENT", "AWSPREVIOUS"]


def test_the_previous_value_is_kept_exactly_for_the_overlap(
    env: AsyncEnv, clock: FakeClock
) -> None:
    """[current, previous] until overlap seconds after the new version's creation, then
    [current], even while the fetched values are still cached."""
    new = signing.generate_secret()
    env.secrets.put_secret_value(SecretId=env.signing_secret_arn, SecretString=new)
    created = env.secrets.get_secret_value(SecretId=env.signing_secret_arn)["CreatedDate"]
    secret = rotating(env.secrets, env.signing_secret_arn, clock, 600)

    clock.now = created.timestamp() + 599
    assert secret.values() == [new, env.signing_secret]
    clock.now = created.timestamp() + 600
    assert secret.values() == [new]


def test_values_are_cached_for_the_ttl(env: AsyncEnv, clock: FakeClock) -> None:
    """Secrets Manager is read once per TTL; a rotation shows up when the cache expires."""
    counting = CountingSecrets(env.secrets)
    secret = rotating(counting, env.signing_secret_arn, clock, 0)
    assert secret.values() == [env.signing_secret]
    new = signing.generate_secret()
    env.secrets.put_secret_value(SecretId=env.signing_secret_arn, SecretString=new)

    clock.advance(299)
    assert secret.values() == [env.signing_secret]  # still the cached value
    assert counting.stages == ["AWSCURRENT"]
    clock.advance(1)
    assert secret.values() == [new]
    assert counting.stages == ["AWSCURRENT", "AWSCURRENT"]


def test_an_unreadable_secret_names_the_arn_not_the_value(env: AsyncEnv, clock: FakeClock) -> None:
    """Missing secret, a denied AWSPREVIOUS read, a network error, a binary secret: each is a
    SecretReadError that names the secret and never contains a secret value."""
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"
    with pytest.raises(SecretReadError) as gone:
        rotating(env.secrets, missing, clock, 600).values()
    assert missing in str(gone.value)

    env.secrets.put_secret_value(
        SecretId=env.signing_secret_arn, SecretString=signing.generate_secret()
    )
    current = env.secrets.get_secret_value(SecretId=env.signing_secret_arn)["SecretString"]
    failures: list[Exception] = [
        ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetSecretValue"
        ),
        EndpointConnectionError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com"),
    ]
    for failure in failures:
        counting = CountingSecrets(env.secrets, previous_error=failure)
        with pytest.raises(SecretReadError) as denied:
            rotating(counting, env.signing_secret_arn, clock, 86_400).values()
        assert env.signing_secret_arn in str(denied.value), failure
        assert current not in str(denied.value)
        assert env.signing_secret not in str(denied.value)

    binary = env.secrets.create_secret(Name="agent/binary", SecretBinary=b"\x00\x01")["ARN"]
    with pytest.raises(SecretReadError, match="has no SecretString") as no_string:
        rotating(env.secrets, binary, clock, 600).values()
    assert binary in str(no_string.value)
