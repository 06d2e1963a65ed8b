"""The webhook pattern end to end in one process, and the queue semantics it relies on.

Ingress (the API Gateway handler) -> task queue (moto SQS, redrive to a DLQ after 5 receives)
-> task worker (the SQS handler, through a faithful event source mapping) -> callback queue ->
callback worker -> a real HTTP receiver on 127.0.0.1 that verifies every signature.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest

from runtime.handlers import task_worker
from runtime.llm.types import LLMRateLimitedError, LLMResponse, LLMUpstreamError, Message, ToolSpec
from runtime.tasks.queues import RetryLaterError, task_message
from tests.fakes.sqs_lambda import drain, queue_depth
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.runtime.async_env import (
    MAX_RECEIVE_COUNT,
    AsyncApp,
    AsyncEnv,
    install_async_app,
    make_async_env,
    uninstall,
)
from tests.runtime.conftest import text

POISON = "POISON"


class FlakyModel:
    """Answers every task; fails ``failure_rate`` of calls with a 429 and poison tasks always."""

    def __init__(self, failure_rate: float = 0.0, *, seed: int = 7) -> None:
        self._random = random.Random(seed)
        self._failure_rate = failure_rate
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.injected_failures = 0
        self.before_answer: threading.Event | None = None

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        system: str | None = None,
    ) -> LLMResponse:
        prompt = messages[-1].content
        with self._lock:
            self.calls[prompt] += 1
            fail = self._random.random() < self._failure_rate
            if fail:
                self.injected_failures += 1
        if POISON in prompt:
            raise LLMUpstreamError("the provider answered 503", status=503)
        if fail:
            raise LLMRateLimitedError("injected: the provider answered 429")
        if self.before_answer is not None:
            self.before_answer.wait(5)
        return text(f"done: {prompt}")


@pytest.fixture
def env(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[AsyncEnv]:
    yield make_async_env(monkeypatch)
    uninstall()


def _task_id_of(message: dict[str, object]) -> str | None:
    try:
        body = json.loads(str(message["Body"]))
    except ValueError:
        return None
    return body.get("task_id") if isinstance(body, dict) else None


def test_200_tasks_with_transient_failures_and_poison_lose_nothing(env: AsyncEnv) -> None:
    model = FlakyModel(failure_rate=0.10)
    with WebhookReceiver(secrets=[env.signing_secret]) as receiver:
        app = install_async_app(env, model)
        poison_ids: set[str] = set()
        accepted: list[str] = []
        for number in range(200):
            poison = number % 20 == 0
            status, headers, body = app.submit(
                {
                    "input": f"{POISON if poison else 'task'} {number}",
                    "callback_url": receiver.url,
                    "metadata": {"number": str(number)},
                }
            )
            assert status == 202, body
            assert headers["Location"] == f"/v1/tasks/{body['task_id']}"
            accepted.append(body["task_id"])
            if poison:
                poison_ids.add(body["task_id"])
        # Messages no worker can ever read, next to the real tasks.
        for garbage in ("not json", '{"v": 1}', '{"v": 99, "task_id": "x"}'):
            env.sqs.send_message(QueueUrl=env.task_queue_url, MessageBody=garbage)
        app.run_until_idle()

    dead = drain(env.sqs, env.task_dlq_url)
    dead_task_ids = Counter(_task_id_of(message) for message in dead)
    callbacks = Counter(request.headers["webhook-id"] for request in receiver.requests)
    succeeded: list[str] = []
    in_dlq: list[str] = []
    for task_id in accepted:
        status, task = app.get_task(task_id)
        assert status == 200
        if task["status"] == "succeeded":
            # Exactly one callback for the outcome, verified by the receiver.
            assert callbacks[f"msg_{task_id}_1"] == 1, task_id
            assert task["callback"]["status"] == "delivered"
            assert task["result"]["output"].startswith("done: ")
            succeeded.append(task_id)
        else:
            assert task["status"] == "failed", task
            assert dead_task_ids[task_id] == 1, f"failed task {task_id} is not in the DLQ"
            # The caller still hears about the failure, once.
            assert callbacks[f"msg_{task_id}_1"] == 1
            in_dlq.append(task_id)

    assert len(succeeded) + len(in_dlq) == len(accepted) == 200
    assert poison_ids <= set(in_dlq)
    # The three unreadable messages went to the DLQ too, after their receives.
    assert dead_task_ids[None] + dead_task_ids["x"] == 3
    assert len(dead) == len(in_dlq) + 3
    # Transient failures really happened and were retried into successes.
    assert model.injected_failures >= 10
    retried = [tid for tid in succeeded if model.calls[_prompt_of(app, tid)] > 1]
    assert retried, "no task needed a retry: the failure injection did not work"
    assert receiver.rejected == []
    assert queue_depth(env.sqs, env.callback_dlq_url) == 0
    # Poison tasks were tried once per receive, no more.
    for task_id in poison_ids:
        assert model.calls[_prompt_of(app, task_id)] == MAX_RECEIVE_COUNT


def _prompt_of(app: AsyncApp, task_id: str) -> str:
    task = app.clients.store.get(task_id, now=0)
    assert task is not None
    return task.input


def test_a_poison_message_is_received_max_receive_count_times_then_sits_in_the_dlq(
    env: AsyncEnv,
) -> None:
    app = install_async_app(env, FlakyModel())
    env.sqs.send_message(QueueUrl=env.task_queue_url, MessageBody="{not json")
    received = 0
    for _ in range(MAX_RECEIVE_COUNT + 3):
        result = app.task_source.poll()
        received += len(result.received)
        assert result.failed == result.received
    assert received == MAX_RECEIVE_COUNT
    assert queue_depth(env.sqs, env.task_queue_url) == 0
    dead = drain(env.sqs, env.task_dlq_url)
    assert [message["Body"] for message in dead] == ["{not json"]
    assert int(dead[0]["Attributes"]["ApproximateReceiveCount"]) >= MAX_RECEIVE_COUNT


@pytest.mark.parametrize("poison_count", [0, 1, 10])
def test_partial_batch_reports_exactly_the_failed_records(env: AsyncEnv, poison_count: int) -> None:
    model = FlakyModel()
    app = install_async_app(env, model)
    good = [app.submit({"input": f"task {n}"})[2]["task_id"] for n in range(10 - poison_count)]
    for n in range(poison_count):
        env.sqs.send_message(QueueUrl=env.task_queue_url, MessageBody=f"poison {n}")
    messages = env.sqs.receive_message(
        QueueUrl=env.task_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )["Messages"]
    assert len(messages) == 10
    poison_message_ids = {m["MessageId"] for m in messages if m["Body"].startswith("poison")}

    result = app.task_source.poll()

    assert len(result.received) == 10
    assert set(result.failed) == poison_message_ids
    assert len(result.failed) == poison_count
    for task_id in good:
        assert app.get_task(task_id)[1]["status"] == "succeeded"
    # Only the failed records are left on the queue.
    assert queue_depth(env.sqs, env.task_queue_url) == poison_count


def test_a_duplicate_delivery_runs_the_agent_once_and_calls_back_once(env: AsyncEnv) -> None:
    model = FlakyModel()
    with WebhookReceiver(secrets=[env.signing_secret]) as receiver:
        app = install_async_app(env, model)
        task_id = app.submit({"input": "only once", "callback_url": receiver.url})[2]["task_id"]
        # SQS at-least-once: the same message arrives again, in the next batch and in the same.
        for _ in range(2):
            env.sqs.send_message(
                QueueUrl=env.task_queue_url, MessageBody=json.dumps(task_message(task_id))
            )
        app.run_until_idle()
        # And its callback message is duplicated too.
        task = app.clients.store.get(task_id, now=0)
        assert task is not None
        for _ in range(2):
            env.sqs.send_message(
                QueueUrl=env.callback_queue_url,
                MessageBody=json.dumps({"v": 1, "task_id": task_id, "event": 1, "attempt": 1}),
            )
        app.run_until_idle()

    assert model.calls["only once"] == 1
    assert [r.headers["webhook-id"] for r in receiver.requests] == [f"msg_{task_id}_1"]
    assert receiver.rejected == []


def test_a_copy_arriving_while_the_task_runs_waits_and_then_is_a_no_op(env: AsyncEnv) -> None:
    model = FlakyModel()
    model.before_answer = threading.Event()
    app = install_async_app(env, model)
    task_id = app.submit({"input": "long task"})[2]["task_id"]
    worker = task_worker.dependencies().worker
    body = json.dumps(task_message(task_id))
    outcomes: list[str] = []
    first = threading.Thread(
        target=lambda: outcomes.append(worker.process(body, receive_count=1, llm=model))
    )
    first.start()
    while app.clients.store.get(task_id, now=0).status != "running":  # type: ignore[union-attr]
        pass
    with pytest.raises(RetryLaterError) as busy:
        worker.process(body, receive_count=1, llm=model)
    # It comes back after the running copy's lease, in case that worker dies.
    assert 1 <= busy.value.delay_seconds <= env.settings().task_lease_seconds + 1
    model.before_answer.set()
    first.join(5)
    assert outcomes == ["succeeded"]
    assert worker.process(body, receive_count=2, llm=model) == "duplicate"
    assert model.calls["long task"] == 1
