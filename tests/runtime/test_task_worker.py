"""The task worker's decisions: what is retried, when, and what ends a task.

The end-to-end tests show that nothing is lost; these pin down each rule on its own, with a fake
clock for leases and back-offs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.handlers import task_worker
from runtime.llm.types import LLMRateLimitedError, LLMTimeoutError, LLMUpstreamError
from runtime.session_store import SessionTooLargeError
from runtime.tasks.queues import PoisonMessageError, RetryLaterError, task_message
from runtime.tasks.worker import AgentOptions, TaskWorker, retry_backoff
from runtime.tools import default_registry
from tests.fakes.clock import FakeClock
from tests.fakes.sqs_lambda import queue_depth
from tests.runtime.async_env import AsyncApp, AsyncEnv, install_async_app, make_async_env, uninstall
from tests.runtime.conftest import ScriptedLLM, text


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, body: Any, *, delay_seconds: int = 0) -> None:
        self.sent.append((dict(body), delay_seconds))


@pytest.fixture
def env(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[AsyncEnv]:
    yield make_async_env(
        monkeypatch,
        {"TASK_RETRY_BASE_SECONDS": "10", "TASK_RETRY_MAX_SECONDS": "300"},
    )
    uninstall()


@pytest.fixture
def app(env: AsyncEnv) -> AsyncApp:
    return install_async_app(env, ScriptedLLM(), resolve=public_dns)


def public_dns(host: str) -> list[str]:
    """Every name resolves to a public documentation address (no DNS in tests)."""
    return ["93.184.215.14"]


def make_worker(
    env: AsyncEnv, app: AsyncApp, clock: FakeClock
) -> tuple[TaskWorker, RecordingQueue]:
    callbacks = RecordingQueue()
    worker = TaskWorker(
        store=app.clients.store,
        sessions=task_worker.dependencies().agent.store,
        tools=default_registry(),
        callback_queue=callbacks,
        settings=env.settings(),
        agent=AgentOptions(max_iterations=3, system_prompt=None),
        clock=clock,
    )
    return worker, callbacks


def submit(app: AsyncApp, **fields: Any) -> str:
    status, _, body = app.submit({"input": "hello", **fields})
    assert status == 202, body
    return str(body["task_id"])


def body_of(task_id: str) -> str:
    return json.dumps(task_message(task_id))


@pytest.mark.parametrize(
    ("receive_count", "expected"), [(1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (40, 300)]
)
def test_retry_backoff_doubles_per_receive_and_is_capped(receive_count: int, expected: int) -> None:
    assert retry_backoff(receive_count, base_seconds=10, max_seconds=300) == expected


def test_retry_backoff_rejects_a_zero_receive_count() -> None:
    with pytest.raises(ValueError, match="receive_count"):
        retry_backoff(0, base_seconds=10, max_seconds=300)


def test_a_transient_failure_releases_the_task_and_backs_off(
    env: AsyncEnv, app: AsyncApp, clock: FakeClock
) -> None:
    worker, callbacks = make_worker(env, app, clock)
    task_id = submit(app, callback_url="https://hooks.example.com/x")
    llm = ScriptedLLM([LLMRateLimitedError("429")])
    with pytest.raises(RetryLaterError) as retry:
        worker.process(body_of(task_id), receive_count=2, llm=llm)
    assert retry.value.delay_seconds == 20
    task = app.clients.store.get(task_id, now=int(clock()))
    assert task is not None
    assert task.status == "queued"
    assert task.lease_owner is None
    assert task.last_error is not None and "429" in task.last_error
    assert callbacks.sent == []


def test_the_last_try_fails_the_task_retryably_and_tells_the_caller(
    env: AsyncEnv, app: AsyncApp, clock: FakeClock
) -> None:
    worker, callbacks = make_worker(env, app, clock)
    task_id = submit(app, callback_url="https://hooks.example.com/x")
    llm = ScriptedLLM([LLMTimeoutError("slow")])
    with pytest.raises(RetryLaterError) as retry:
        worker.process(body_of(task_id), receive_count=5, llm=llm)
    # Visible at once, so SQS moves it to the DLQ on the next receive.
    assert retry.value.delay_seconds == 0
    task = app.clients.store.get(task_id, now=int(clock()))
    assert task is not None
    assert (task.status, task.retryable) == ("failed", True)
    assert task.error is not None and task.error.code == "model_unavailable"
    assert callbacks.sent == [
        ({"v": 1, "task_id": task_id, "event": 1, "attempt": 1}, 0),
    ]


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (SessionTooLargeError("s", 500_000, 400_000), "session_too_large"),
        (LLMUpstreamError("context length exceeded", status=400), "model_rejected_request"),
    ],
)
def test_a_permanent_failure_ends_the_task_at_once_without_a_retry(
    env: AsyncEnv, app: AsyncApp, clock: FakeClock, failure: Exception, code: str
) -> None:
    worker, callbacks = make_worker(env, app, clock)
    task_id = submit(app, callback_url="https://hooks.example.com/x")
    outcome = worker.process(body_of(task_id), receive_count=1, llm=ScriptedLLM([failure]))
    assert outcome == "failed"
    task = app.clients.store.get(task_id, now=int(clock()))
    assert task is not None
    assert (task.status, task.retryable) == ("failed", False)
    assert task.error is not None and task.error.code == code
    assert len(callbacks.sent) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 503, None])
def test_upstream_errors_that_may_pass_are_retried(
    env: AsyncEnv, app: AsyncApp, clock: FakeClock, status: int | None
) -> None:
    worker, _ = make_worker(env, app, clock)
    task_id = submit(app)
    with pytest.raises(RetryLaterError):
        worker.process(
            body_of(task_id),
            receive_count=1,
            llm=ScriptedLLM([LLMUpstreamError("upstream", status=status)]),
        )


def test_a_crashed_run_is_taken_over_after_its_lease(
    env: AsyncEnv, app: AsyncApp, clock: FakeClock
) -> None:
    worker, _ = make_worker(env, app, clock)
    task_id = submit(app)
    store = app.clients.store
    lease = env.settings().task_lease_seconds
    # A worker claims the task and dies without finishing.
    assert store.claim(task_id, owner="dead", lease_seconds=lease, now=int(clock())).outcome == (
        "claimed"
    )
    with pytest.raises(RetryLaterError):
        worker.process(body_of(task_id), receive_count=2, llm=ScriptedLLM([text("late")]))
    clock.advance(lease + 1)
    assert worker.process(body_of(task_id), receive_count=3, llm=ScriptedLLM([text("ok")])) == (
        "succeeded"
    )
    task = store.get(task_id, now=int(clock()))
    assert task is not None
    assert task.runs == 2
    # The dead worker cannot overwrite the result when it "comes back".
    assert (
        store.complete(
            task_id,
            owner="dead",
            status="failed",
            result=None,
            error=None,
            retryable=False,
            has_callback=False,
            now=int(clock()),
        )
        is None
    )


def test_a_redriven_failed_task_runs_again_and_reports_a_new_event(
    env: AsyncEnv, app: AsyncApp, clock: FakeClock
) -> None:
    worker, callbacks = make_worker(env, app, clock)
    task_id = submit(app, callback_url="https://hooks.example.com/x")
    with pytest.raises(RetryLaterError):
        worker.process(body_of(task_id), receive_count=5, llm=ScriptedLLM([LLMTimeoutError("x")]))
    # The operator redrives the DLQ: the message comes back with a fresh receive count.
    assert worker.process(body_of(task_id), receive_count=1, llm=ScriptedLLM([text("fixed")])) == (
        "succeeded"
    )
    task = app.clients.store.get(task_id, now=int(clock()))
    assert task is not None
    assert task.status == "succeeded"
    assert task.result is not None and task.result["output"] == "fixed"
    assert [body["event"] for body, _ in callbacks.sent] == [1, 2]


def test_a_lost_callback_hand_off_is_finished_by_the_redelivery(
    env: AsyncEnv, app: AsyncApp, clock: FakeClock
) -> None:
    worker, callbacks = make_worker(env, app, clock)
    task_id = submit(app, callback_url="https://hooks.example.com/x")
    store = app.clients.store
    # A worker recorded the result and died before queueing the callback.
    store.claim(task_id, owner="w1", lease_seconds=60, now=int(clock()))
    store.complete(
        task_id,
        owner="w1",
        status="succeeded",
        result={"output": "ok"},
        error=None,
        retryable=False,
        has_callback=True,
        now=int(clock()),
    )
    assert worker.process(body_of(task_id), receive_count=2, llm=ScriptedLLM()) == (
        "callback_resent"
    )
    assert len(callbacks.sent) == 1
    # Once handed off, further copies change nothing.
    assert worker.process(body_of(task_id), receive_count=3, llm=ScriptedLLM()) == "duplicate"
    assert len(callbacks.sent) == 1


def test_an_unknown_task_is_poison(env: AsyncEnv, app: AsyncApp, clock: FakeClock) -> None:
    worker, _ = make_worker(env, app, clock)
    with pytest.raises(PoisonMessageError, match="does not exist"):
        worker.process(body_of("0" * 32), receive_count=1, llm=ScriptedLLM())


def test_the_lambda_sets_the_back_off_as_the_message_visibility(env: AsyncEnv) -> None:
    app = install_async_app(env, ScriptedLLM([LLMRateLimitedError("429")]))
    submit(app)
    app.task_source.fast_forward = False
    result = app.task_source.poll()
    assert result.failed == result.received != []
    # The handler made the message invisible for the back-off (10 s): nothing to receive now.
    assert (
        env.sqs.receive_message(QueueUrl=env.task_queue_url, WaitTimeSeconds=0).get("Messages", [])
        == []
    )
    assert queue_depth(env.sqs, env.task_queue_url) == 1
