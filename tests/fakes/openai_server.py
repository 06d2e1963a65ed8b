"""A real HTTP server that plays an OpenAI-compatible ``/v1/chat/completions`` endpoint.

Tests talk to it over a socket, so the client's JSON, headers, timeouts and retries are exercised
for real. Usage::

    with FakeOpenAIServer([ErrorReply(429, retry_after=0.1), TextReply("hi")]) as server:
        client = OpenAICompatibleClient(base_url=server.base_url, model="m", api_key=lambda: "k")
        client.complete([Message(role="user", content="hello")])
        assert server.requests[1].body["messages"][-1]["content"] == "hello"
        assert server.requests[1].authorization == "Bearer k"

API:

* ``FakeOpenAIServer(replies=(), *, expected_api_key=None)`` -- a context manager; entering
  starts the server on 127.0.0.1 with a free port, leaving stops it.
* ``server.base_url`` -- ``http://127.0.0.1:PORT/v1`` (pass it as the client's base URL).
* ``server.add(*replies)`` -- append replies to the FIFO script; ``server.pending`` counts those
  left. Each ``POST /v1/chat/completions`` consumes one reply, even one the client stopped
  waiting for. When the script is empty the server answers 500 with a body saying so, so an
  under-scripted test fails loudly.
* ``server.requests`` -- every request received, in order, as :class:`RecordedRequest`
  (``method``, ``path``, ``headers`` with lower-case names, ``body`` parsed from JSON,
  ``authorization``, ``received_at`` from ``time.monotonic()``).
* ``server.expected_api_key`` -- when set (also assignable mid-test, e.g. to simulate a key
  rotation), a request whose ``Authorization`` is not ``Bearer <key>`` gets 401 and consumes
  no reply.

Replies: :class:`TextReply`, :class:`ToolCallReply` (one call), :class:`ToolCallsReply`
(parallel calls), :class:`ErrorReply` (any status, optional ``Retry-After``, any body -- also
usable for malformed 200s), :class:`DelayedReply` (sleep, then send the wrapped reply).
Other POST paths answer 404.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, TypeAlias

from tests.fakes.http_server import LocalHTTPServer

CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class TextReply:
    """An assistant text answer."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 10
    completion_tokens: int = 5


@dataclass(frozen=True)
class ToolCallReply:
    """An assistant turn calling one tool. A ``str`` ``arguments`` is sent verbatim (bad JSON)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    call_id: str = "call_1"
    text: str = ""
    prompt_tokens: int = 10
    completion_tokens: int = 5

    def wire_call(self) -> dict[str, Any]:
        arguments = (
            self.arguments if isinstance(self.arguments, str) else json.dumps(dict(self.arguments))
        )
        return {
            "id": self.call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": arguments},
        }


@dataclass(frozen=True)
class ToolCallsReply:
    """An assistant turn calling several tools at once; only the calls' own fields are used."""

    calls: tuple[ToolCallReply, ...]
    text: str = ""
    prompt_tokens: int = 10
    completion_tokens: int = 5


@dataclass(frozen=True)
class ErrorReply:
    """Any status with any body: a ``Mapping`` is sent as JSON, a ``str`` as-is."""

    status: int
    retry_after: float | str | None = None
    body: Mapping[str, Any] | str | None = None


@dataclass(frozen=True)
class DelayedReply:
    """Wait ``delay_seconds`` before sending ``reply`` (to trip the client's timeout)."""

    delay_seconds: float
    reply: Reply


Reply: TypeAlias = TextReply | ToolCallReply | ToolCallsReply | ErrorReply | DelayedReply


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


class FakeOpenAIServer(LocalHTTPServer):
    def __init__(
        self, replies: Iterable[Reply] = (), *, expected_api_key: str | None = None
    ) -> None:
        super().__init__()
        self.expected_api_key = expected_api_key
        self.requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque(replies)
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_class(self)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Wake delayed replies first, so shutting down does not wait for them.
        self._stopping.set()
        super().__exit__(exc_type, exc, tb)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._script.popleft() if self._script else None


def _handler_class(fake: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            fake._record(
                RecordedRequest(
                    method="POST",
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    received_at=time.monotonic(),
                )
            )
            if self.path != CHAT_PATH:
                self._send(404, {"error": {"message": f"no route for {self.path}"}})
                return
            expected = fake.expected_api_key
            if expected is not None and self.headers.get("Authorization") != f"Bearer {expected}":
                self._send(401, {"error": {"message": "invalid api key", "type": "auth"}})
                return
            reply = fake._next_reply()
            if reply is None:
                self._send(
                    500,
                    {
                        "error": {
                            "message": "FakeOpenAIServer: no scripted reply left for this "
                            f"request (#{len(fake.requests)}); script more replies"
                        }
                    },
                )
                return
            self._reply(reply)

        def _reply(self, reply: Reply) -> None:
            if isinstance(reply, DelayedReply):
                # Woken early at shutdown so a test's exit is not held up by a long delay.
                if fake._stopping.wait(reply.delay_seconds):
                    return
                self._reply(reply.reply)
            elif isinstance(reply, ErrorReply):
                headers = {}
                if reply.retry_after is not None:
                    headers["Retry-After"] = str(reply.retry_after)
                body = reply.body
                if body is None:
                    body = {"error": {"message": f"scripted error {reply.status}"}}
                self._send(reply.status, body, headers)
            else:
                self._send(200, _completion(reply))

        def _send(
            self,
            status: int,
            body: Mapping[str, Any] | str,
            headers: Mapping[str, str] | None = None,
        ) -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            try:
                self.send_response(status)
                content_type = "text/plain" if isinstance(body, str) else "application/json"
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client timed out and hung up: exactly what a timeout test provokes.
                pass

        def log_message(self, format: str, *args: Any) -> None:
            # Silence the default per-request stderr line; tests inspect ``requests`` instead.
            pass

    return Handler


def _completion(reply: TextReply | ToolCallReply | ToolCallsReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    if isinstance(reply, TextReply):
        message["content"] = reply.text
        finish_reason = reply.finish_reason
    else:
        calls = reply.calls if isinstance(reply, ToolCallsReply) else (reply,)
        message["content"] = reply.text or None
        message["tool_calls"] = [call.wire_call() for call in calls]
        finish_reason = "tool_calls"
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }
