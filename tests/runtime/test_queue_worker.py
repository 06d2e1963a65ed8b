"""The container queue worker against moto SQS/DynamoDB, with blocking and scripted models.

Real threads and real time (short: a 2-second visibility timeout, drains of 1-5 seconds), real
signals, and a real local HTTP server standing in for the ECS agent's task-protection endpoint.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

import pytest

from runtime.dynamodb_store import DynamoDBSessionStore
from runtime.llm.types import (
    LLMClient,
    LLMRateLimitedError,
    LLMResponse,
    Message,
    ToolSpec,
)
from runtime.queue_worker import (
    EXIT_CONFIG_ERROR,
    Handler,
    JsonFormatter,
    QueueConsumer,
    ReceivedMessage,
    TaskProtection,
    WorkerSettings,
    install_signal_handlers,
    main,
    task_handler,
)
from runtime.settings import SettingsError
from runtime.tasks.worker import AgentOptions, TaskWorker
from runtime.tools import default_registry
from tests.fakes.clock import FakeClock
from tests.fakes.openai_server import FakeOpenAIServer, TextReply
from tests.fakes.sqs_lambda import queue_depth
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.runtime.async_env import AsyncApp, AsyncEnv, install_async_app, make_async_env, uninstall
from tests.runtime.conftest import TABLE_NAME, ScriptedLLM, text, tool_use

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

VISIBILITY = 2
WORKER_ENV = {
    "WORKER_VISIBILITY_SECONDS": str(VISIBILITY),
    "WORKER_HEARTBEAT_SECONDS": "0.5",
    "WORKER_RECEIVE_WAIT_SECONDS": "1",
}


# --- fakes -------------------------------------------------------------------------------------


class BlockingModel:
    """Answers each prompt after holding the call until ``release`` is set or ``hold`` passes."""

    def __init__(self, hold: float = 10.0, after: Callable[[], None] | None = None) -> None:
        self.hold = hold
        self.after = after
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.calls: list[str] = []

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        system: str | None = None,
    ) -> LLMResponse:
        self.calls.append(messages[-1].content)
        self.started.set()
        self.release.wait(self.hold)
        if self.after is not None:
            self.after()
        self.finished.set()
        return text(f"done: {messages[-1].content}")


class SpySqs:
    """The moto client, recording the calls that decide a message's fate."""

    def __init__(self, client: SQSClient) -> None:
        self._client = client
        self.deletes: list[str] = []
        # (receipt handle, visibility) per entry of every visibility change
        self.visibility: list[tuple[str, int]] = []

    def delete_message(self, **kwargs: Any) -> Any:
        self.deletes.append(kwargs["ReceiptHandle"])
        return self._client.delete_message(**kwargs)

    def change_message_visibility_batch(self, **kwargs: Any) -> Any:
        for entry in kwargs["Entries"]:
            self.visibility.append((entry["ReceiptHandle"], entry["VisibilityTimeout"]))
        return self._client.change_message_visibility_batch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@dataclass
class AgentEndpoint:
    """A local stand-in for the ECS agent: records task-protection PUTs, answers like ECS."""

    status: int = 200
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    # Called with each request body after it is recorded, before the answer.
    on_request: Callable[[dict[str, Any]], None] | None = None
    server: ThreadingHTTPServer | None = None

    @property
    def uri(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/task-1234"

    def bodies(self) -> list[dict[str, Any]]:
        return [body for _, _, body in self.requests]

    def __enter__(self) -> AgentEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                endpoint.requests.append(("PUT", self.path, body))
                if endpoint.on_request is not None:
                    endpoint.on_request(body)
                if endpoint.status == 200:
                    answer = {"protection": {"ProtectionEnabled": body["ProtectionEnabled"]}}
                else:
                    answer = {"error": {"Code": "InvalidParameterException", "Message": "no"}}
                payload = json.dumps(answer).encode()
                self.send_response(endpoint.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


# --- harness -----------------------------------------------------------------------------------


@pytest.fixture
def make_env(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., AsyncEnv]]:
    def make(overrides: Mapping[str, str] | None = None) -> AsyncEnv:
        env = make_async_env(monkeypatch, overrides)
        # The queue's own timeout is short, like the worker's: only the heartbeat keeps a long
        # task's message hidden.
        env.sqs.set_queue_attributes(
            QueueUrl=env.task_queue_url, Attributes={"VisibilityTimeout": str(VISIBILITY)}
        )
        return env

    yield make
    uninstall()


@pytest.fixture
def env(make_env: Callable[..., AsyncEnv]) -> AsyncEnv:
    return make_env()


@dataclass
class Running:
    consumer: QueueConsumer
    sqs: SpySqs
    stop: threading.Event
    thread: threading.Thread
    result: list[bool] = field(default_factory=list)

    def join(self, timeout: float = 10.0) -> bool:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the consumer did not stop"
        return self.result[0]


def start_consumer(
    env: AsyncEnv,
    llm: LLMClient,
    *,
    stop: threading.Event | None = None,
    worker_env: Mapping[str, str] | None = None,
    budgets: list[float] | None = None,
    wrap: Callable[[Handler], Handler] | None = None,
    protection: TaskProtection | None = None,
) -> tuple[Running, AsyncApp]:
    app = install_async_app(env, llm)
    clients = app.clients
    worker = TaskWorker(
        store=clients.store,
        sessions=DynamoDBSessionStore(TABLE_NAME, ttl_seconds=3600, client=env.dynamodb),
        tools=default_registry(),
        callback_queue=clients.callback_queue,
        settings=clients.settings,
        agent=AgentOptions(max_iterations=4, system_prompt=None),
    )

    def llm_factory(budget: float) -> LLMClient:
        if budgets is not None:
            budgets.append(budget)
        return llm

    handler = task_handler(worker, llm_factory)
    stop = stop or threading.Event()
    spy = SpySqs(env.sqs)
    consumer = QueueConsumer(
        queue="task",
        sqs=cast("SQSClient", spy),
        queue_url=env.task_queue_url,
        handler=wrap(handler) if wrap else handler,
        settings=WorkerSettings.from_env({**WORKER_ENV, **(worker_env or {})}),
        lease_seconds=clients.settings.task_lease_seconds,
        stop=stop,
        protection=protection,
    )
    running = Running(consumer, spy, stop, threading.Thread(target=lambda: None))
    running.thread = threading.Thread(
        target=lambda: running.result.append(consumer.run()), daemon=True
    )
    running.thread.start()
    return running, app


def submit(app: AsyncApp, prompt: str, **extra: Any) -> str:
    status, _, body = app.submit({"input": prompt, **extra})
    assert status == 202, body
    return str(body["task_id"])


def task_status(env: AsyncEnv, task_id: str) -> str:
    task = env.store().get(task_id, now=int(time.time()))
    assert task is not None
    return task.status


def receive_now(env: AsyncEnv, count: int = 10) -> list[dict[str, Any]]:
    """What another worker would get right now (held for 30 s so it cannot come back)."""
    return [
        dict(message)
        for message in env.sqs.receive_message(
            QueueUrl=env.task_queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=0,
            VisibilityTimeout=30,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
    ]


def not_visible(env: AsyncEnv) -> int:
    attributes = env.sqs.get_queue_attributes(
        QueueUrl=env.task_queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesNotVisible"])


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


# --- the heartbeat -----------------------------------------------------------------------------


def test_a_task_longer_than_the_visibility_timeout_is_not_redelivered(env: AsyncEnv) -> None:
    stop = threading.Event()
    # 3 s of model time against a 2 s visibility timeout; the stop arrives as it ends.
    model = BlockingModel(hold=3.0, after=stop.set)
    running, app = start_consumer(env, model, stop=stop, worker_env={"WORKER_DRAIN_SECONDS": "5"})
    task_id = submit(app, "a long task")
    assert model.started.wait(5)

    while not model.finished.is_set():
        # Another worker polling all along never gets the message.
        assert receive_now(env) == []
        time.sleep(0.2)

    assert running.join() is True
    assert model.calls == ["a long task"]
    assert task_status(env, task_id) == "succeeded"
    assert queue_depth(env.sqs, env.task_queue_url) == 0
    assert len(running.sqs.deletes) == 1
    extensions = [seconds for _, seconds in running.sqs.visibility]
    assert len(extensions) >= 4  # every 0.5 s for 3 s
    assert set(extensions) == {VISIBILITY}


# --- shutdown ----------------------------------------------------------------------------------


def test_stop_during_a_task_longer_than_the_drain_releases_its_message(env: AsyncEnv) -> None:
    model = BlockingModel(hold=30)
    running, app = start_consumer(env, model, worker_env={"WORKER_DRAIN_SECONDS": "1"})
    task_id = submit(app, "too long to drain")
    assert model.started.wait(5)

    stopped_at = time.monotonic()
    running.stop.set()
    clean = running.join(timeout=5)
    elapsed = time.monotonic() - stopped_at

    assert clean is False
    assert 1.0 <= elapsed < 1.6
    # Visible again at once, to any worker, and not deleted.
    [again] = receive_now(env)
    assert json.loads(again["Body"])["task_id"] == task_id
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    assert task_status(env, task_id) == "running"
    assert running.sqs.deletes == []

    # The cut-off task finishing later changes nothing about the released message.
    model.release.set()
    for thread in running.consumer.abandoned:
        thread.join(5)
    assert running.sqs.deletes == []
    assert queue_depth(env.sqs, env.task_queue_url) == 1


def test_stop_during_a_short_task_lets_it_finish_and_deletes_its_message(env: AsyncEnv) -> None:
    model = BlockingModel(hold=0.3)
    running, app = start_consumer(env, model, worker_env={"WORKER_DRAIN_SECONDS": "5"})
    task_id = submit(app, "quick")
    assert model.started.wait(5)

    stopped_at = time.monotonic()
    running.stop.set()

    assert running.join(timeout=5) is True
    assert time.monotonic() - stopped_at < 1.5
    assert task_status(env, task_id) == "succeeded"
    assert len(running.sqs.deletes) == 1
    assert queue_depth(env.sqs, env.task_queue_url) == 0


def test_a_real_sigterm_drains_through_the_installed_handler(env: AsyncEnv) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    restore = install_signal_handlers(stop)
    try:
        model = BlockingModel(hold=0.3)
        running, app = start_consumer(
            env, model, stop=stop, worker_env={"WORKER_DRAIN_SECONDS": "5"}
        )
        task_id = submit(app, "signalled")
        assert model.started.wait(5)

        os.kill(os.getpid(), signal.SIGTERM)

        assert stop.wait(2)
        assert running.join(timeout=5) is True
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is previous
    assert task_status(env, task_id) == "succeeded"
    assert queue_depth(env.sqs, env.task_queue_url) == 0


def test_messages_received_but_not_started_are_released_at_once(env: AsyncEnv) -> None:
    model = BlockingModel(hold=30)
    running, app = start_consumer(
        env, model, worker_env={"WORKER_BATCH_SIZE": "3", "WORKER_DRAIN_SECONDS": "10"}
    )
    task_ids = [submit(app, f"batch {n}") for n in range(3)]
    assert model.started.wait(5)
    [running_prompt] = model.calls

    running.stop.set()
    released: list[dict[str, Any]] = []
    deadline = time.monotonic() + 1.0
    while len(released) < 2 and time.monotonic() < deadline:
        released += receive_now(env)
        time.sleep(0.05)

    running_id = task_ids[int(running_prompt.split()[-1])]
    assert sorted(json.loads(m["Body"])["task_id"] for m in released) == sorted(
        set(task_ids) - {running_id}
    )
    # The one in progress still finishes inside the drain.
    model.release.set()
    assert running.join() is True
    assert model.calls == [running_prompt]
    assert task_status(env, running_id) == "succeeded"


# --- the model's time budget -------------------------------------------------------------------


def test_a_model_call_during_the_drain_gets_only_the_drain_time_left(env: AsyncEnv) -> None:
    stop = threading.Event()
    budgets: list[float] = []

    def first_call(_: Sequence[Message]) -> LLMResponse:
        stop.set()  # SIGTERM arrives during the first model call
        return tool_use("calculator", {"expression": "2 + 2"})

    llm = ScriptedLLM([first_call, text("4")])
    running, app = start_consumer(
        env, llm, stop=stop, worker_env={"WORKER_DRAIN_SECONDS": "4"}, budgets=budgets
    )
    task_id = submit(app, "add")

    assert running.join() is True
    assert task_status(env, task_id) == "succeeded"
    # Before the stop: the task lease (60 s) less the safety margin; after: the drain's 4 s less it.
    assert 56 < budgets[0] <= 57
    assert 0 < budgets[1] <= 1.1  # the drain starts when the stop is first seen (<= 50 ms)


def test_no_model_call_starts_when_the_drain_has_no_time_for_it(env: AsyncEnv) -> None:
    stop = threading.Event()

    def first_call(_: Sequence[Message]) -> LLMResponse:
        stop.set()
        return tool_use("calculator", {"expression": "2 + 2"})

    llm = ScriptedLLM([first_call, text("never sent")])
    running, app = start_consumer(env, llm, stop=stop, worker_env={"WORKER_DRAIN_SECONDS": "2"})
    task_id = submit(app, "add")

    # The second call is refused (2 s left < the 3 s margin): a transient failure, so the task
    # is released for a retry and its message made visible after the back-off (0 here).
    assert running.join() is True
    assert len(llm.calls) == 1
    assert task_status(env, task_id) == "queued"
    assert running.sqs.deletes == []
    assert [seconds for _, seconds in running.sqs.visibility] == [0]
    [again] = receive_now(env)
    assert json.loads(again["Body"])["task_id"] == task_id


# --- outcomes mapped like the Lambda ----------------------------------------------------------


def test_retry_later_sets_the_back_off_as_the_message_visibility(
    make_env: Callable[..., AsyncEnv],
) -> None:
    env = make_env({"TASK_RETRY_BASE_SECONDS": "7", "TASK_RETRY_MAX_SECONDS": "7"})
    stop = threading.Event()

    def rate_limited(_: Sequence[Message]) -> LLMResponse:
        stop.set()
        raise LLMRateLimitedError("429 from the provider")

    running, app = start_consumer(env, ScriptedLLM([rate_limited]), stop=stop)
    task_id = submit(app, "rate limited")

    assert running.join() is True
    assert running.sqs.deletes == []
    assert [seconds for _, seconds in running.sqs.visibility] == [7]
    assert receive_now(env) == []
    assert queue_depth(env.sqs, env.task_queue_url) == 1
    assert task_status(env, task_id) == "queued"


def test_a_poison_message_is_left_for_the_queue_to_dead_letter(env: AsyncEnv) -> None:
    stop = threading.Event()
    seen: list[ReceivedMessage] = []

    def stop_after(handler: Handler) -> Handler:
        def handle(message: ReceivedMessage, seconds_left: Callable[[], float]) -> str:
            seen.append(message)
            try:
                return handler(message, seconds_left)
            finally:
                stop.set()

        return handle

    running, _ = start_consumer(env, BlockingModel(), stop=stop, wrap=stop_after)
    env.sqs.send_message(QueueUrl=env.task_queue_url, MessageBody="not json")

    assert running.join() is True
    assert [message.body for message in seen] == ["not json"]
    # Neither deleted nor made visible: it comes back after its visibility timeout, and SQS
    # moves it to the DLQ after maxReceiveCount receives, exactly as with the Lambda.
    assert running.sqs.deletes == []
    assert running.sqs.visibility == []
    assert not_visible(env) == 1


# --- ECS task scale-in protection --------------------------------------------------------------


def test_task_protection_is_on_while_busy_and_off_when_idle(env: AsyncEnv) -> None:
    stop = threading.Event()

    def stop_once_unprotected(body: dict[str, Any]) -> None:
        # The consumer went idle (an empty receive); stopping now spares the test another poll.
        if body["ProtectionEnabled"] is False:
            stop.set()

    with AgentEndpoint(on_request=stop_once_unprotected) as agent:
        protected_during_call: list[list[dict[str, Any]]] = []

        def answer(_: Sequence[Message]) -> LLMResponse:
            protected_during_call.append(agent.bodies())
            return text("ok")

        protection = TaskProtection(agent.uri, expires_in_minutes=2)
        running, app = start_consumer(env, ScriptedLLM([answer]), stop=stop, protection=protection)
        task_id = submit(app, "protected")
        assert running.join() is True
        protection.close()

    assert task_status(env, task_id) == "succeeded"
    assert protected_during_call == [[{"ProtectionEnabled": True, "ExpiresInMinutes": 2}]]
    assert agent.requests == [
        (
            "PUT",
            "/api/task-1234/task-protection/v1/state",
            {"ProtectionEnabled": True, "ExpiresInMinutes": 2},
        ),
        ("PUT", "/api/task-1234/task-protection/v1/state", {"ProtectionEnabled": False}),
    ]


def test_task_protection_failures_are_logged_never_fatal(
    env: AsyncEnv, caplog: pytest.LogCaptureFixture
) -> None:
    with AgentEndpoint(status=400) as agent:
        protection = TaskProtection(agent.uri, expires_in_minutes=2)
        stop = threading.Event()
        model = BlockingModel(hold=0, after=stop.set)
        with caplog.at_level(logging.WARNING, logger="runtime.queue_worker"):
            running, app = start_consumer(env, model, stop=stop, protection=protection)
            task_id = submit(app, "unprotected")
            assert running.join() is True
        protection.close()

    assert task_status(env, task_id) == "succeeded"
    refusals = [r for r in caplog.records if r.getMessage() == "task protection refused"]
    assert [r.__dict__["protection_enabled"] for r in refusals] == [True, False]
    assert refusals[0].__dict__["status_code"] == 400


def test_task_protection_counts_holders_and_refreshes_before_expiry() -> None:
    clock = FakeClock(0)
    with AgentEndpoint() as agent:
        protection = TaskProtection(agent.uri, expires_in_minutes=2, clock=clock)
        protection.acquire()
        protection.acquire()  # a second consumer: already protected
        clock.advance(59)
        protection.refresh()  # under half the lifetime: nothing to do
        clock.advance(1)
        protection.refresh()  # half of 2 minutes: re-arm
        protection.release()  # one consumer still busy
        protection.release()
        protection.release()  # not held: no call
        protection.close()

    assert [body["ProtectionEnabled"] for body in agent.bodies()] == [True, True, False]


def test_task_protection_with_the_agent_unreachable_only_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with AgentEndpoint() as agent:
        uri = agent.uri  # the port is closed again once the endpoint stops
    protection = TaskProtection(uri, expires_in_minutes=5, timeout_seconds=0.5)
    with caplog.at_level(logging.WARNING, logger="runtime.queue_worker"):
        protection.acquire()
        protection.release()
    protection.close()
    failures = [r for r in caplog.records if r.getMessage() == "task protection call failed"]
    assert len(failures) == 2


# --- settings, logging, main -------------------------------------------------------------------


def test_worker_settings_defaults_and_validation() -> None:
    defaults = WorkerSettings.from_env({})
    assert defaults.consumed() == ("task",)
    assert (defaults.batch_size, defaults.visibility_seconds, defaults.drain_seconds) == (1, 60, 25)
    assert defaults.heartbeat_interval == 20
    assert defaults.receive_wait_seconds == 20
    assert WorkerSettings.from_env({"WORKER_QUEUES": "both"}).consumed() == ("task", "callback")

    with pytest.raises(SettingsError, match="WORKER_HEARTBEAT_SECONDS must be less than"):
        WorkerSettings.from_env(
            {"WORKER_VISIBILITY_SECONDS": "30", "WORKER_HEARTBEAT_SECONDS": "30"}
        )
    with pytest.raises(SettingsError, match="WORKER_BATCH_SIZE") as caught:
        WorkerSettings.from_env({"WORKER_BATCH_SIZE": "11", "WORKER_QUEUES": "all"})
    assert "WORKER_QUEUES" in str(caught.value)
    with pytest.raises(SettingsError, match="WORKER_DRAIN_SECONDS"):
        WorkerSettings.from_env({"WORKER_DRAIN_SECONDS": "86401"})


def test_json_log_lines_carry_the_extras_and_the_exception() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.queue_worker.json")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        log.info("message done", extra={"message_id": "m-1", "task_id": "t-1", "outcome": "ok"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("message failed", extra={"message_id": "m-2"})
    finally:
        log.removeHandler(handler)

    done, failed = (json.loads(line) for line in stream.getvalue().splitlines())
    assert {k: done[k] for k in ("level", "message", "message_id", "task_id", "outcome")} == {
        "level": "INFO",
        "message": "message done",
        "message_id": "m-1",
        "task_id": "t-1",
        "outcome": "ok",
    }
    assert failed["exception_type"] == "ValueError"
    assert "boom" in failed["exception"]


def test_main_runs_both_queues_until_sigterm_and_exits_0(
    make_env: Callable[..., AsyncEnv],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    with (
        FakeOpenAIServer([TextReply("the answer")]) as model,
        AgentEndpoint() as agent,
    ):
        env = make_env(
            {
                **WORKER_ENV,
                "WORKER_QUEUES": "both",
                "WORKER_DRAIN_SECONDS": "3",
                "LLM_BASE_URL": model.base_url,
                "LLM_API_KEY": "test-key",
                "ECS_AGENT_URI": agent.uri,
            }
        )
        with WebhookReceiver(secrets=[env.signing_secret]) as receiver:
            app = install_async_app(env, ScriptedLLM())
            task_id = submit(app, "hello", callback_url=receiver.url)
            previous = signal.getsignal(signal.SIGTERM)

            def terminate_when_delivered() -> None:
                wait_for(lambda: len(receiver.accepted) == 1, timeout=10)
                os.kill(os.getpid(), signal.SIGTERM)

            threading.Thread(target=terminate_when_delivered, daemon=True).start()
            started = time.monotonic()
            status = main([])
            elapsed = time.monotonic() - started

    assert status == 0
    assert elapsed < 8
    assert signal.getsignal(signal.SIGTERM) is previous
    assert task_status(env, task_id) == "succeeded"
    assert receiver.accepted == [f"msg_{task_id}_1"]
    assert queue_depth(env.sqs, env.task_queue_url) == 0
    assert queue_depth(env.sqs, env.callback_queue_url) == 0
    assert model.requests[0].authorization == "Bearer test-key"
    assert agent.bodies()[0] == {"ProtectionEnabled": True, "ExpiresInMinutes": 2}
    assert agent.bodies()[-1] == {"ProtectionEnabled": False}

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    # stdout also carries the ingress handler's Powertools lines; keep the worker's.
    lines = [line for line in lines if line.get("logger") == "runtime.queue_worker"]
    done = {(line["queue"], line["outcome"]) for line in lines if line["message"] == "message done"}
    assert done == {("task", "succeeded"), ("callback", "delivered")}
    assert any(line["message"] == "shutdown requested; draining" for line in lines)
    assert all(line["task_id"] == task_id for line in lines if line["message"] == "message done")


def test_main_refuses_a_bad_environment_with_ex_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    monkeypatch.setenv("WORKER_QUEUES", "everything")

    assert main([]) == EXIT_CONFIG_ERROR == 78
    [line] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert line["message"] == "invalid configuration"
    assert "WORKER_QUEUES" in line["reason"]
