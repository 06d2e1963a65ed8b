"""Fake HTTP servers on 127.0.0.1: real ThreadingHTTPServers on a free port, in daemon threads.

The fakes of the OpenAI-compatible chat API and of OpenAI's Admin API share
:class:`LocalHTTPServer`'s lifecycle; each gives its request handler class and records what it
saw. Tests with a server of their own build it on :class:`LoopbackServer` and
:class:`QuietHandler` and run it with :func:`serving`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server on a free port of 127.0.0.1."""

    # Handler threads may still be sleeping in a delayed reply at exit; don't wait for them.
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive, as real servers), and no line on stderr per request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(*servers: ThreadingHTTPServer) -> Iterator[None]:
    """Each server in a daemon thread until the block ends; then shut down and closed."""
    for server in servers:
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


class LocalHTTPServer:
    """Use as a context manager; ``base_url`` is ``http://127.0.0.1:<port>/v1`` while it runs."""

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> Self:
        server = LoopbackServer(self.handler_class())
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
