"""Graceful shutdown: what a SIGTERM starts, in-process and for real in a subprocess.

In-process tests ask the server to exit the way uvicorn's signal handler does (``should_exit``)
and check each promise on its own. The subprocess test runs ``python -m runtime.service serve``
against Redis and the fake model, sends it a real SIGTERM, and checks them all together.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from runtime.redis_store import RedisSessionStore
from tests.fakes.memory_store import InMemorySessionStore
from tests.fakes.openai_server import DelayedReply, FakeOpenAIServer, TextReply
from tests.fakes.ports import free_port
from tests.fakes.redis_server import RedisServer
from tests.runtime.conftest import text, tool_use
from tests.service.conftest import (
    RUNTIME_ENV,
    WAIT_SECONDS,
    Gate,
    receive,
    script,
    scripted_dependencies,
    send,
    serve,
    service_settings,
    wait_until,
    ws_connect,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_a_streaming_websocket_closes_with_1001_and_its_step_still_saves(
    store: InMemorySessionStore,
) -> None:
    gate = Gate(text("answered after the close"))
    llm = script(tool_use("calculator", {"expression": "2 + 2"}, content="Adding."), gate)

    with serve(scripted_dependencies(llm, store)) as service:
        with ws_connect(service.ws_url("drain-ws")) as ws:
            send(ws, {"message": "add, then answer"})
            streamed = [receive(ws), receive(ws)]
            gate.wait_entered()  # the step is between two model calls
            stopper = threading.Thread(target=service.stop)
            stopper.start()
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=WAIT_SECONDS)
        stopper.join(WAIT_SECONDS)
        assert not service.thread.is_alive()
        # The server is gone; the step was never killed and finishes in its thread.
        gate.released.set()
        assert service.state.steps.wait_idle(WAIT_SECONDS)

    assert [frame["type"] for frame in streamed] == ["thinking", "action"]
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "server shutting down")
    saved = store.get("drain-ws")
    assert saved is not None
    assert (saved.version, saved.messages[-1].content) == (1, "answered after the close")


def test_while_draining_new_work_is_refused_and_readiness_fails(
    store: InMemorySessionStore,
) -> None:
    settings = service_settings(SERVICE_RETRY_AFTER_SECONDS="3")
    with serve(scripted_dependencies(script(), store), settings) as service:
        with service.http() as client:
            assert client.get("/readyz").status_code == 200
            # What the server's shutdown does first, before the listener goes away.
            service.on_loop(service.state.drain.begin)
            ready = client.get("/readyz")
            post = client.post("/sessions/late-1/messages", json={"message": "hi"})
            alive = client.get("/healthz")
        with (
            ws_connect(service.ws_url("late-2")) as ws,
            pytest.raises(ConnectionClosed) as closed,
        ):
            ws.recv(timeout=WAIT_SECONDS)

    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "draining"
    assert post.status_code == 503
    assert post.json()["error"]["code"] == "draining"
    assert post.headers["retry-after"] == "3"
    assert alive.status_code == 200
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001


def test_in_flight_http_finishes_while_new_connections_are_refused(
    store: InMemorySessionStore,
) -> None:
    gate = Gate(text("worth the wait"))
    answers: list[httpx.Response] = []

    with serve(scripted_dependencies(script(gate), store)) as service:

        def post() -> None:
            with service.http() as client:
                answers.append(client.post("/sessions/inflight-1/messages", json={"message": "hi"}))

        poster = threading.Thread(target=post)
        poster.start()
        gate.wait_entered()
        stopper = threading.Thread(target=service.stop)
        stopper.start()
        wait_until(service.refuses_connections)
        assert poster.is_alive()  # still waiting for its answer
        gate.released.set()
        poster.join(WAIT_SECONDS)
        stopper.join(WAIT_SECONDS)

    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == "worth the wait"


def test_model_calls_after_the_drain_began_get_only_the_time_left(
    store: InMemorySessionStore,
) -> None:
    # The first model call was made before the shutdown; the second would start after it, with
    # less time left than the safety margin: it is refused, and the step ends unsaved with a 504
    # the client still receives, instead of running past the drain.
    gate = Gate(tool_use("calculator", {"expression": "1 + 1"}))
    settings = service_settings(SERVICE_DRAIN_SECONDS="2")
    answers: list[httpx.Response] = []

    with serve(
        scripted_dependencies(script(gate, text("never asked")), store), settings
    ) as service:

        def post() -> None:
            with service.http() as client:
                answers.append(client.post("/sessions/late-model/messages", json={"message": "x"}))

        poster = threading.Thread(target=post)
        poster.start()
        gate.wait_entered()
        stopped_at = time.monotonic()
        stopper = threading.Thread(target=service.stop)
        stopper.start()
        wait_until(lambda: service.state.drain.draining)
        gate.released.set()
        poster.join(WAIT_SECONDS)
        stopper.join(WAIT_SECONDS)
        elapsed = time.monotonic() - stopped_at

    (answer,) = answers
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "llm_timeout"
    assert store.get("late-model") is None
    assert elapsed < 2.0


def test_the_drain_time_bounds_the_shutdown_even_for_a_step_that_never_ends(
    store: InMemorySessionStore,
) -> None:
    gate = Gate(text("far too late"))
    settings = service_settings(SERVICE_DRAIN_SECONDS="1")
    answers: list[httpx.Response] = []

    with serve(scripted_dependencies(script(gate), store), settings) as service:

        def post() -> None:
            with service.http() as client:
                answers.append(client.post("/sessions/stuck-1/messages", json={"message": "x"}))

        poster = threading.Thread(target=post)
        poster.start()
        gate.wait_entered()
        stopped_at = time.monotonic()
        service.stop()
        elapsed = time.monotonic() - stopped_at
        poster.join(WAIT_SECONDS)
        # Its thread is still inside the model call: counted, but nothing waits for it here.
        assert service.state.steps.running == 1
        gate.released.set()
        assert service.state.steps.wait_idle(WAIT_SECONDS)

    assert 1.0 <= elapsed < 1.6
    (answer,) = answers
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "draining"
    assert "read the session before retrying" in answer.json()["error"]["message"]
    # The step was not killed: it saved once the model answered, after the server had gone.
    saved = store.get("stuck-1")
    assert saved is not None
    assert saved.messages[-1].content == "far too late"


# --- the real process ---------------------------------------------------------------------------


def _wait_healthy(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited during start-up"
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("the service did not become healthy")


def test_sigterm_drains_http_closes_websockets_with_1001_and_exits_0(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    drain_seconds = 3.0
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    http_session, ws_session = f"sigterm-{uuid.uuid4().hex}", f"sigterm-{uuid.uuid4().hex}"
    stdout_path, stderr_path = tmp_path / "stdout.log", tmp_path / "stderr.log"

    with (
        FakeOpenAIServer(
            [DelayedReply(1.0, TextReply("slow but complete"))], expected_api_key="test"
        ) as model,
        stdout_path.open("wb") as stdout,
        stderr_path.open("wb") as stderr,
    ):
        env = {
            "PATH": os.environ.get("PATH", ""),
            **RUNTIME_ENV,
            "SESSION_STORE": "redis",
            "REDIS_URL": redis_server.url,
            "REDIS_PASSWORD": redis_server.password,
            "LLM_BASE_URL": model.base_url,
            "LLM_API_KEY": "test",
            "SERVICE_HOST": "127.0.0.1",
            "SERVICE_PORT": str(port),
            "SERVICE_DRAIN_SECONDS": str(drain_seconds),
            "SERVICE_STOP_TIMEOUT_SECONDS": "5",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.service", "serve"],
            cwd=REPO_ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        answers: list[httpx.Response] = []
        try:
            _wait_healthy(base_url, process)
            with ws_connect(f"ws://127.0.0.1:{port}/agent/{ws_session}") as ws:

                def post() -> None:
                    answers.append(
                        httpx.post(
                            f"{base_url}/sessions/{http_session}/messages",
                            json={"message": "take a second"},
                            timeout=WAIT_SECONDS,
                        )
                    )

                poster = threading.Thread(target=post)
                poster.start()
                wait_until(lambda: len(model.requests) == 1)  # the step is in flight

                signalled_at = time.monotonic()
                process.send_signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=WAIT_SECONDS)
                # The listener closed before the WebSockets were told to go away.
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                assert poster.is_alive()  # the HTTP step is still running
            poster.join(WAIT_SECONDS)
            exit_code = process.wait(timeout=drain_seconds + 5)
            exited_after = time.monotonic() - signalled_at
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    logs = stdout_path.read_text()
    assert closed.value.rcvd is not None, logs
    assert closed.value.rcvd.code == 1001
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert (answer.json()["output"], answer.json()["version"]) == ("slow but complete", 1)
    assert exit_code == 0, stderr_path.read_text()
    assert exited_after < drain_seconds + 1.0
    # The turn is in Redis, where the next instance will read it.
    redis_store = RedisSessionStore.from_url(
        redis_server.url, password=redis_server.password, ttl_seconds=3600
    )
    saved = redis_store.get(http_session)
    assert saved is not None
    assert saved.version == 1
    # Every line on stdout is one JSON log record.
    records = [json.loads(line) for line in logs.splitlines()]
    messages = [record["message"] for record in records]
    assert "Shutting down" in messages
    assert "service stopped" in messages
