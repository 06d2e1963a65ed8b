"""A real webhook receiver on 127.0.0.1, the way a customer would write one with the stdlib.

In verify mode (``secrets`` given) every POST goes through :func:`signing.verify` with the
receiver's own :class:`ReplayGuard` and the 5-minute default tolerance: 204 when valid, 401 with
the reason as the body otherwise. With ``reply`` set, the receiver skips verification and sends
that scripted answer instead, which is how the delivery tests get 410s, 500s, redirects, slow
answers and large bodies from a real socket. ``reply`` may also be a function of the request
returning a :class:`Reply`, or ``None`` to verify that request as in verify mode (so a test can
fail the first attempts and accept the next).

Usage::

    with WebhookReceiver(secrets=[secret]) as receiver:
        deliver(receiver.url, body, signed_headers(...), client=client, ...)
        assert receiver.accepted == ["msg_1"]

``requests`` records every request (path, lower-cased headers, body) in arrival order.
Leaving the context sets ``release``, which ends any reply still waiting, then stops the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from runtime.webhooks import signing


@dataclass(frozen=True)
class Reply:
    """A scripted answer. ``delay`` waits before the status line; ``stall_after`` sends that
    many body bytes, then waits (until the receiver closes) before sending the rest."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stall_after: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


# Long enough to outlast any client timeout in these tests, short enough that a forgotten
# handler thread cannot hang the run.
_MAX_WAIT_SECONDS = 5.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that timed out closes its socket; the late write then fails here. That is
        # the scenario under test, not an error worth a traceback.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = RecordedRequest(self.path, headers, body)
        receiver.requests.append(request)
        reply = receiver.reply(request) if callable(receiver.reply) else receiver.reply
        if reply is not None:
            self._send_scripted(reply, receiver.release)
            return
        try:
            msg_id = signing.verify(
                dict(self.headers.items()),
                body,
                receiver.secrets,
                now=receiver.now(),
                replay_guard=receiver.replay_guard,
            )
        except signing.WebhookVerificationError as exc:
            receiver.rejected.append(str(exc))
            self._send(401, str(exc).encode())
            return
        receiver.accepted.append(msg_id)
        self._send(204, b"")

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_scripted(self, reply: Reply, release: threading.Event) -> None:
        if reply.delay:
            release.wait(min(reply.delay, _MAX_WAIT_SECONDS))
        if reply.stall_after is None:
            self._send(reply.status, reply.body, reply.headers)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body[: reply.stall_after])
        self.wfile.flush()
        release.wait(_MAX_WAIT_SECONDS)
        self.wfile.write(reply.body[reply.stall_after :])


class WebhookReceiver:
    def __init__(
        self,
        secrets: Sequence[str] = (),
        *,
        reply: Reply | Callable[[RecordedRequest], Reply | None] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not secrets and reply is None:
            raise ValueError("a receiver needs secrets (verify mode) or a scripted reply")
        self.secrets = list(secrets)
        self.reply = reply
        self.now = now
        self.replay_guard = signing.ReplayGuard()
        self.accepted: list[str] = []
        self.rejected: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.release = threading.Event()
        # Loopback only: the receiver must not be reachable from outside the test machine.
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        # A short poll interval makes shutdown() return quickly; the default 0.5 s would add
        # half a second to every test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
