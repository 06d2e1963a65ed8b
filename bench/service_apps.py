"""The three servers the service benchmark compares, each run the same way by uvicorn.

``python bench/service_apps.py {bare,hello,agent} PORT`` serves one of them on 127.0.0.1 with
uvloop and httptools, like the container does:

* ``bare``: a raw ASGI app answering a fixed JSON body, the floor;
* ``hello``: FastAPI answering ``{"hello": "world"}`` from a route, what the framework costs;
* ``agent``: the real service (``runtime.service.app.create_app``) with an in-memory session
  store and a model that answers at once, so what is measured is our code, not a model.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from runtime.llm.types import LLMResponse, Message, ToolSpec, Usage  # noqa: E402
from runtime.service.app import create_app  # noqa: E402
from runtime.service.settings import ServiceSettings  # noqa: E402
from runtime.settings import RuntimeSettings  # noqa: E402
from runtime.tools import default_registry  # noqa: E402
from runtime.wiring import Dependencies  # noqa: E402
from tests.fakes.memory_store import InMemorySessionStore  # noqa: E402

Scope = dict[str, Any]
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


def agent() -> FastAPI:
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
        }
    )
    model = InstantModel()
    deps = Dependencies(
        settings=settings,
        store=InMemorySessionStore(ttl_seconds=3600),
        llm_factory=lambda _budget: model,
        tools=default_registry(),
    )
    service = ServiceSettings.model_validate(
        {
            "SERVICE_MAX_CONCURRENT_SESSIONS": "5000",
            "SERVICE_LOG_LEVEL": "WARNING",
        }
    )
    return create_app(deps=deps, settings=service, ready_check=lambda: None)


def main(argv: Sequence[str]) -> int:
    which, port = argv[0], int(argv[1])
    app: Any = {"bare": bare, "hello": hello, "agent": agent}[which]
    if which != "bare":
        app = app()
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
        # Protocol pings off: idle connections must stay idle for the memory measurement.
        ws_ping_interval=None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
