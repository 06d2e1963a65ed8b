"""The container queue worker on a Redis task queue (a real redis-server); the task table, the
callback queue and the secrets stay on moto, so mixed backends are exercised too.

The producers are the real ones (the ingress handler sending through ``TaskClients``), the
consumer the real :class:`QueueConsumer` and :func:`main`; only the model is scripted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import redis

from runtime.dynamodb_store import DynamoDBSessionStore
from runtime.llm.types import LLMClient, LLMRateLimitedError
from runtime.queue_worker import (
    EXIT_CONFIG_ERROR,
    QueueConsumer,
    WorkerSettings,
    main,
    task_handler,
)
from runtime.tasks.worker import AgentOptions, TaskWorker
from runtime.tools import default_registry
from tests.fakes.openai_server import FakeOpenAIServer, TextReply
from tests.fakes.redis_server import RedisServer
from tests.fakes.sqs_lambda import queue_depth
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.runtime.async_env import AsyncApp, AsyncEnv, install_async_app, make_async_env, uninstall
from tests.runtime.conftest import TABLE_NAME, ScriptedLLM, text
from tests.runtime.test_queue_worker import BlockingModel, submit, task_status

VISIBILITY = 2
WORKER_ENV = {
    "WORKER_VISIBILITY_SECONDS": str(VISIBILITY),
    "WORKER_HEARTBEAT_SECONDS": "0.5",
    "WORKER_RECEIVE_WAIT_SECONDS": "1",
}


@pytest.fixture
def queue(redis_queue: str) -> str:
    return redis_queue


@pytest.fixture
def queue_url(redis_queue_url: str) -> str:
    return redis_queue_url


@pytest.fixture
def make_env(
    mocked_aws: None,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    queue_url: str,
) -> Iterator[Callable[..., AsyncEnv]]:
    """The async pattern's environment with TASK_QUEUE_URL on Redis (callbacks stay on SQS)."""

    def make(overrides: Mapping[str, str] | None = None) -> AsyncEnv:
        return make_async_env(
            monkeypatch,
            {
                "TASK_QUEUE_URL": queue_url,
                "REDIS_PASSWORD": redis_server.password,
                **WORKER_ENV,
                **(overrides or {}),
            },
        )

    yield make
    uninstall()


@pytest.fixture
def env(make_env: Callable[..., AsyncEnv]) -> AsyncEnv:
    return make_env()


def consumer_for(
    app: AsyncApp,
    queue_url: str,
    llm: LLMClient,
    *,
    stop: threading.Event | None = None,
    worker_env: Mapping[str, str] | None = None,
) -> QueueConsumer:
    """The task queue's consumer as build_consumers wires it, with ``llm`` as the model."""
    clients = app.clients
    worker = TaskWorker(
        store=clients.store,
        sessions=DynamoDBSessionStore(TABLE_NAME, ttl_seconds=3600, client=app.env.dynamodb),
        tools=default_registry(),
        callback_queue=clients.callback_queue,
        settings=clients.settings,
        agent=AgentOptions(max_iterations=4, system_prompt=None),
    )
    return QueueConsumer(
        queue="task",
        sqs=clients.queue_client(queue_url),
        queue_url=queue_url,
        handler=task_handler(worker, lambda _budget: llm),
        settings=WorkerSettings.from_env({**WORKER_ENV, **(worker_env or {})}),
        lease_seconds=clients.settings.task_lease_seconds,
        stop=stop or threading.Event(),
    )


def server_ms(raw: redis.Redis) -> int:
    seconds, micros = raw.time()
    return int(seconds) * 1000 + int(micros) // 1000


def worker_lines(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "runtime.queue_worker"]


# --- the consumer ------------------------------------------------------------------------------


def test_tasks_flow_from_the_redis_queue_and_callbacks_to_sqs(
    env: AsyncEnv, queue_url: str, queue: str, raw: redis.Redis
) -> None:
    llm = ScriptedLLM([text("one"), text("two")])
    app = install_async_app(env, llm)
    with WebhookReceiver(secrets=[env.signing_secret]) as receiver:
        first = submit(app, "first", callback_url=receiver.url)
        second = submit(app, "second")
        assert raw.llen(queue) == 2  # the backlog KEDA scales on

        consumer = consumer_for(app, queue_url, llm, worker_env={"WORKER_MAX_MESSAGES": "2"})
        assert consumer.run() is True

    assert [call.messages[-1].content for call in llm.calls] == ["first", "second"]
    assert (task_status(env, first), task_status(env, second)) == ("succeeded", "succeeded")
    # Every message deleted: nothing ready, in flight or stored.
    assert raw.llen(queue) == 0
    assert raw.zcard(f"{queue}:inflight") == 0
    assert raw.hlen(f"{queue}:messages") == 0
    # The callback went to the callback queue's own backend, SQS; the SQS task queue saw nothing.
    assert queue_depth(env.sqs, env.callback_queue_url) == 1
    assert queue_depth(env.sqs, env.task_queue_url) == 0


def test_the_heartbeat_keeps_a_long_task_hidden_from_other_consumers(
    env: AsyncEnv, queue_url: str, queue: str, raw: redis.Redis
) -> None:
    model = BlockingModel(hold=VISIBILITY + 0.6)
    app = install_async_app(env, model)
    task_id = submit(app, "longer than the visibility timeout")
    consumer = consumer_for(app, queue_url, model, worker_env={"WORKER_MAX_MESSAGES": "1"})
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    other = app.clients.queue_client(queue_url)

    assert model.started.wait(5)
    while not model.finished.is_set():
        stolen = other.receive_message(QueueUrl=queue_url, VisibilityTimeout=30)
        assert "Messages" not in stolen, "another consumer got a message that is being worked on"
        time.sleep(0.1)
    thread.join(5)

    assert not thread.is_alive()
    assert task_status(env, task_id) == "succeeded"
    assert raw.hlen(f"{queue}:messages") == 0


def test_a_retry_later_postpones_the_message_on_the_server_clock(
    make_env: Callable[..., AsyncEnv], queue_url: str, queue: str, raw: redis.Redis
) -> None:
    env = make_env({"TASK_RETRY_BASE_SECONDS": "7", "TASK_RETRY_MAX_SECONDS": "7"})
    llm = ScriptedLLM([LLMRateLimitedError("429 from the provider")])
    app = install_async_app(env, llm)
    task_id = submit(app, "rate limited")

    consumer = consumer_for(app, queue_url, llm, worker_env={"WORKER_MAX_MESSAGES": "1"})
    assert consumer.run() is True

    assert task_status(env, task_id) == "queued"
    [message_id] = raw.hkeys(f"{queue}:messages")
    deadline = raw.zscore(f"{queue}:inflight", message_id)
    assert deadline is not None
    assert 6_000 < deadline - server_ms(raw) <= 7_000
    assert raw.llen(queue) == 0


# --- main: one-shot mode and configuration -----------------------------------------------------


def test_main_one_shot_exits_0_after_its_messages_or_an_empty_receive(
    make_env: Callable[..., AsyncEnv],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
    queue: str,
    raw: redis.Redis,
) -> None:
    with FakeOpenAIServer([TextReply("a"), TextReply("b")]) as model:
        env = make_env({"LLM_BASE_URL": model.base_url, "LLM_API_KEY": "test-key"})
        app = install_async_app(env, ScriptedLLM())
        first, second = submit(app, "first"), submit(app, "second")
        capsys.readouterr()

        assert main(["--max-messages", "1"]) == 0
        after_one = worker_lines(capsys.readouterr().out)
        assert (task_status(env, first), task_status(env, second)) == ("succeeded", "queued")
        assert raw.llen(queue) == 1

        # The flag wins over the variable; the one message left, then the queue is empty.
        monkeypatch.setenv("WORKER_MAX_MESSAGES", "1")
        assert main(["--max-messages", "5"]) == 0
        after_rest = worker_lines(capsys.readouterr().out)
        assert task_status(env, second) == "succeeded"

        started = time.monotonic()
        assert main([]) == 0  # WORKER_MAX_MESSAGES alone; nothing queued
        elapsed = time.monotonic() - started
        after_none = worker_lines(capsys.readouterr().out)

    def events(lines: list[dict[str, Any]]) -> list[str]:
        wanted = {"message done", "message budget used up; one-shot consumer done"}
        wanted.add("queue empty; one-shot consumer done")
        return [line["message"] for line in lines if line["message"] in wanted]

    assert events(after_one) == ["message done", "message budget used up; one-shot consumer done"]
    assert events(after_rest) == ["message done", "queue empty; one-shot consumer done"]
    assert events(after_none) == ["queue empty; one-shot consumer done"]
    # One receive's long poll (WORKER_RECEIVE_WAIT_SECONDS=1), not an idle loop.
    assert 1.0 <= elapsed < 3.0
    starting = [line for line in after_rest if line["message"] == "worker starting"]
    assert starting[0]["max_messages"] == 5
    assert raw.llen(queue) == 0
    assert raw.hlen(f"{queue}:messages") == 0


def test_main_refuses_a_bad_redis_queue_url_or_message_count(
    make_env: Callable[..., AsyncEnv],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    make_env({"TASK_QUEUE_URL": "redis://cache:6379/0", "WORKER_MAX_MESSAGES": "0"})
    capsys.readouterr()

    assert main([]) == EXIT_CONFIG_ERROR
    [line] = worker_lines(capsys.readouterr().out)
    assert line["message"] == "invalid configuration"
    assert "WORKER_MAX_MESSAGES" in line["reason"]

    monkeypatch.delenv("WORKER_MAX_MESSAGES")
    assert main([]) == EXIT_CONFIG_ERROR
    [line] = worker_lines(capsys.readouterr().out)
    assert "TASK_QUEUE_URL names no list: add #<list-name>" in line["reason"]

    with pytest.raises(SystemExit) as exited:
        main(["--max-messages", "0"])
    assert exited.value.code == 2
    assert (
        "--max-messages: must be a whole number of at least 1, got '0'" in capsys.readouterr().err
    )
