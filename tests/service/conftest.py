"""Fixtures for the container service: a real uvicorn server on 127.0.0.1, real clients.

``running_service`` starts :class:`~runtime.service.server.DrainingServer` (the one production
runs, uvloop + httptools + websockets) in a background thread on a free port; tests talk to it
with httpx and the ``websockets`` client. The model is either the fake OpenAI-compatible HTTP
server behind the real client (``openai_dependencies``), or an in-process scripted one where a
test needs to hold a step at a precise point (``scripted_dependencies``). Sessions live in
:class:`~tests.fakes.memory_store.InMemorySessionStore`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from runtime.llm.factory import build_llm_client
from runtime.llm.types import LLMClient, LLMResponse, Message
from runtime.service.app import ServiceState, create_app, service_state
from runtime.service.server import DrainingServer, uvicorn_config
from runtime.service.settings import ServiceSettings
from runtime.settings import RuntimeSettings
from runtime.tools import default_registry
from runtime.wiring import Dependencies
from tests.fakes.memory_store import InMemorySessionStore
from tests.fakes.openai_server import FakeOpenAIServer
from tests.runtime.conftest import ScriptedLLM, ScriptStep

# The agent's environment, as the stack sets it; the store and model are injected instead.
RUNTIME_ENV = {
    "SESSION_TABLE_NAME": "unused-by-the-service-tests",
    "SESSION_TTL_SECONDS": "3600",
    "LLM_PROVIDER": "openai-compatible",
    "LLM_MODEL_ID": "test-model",
    "LLM_BASE_URL": "http://127.0.0.1:9/v1",
    "LLM_API_KEY": "test",
    "LLM_REQUEST_TIMEOUT_SECONDS": "5",
    "LLM_MAX_ATTEMPTS": "1",
    "AGENT_MAX_ITERATIONS": "4",
    "AGENT_SYSTEM_PROMPT": "You are a careful test assistant.",
    "MAX_MESSAGE_CHARS": "2000",
    "MAX_BODY_BYTES": "8192",
}
SERVICE_ENV = {"SERVICE_HOST": "127.0.0.1", "SERVICE_DRAIN_SECONDS": "5"}
WAIT_SECONDS = 10.0


def runtime_settings(**overrides: str) -> RuntimeSettings:
    return RuntimeSettings.from_env({**RUNTIME_ENV, **overrides})


def service_settings(**overrides: str) -> ServiceSettings:
    return ServiceSettings.from_env({**SERVICE_ENV, **overrides})


def scripted_dependencies(
    llm: LLMClient, store: InMemorySessionStore, *, config: RuntimeSettings | None = None
) -> Dependencies:
    return Dependencies(
        settings=config or runtime_settings(),
        store=store,
        llm_factory=lambda _budget: llm,
        tools=default_registry(),
    )


def openai_dependencies(
    base_url: str, store: InMemorySessionStore, **env: str
) -> tuple[Dependencies, list[float]]:
    """The real OpenAI-compatible client, built per call as ``build_dependencies`` does.

    Also returns the time budgets the service gave each model call.
    """
    config = runtime_settings(LLM_BASE_URL=base_url, **env)
    http_client = httpx.Client()
    budgets: list[float] = []

    def llm_factory(budget_seconds: float) -> LLMClient:
        budgets.append(budget_seconds)
        return build_llm_client(
            config,
            http_client=http_client,
            total_budget_seconds=budget_seconds,
            api_key=lambda: "test",
        )

    deps = Dependencies(
        settings=config, store=store, llm_factory=llm_factory, tools=default_registry()
    )
    return deps, budgets


class ServerForTests(DrainingServer):
    """The production server, keeping a handle on its loop so tests can act on it."""

    loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)


@dataclass
class RunningService:
    server: ServerForTests
    thread: threading.Thread
    port: int
    state: ServiceState

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, session_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/agent/{session_id}"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=WAIT_SECONDS)

    def on_loop(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the server's event loop (as a signal hook would) and wait for it."""
        assert self.server.loop is not None
        done = threading.Event()

        def run() -> None:
            try:
                function()
            finally:
                done.set()

        self.server.loop.call_soon_threadsafe(run)
        assert done.wait(WAIT_SECONDS)

    def refuses_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return False
        except ConnectionRefusedError:
            return True

    def stop(self) -> None:
        """Ask for the shutdown a SIGTERM starts, and wait for the server to finish it."""
        self.server.should_exit = True
        self.thread.join(WAIT_SECONDS)
        assert not self.thread.is_alive(), "the server did not stop"


@contextmanager
def running_service(app: FastAPI, settings: ServiceSettings) -> Iterator[RunningService]:
    config = uvicorn_config(app, settings, host="127.0.0.1", port=0, configure_logging=False)
    server = ServerForTests(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = int(server.servers[0].sockets[0].getsockname()[1])
    service = RunningService(server, thread, port, service_state(app))
    try:
        yield service
    finally:
        if service.thread.is_alive():
            service.stop()


@contextmanager
def serve(
    deps: Dependencies, settings: ServiceSettings | None = None, **app_options: Any
) -> Iterator[RunningService]:
    settings = settings or service_settings()
    app = create_app(deps=deps, settings=settings, **app_options)
    with running_service(app, settings) as service:
        yield service


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for a condition"
        time.sleep(0.01)


# --- WebSocket client helpers ------------------------------------------------------------------


class PingRecordingConnection(ClientConnection):
    """The websockets client, noting when each protocol-level ping from the server arrives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pings: list[float] = []

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings.append(time.monotonic())
        super().process_event(event)


def ws_connect(url: str, **options: Any) -> ClientConnection:
    # The client's own keepalive is off: only the server's heartbeat is under test.
    connection: ClientConnection = connect(
        url, open_timeout=WAIT_SECONDS, ping_interval=None, **options
    )
    return connection


def send(ws: ClientConnection, frame: Mapping[str, Any] | str) -> None:
    ws.send(frame if isinstance(frame, str) else json.dumps(frame))


def receive(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=WAIT_SECONDS))
    return frame


def receive_step(ws: ClientConnection) -> list[dict[str, Any]]:
    """Frames up to and including the step's last one (``result`` or ``error``)."""
    frames = [receive(ws)]
    while frames[-1]["type"] not in ("result", "error"):
        frames.append(receive(ws))
    return frames


# --- a model whose answers a test releases ----------------------------------------------------


@dataclass
class Gate:
    """A script step that signals when the model is called, then waits to be released."""

    response: LLMResponse
    entered: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def __call__(self, _: Sequence[Message]) -> LLMResponse:
        self.entered.set()
        if not self.released.wait(WAIT_SECONDS):
            raise AssertionError("the test never released the model call")
        return self.response

    def wait_entered(self) -> None:
        assert self.entered.wait(WAIT_SECONDS), "the model was never called"


def script(*steps: ScriptStep) -> ScriptedLLM:
    return ScriptedLLM(list(steps))


@pytest.fixture
def store() -> InMemorySessionStore:
    return InMemorySessionStore()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(expected_api_key="test") as server:
        yield server
