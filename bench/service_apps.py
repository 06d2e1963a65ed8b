"""The three servers the service benchmark compares, each run by uvicorn in its own process.

``python bench/service_apps.py {bare,hello,agent} PORT`` serves one of them on 127.0.0.1 with
uvloop and httptools, like the container does:

* ``bare``: a raw ASGI app answering a fixed JSON body, the floor;
* ``hello``: FastAPI answering ``{"hello": "world"}`` from a route, what the framework costs;
* ``agent``: the real service as production runs it (``python -m runtime.service serve``):
  ``create_app`` served by :func:`~runtime.service.server.production_server` with
  :func:`~runtime.service.server.uvicorn_config`, the production defaults of ``ServiceSettings``
  (bearer token, INFO JSON logs with uvicorn's access line, WebSocket heartbeat), usage metrics
  (one EMF line per model call) and the process set-up of ``serve``; only the model and the store
  are stand-ins. The model answers at once, so what is measured is our code, not a model. The
  store (:class:`SerialisedStore`) keeps each session as the JSON string the Redis and DynamoDB
  stores write, encoding on save and decoding on read as they do, but in the process and without
  the network round trip. (The test fake that keeps ``Session`` objects would make the garbage
  collector walk every session ever created, which no production store does.)

The agent's log lines and metric lines go to stdout, as in a container; ``bench/service.py``
points stdout at a file, as a log driver would read it.

``python bench/service_apps.py agent PORT --off PART[,PART...]`` serves the agent with parts of
its work switched off, for ``bench/service_floor.py`` (what each part costs, never how to run it):
see :data:`PARTS`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import runtime.service.app as app_module  # noqa: E402
from runtime.agent import StepResult  # noqa: E402
from runtime.llm.types import LLMResponse, Message, ToolSpec, Usage  # noqa: E402
from runtime.observability.usage import MeteredLLM, usage_metrics  # noqa: E402
from runtime.service.app import create_app, service_state  # noqa: E402
from runtime.service.server import production_server, uvicorn_config  # noqa: E402
from runtime.service.settings import ServiceSettings  # noqa: E402
from runtime.service.streaming import StepThreads  # noqa: E402
from runtime.session_store import (  # noqa: E402
    Session,
    SessionConflictError,
    check_expected_version,
    decode_messages,
    encode_messages,
    new_expiry,
)
from runtime.settings import RuntimeSettings  # noqa: E402
from runtime.tools import default_registry  # noqa: E402
from runtime.wiring import Dependencies  # noqa: E402

Scope = dict[str, Any]

# The parts of the agent's request that ``--off`` can switch off, and what is left without them.
PARTS = {
    "thread": "the step runs on the event loop instead of a worker thread (the best an asyncio "
    "model client and store could do, with this model and store)",
    "step": "no agent step at all: a fixed result (left: the HTTP layer, auth, body parsing)",
    "metrics": "no EMF usage line per model call",
    "logs": "no log lines (uvicorn's access line, 'agent step done')",
}
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    # Read the request body to the end, as a real endpoint must.
    while (await receive()).get("more_body"):
        pass
    body = b'{"hello":"world"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"17")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def hello() -> FastAPI:
    app = FastAPI()

    @app.post("/sessions/{session_id}/messages")
    async def message(session_id: str) -> dict[str, str]:
        return {"hello": "world", "session_id": session_id}

    return app


class InstantModel:
    """Answers every call at once with a short text: zero model latency."""

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        system: str | None = None,
    ) -> LLMResponse:
        return LLMResponse(
            message=Message(role="assistant", content="ok"),
            stop_reason="end_turn",
            usage=Usage(1, 1),
        )


class SerialisedStore:
    """Sessions kept as the stored form of the real stores: one JSON string per session.

    The work a step does with the Redis store, minus its round trips: ``save`` checks the version
    and encodes the conversation (``encode_messages``), ``get`` decodes it. The strings are not
    objects the garbage collector tracks, as a session in Redis is not in the process at all.
    """

    def __init__(self, *, ttl_seconds: int) -> None:
        self._ttl_seconds = ttl_seconds
        # session id -> (version, created_at, updated_at, expires_at, messages JSON)
        self._rows: dict[str, tuple[int, int, int, int, str]] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            row = self._rows.get(session_id)
        if row is None or row[3] <= int(time.time()):
            return None
        version, created_at, updated_at, expires_at, body = row
        return Session(
            session_id, decode_messages(body), version, created_at, updated_at, expires_at
        )

    def save(
        self, session_id: str, messages: Sequence[Message], *, expected_version: int
    ) -> Session:
        check_expected_version(expected_version)
        body = encode_messages(messages)
        now = int(time.time())
        with self._lock:
            row = self._rows.get(session_id)
            live = row if row is not None and row[3] > now else None
            if (live[0] if live is not None else 0) != expected_version:
                raise SessionConflictError(session_id, expected_version)
            created_at = live[1] if live is not None else now
            expires_at = new_expiry(now, self._ttl_seconds)
            self._rows[session_id] = (expected_version + 1, created_at, now, expires_at, body)
        return Session(
            session_id, tuple(messages), expected_version + 1, created_at, now, expires_at
        )

    def ping(self) -> bool:
        return True


def agent(off: frozenset[str] = frozenset()) -> FastAPI:
    """The service as ``python -m runtime.service serve`` builds it, with the stand-ins, minus
    the :data:`PARTS` in ``off``."""
    settings = RuntimeSettings.model_validate(
        {
            "SESSION_STORE": "redis",  # not used: the store below replaces it
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "SESSION_TTL_SECONDS": "3600",
            "LLM_PROVIDER": "openai-compatible",
            "LLM_MODEL_ID": "bench",
            "LLM_BASE_URL": "http://127.0.0.1:1/v1",
            "LLM_REQUEST_TIMEOUT_SECONDS": "5",
            "LLM_MAX_ATTEMPTS": "1",
            "AGENT_MAX_ITERATIONS": "2",
            "MAX_MESSAGE_CHARS": "8000",
            "MAX_BODY_BYTES": "65536",
            # On in every config (observability.usage_metrics): one EMF line per model call.
            "USAGE_METRICS_NAMESPACE": "bench",
            "USAGE_METRICS_SERVICE": "bench",
            "LLM_INPUT_PRICE_USD_PER_MILLION": "3",
            "LLM_OUTPUT_PRICE_USD_PER_MILLION": "15",
        }
    )
    model, metrics = InstantModel(), usage_metrics(settings)
    assert metrics is not None  # the namespace is set above
    # What runtime.wiring's factory returns.
    llm = model if "metrics" in off else MeteredLLM(model, metrics)
    deps = Dependencies(
        settings=settings,
        store=SerialisedStore(ttl_seconds=settings.session_ttl_seconds),
        llm_factory=lambda _budget: llm,
        tools=default_registry(),
    )
    # Production defaults and SERVICE_AUTH_TOKEN from the environment (bench/service.py sets
    # it), but the session limit: the memory measurement opens 1,000 WebSockets.
    service = ServiceSettings.from_env({**os.environ, "SERVICE_MAX_CONCURRENT_SESSIONS": "2000"})
    # The what-ifs replace module attributes in this process only (it serves nothing else).
    if "thread" in off:
        app_module.StepThreads = _OnTheLoop  # type: ignore[attr-defined]
    if "step" in off:
        app_module.run_step = _fixed_step  # type: ignore[attr-defined]
    return create_app(deps=deps, settings=service, ready_check=lambda: None)


class _OnTheLoop(StepThreads):
    """Runs each step at once, on the caller's thread (the event loop): ``--off thread``."""

    def submit(self, work: Callable[[], None], *, name: str = "agent-step") -> None:
        with self._idle:
            self._running += 1
        work()


def _fixed_step(*, session_id: str, **_: object) -> StepResult:
    return StepResult(session_id, "ok", 1, 1, "end_turn", Usage(1, 1), ())


def serve_agent(port: int, off: frozenset[str] = frozenset()) -> None:
    """The service as ``python -m runtime.service serve`` runs it, on 127.0.0.1:``port``."""
    app = agent(off)
    service = service_state(app).settings
    config = uvicorn_config(app, service, host="127.0.0.1", port=port)
    if "logs" in off:
        # After uvicorn_config, which configures the process's logging.
        logging.disable(logging.CRITICAL)
    production_server(config).run()


USAGE = f"usage: service_apps.py {{bare,hello,agent}} PORT [--off {','.join(PARTS)}] (agent only)"


def main(argv: Sequence[str]) -> int:
    off: frozenset[str] = frozenset()
    if len(argv) == 4 and argv[0] == "agent" and argv[2] == "--off":
        off = frozenset(argv[3].split(","))
        argv = argv[:2]
    if len(argv) != 2 or argv[0] not in ("bare", "hello", "agent") or not argv[1].isdigit():
        print(USAGE, file=sys.stderr)
        return 2
    unknown = sorted(off - PARTS.keys())
    if unknown:
        print(
            f"--off: no part {', '.join(unknown)}; the parts: {', '.join(PARTS)}", file=sys.stderr
        )
        return 2
    which, port = argv[0], int(argv[1])
    if which == "agent":
        serve_agent(port, off)
        return 0
    app: Any = bare if which == "bare" else hello()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        log_level="warning",
        access_log=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
