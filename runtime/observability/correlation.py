"""A correlation id per request or task, on every log line written while it is handled.

The Lambda handlers get theirs from Powertools (``correlation_id_path``). The container service
takes the caller's ``X-Request-Id`` (or makes one) and echoes it; the queue worker uses the task
id. Both set it here, in a context variable, and :class:`CorrelationIdFilter` copies it onto each
log record, so the JSON formatters print it without every call site passing it.
"""

from __future__ import annotations

import logging
import random
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for annotations: the Lambda handlers import this module without Starlette.
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-Id"
# The field name on log lines and usage-metric lines (Powertools uses the same one).
LOG_FIELD = "correlation_id"
# What a caller's id may look like: it lands in logs, so no spaces, quotes or control characters
# (log injection), and no more than a UUID-with-prefix needs.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

_current: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def current_correlation_id() -> str | None:
    return _current.get()


def accept_request_id(value: str | None) -> str:
    """The caller's id when it is a safe token; otherwise a new random one."""
    if value is not None and _VALID_ID.fullmatch(value):
        return value
    return new_request_id()


def new_request_id() -> str:
    """A random version-4 UUID in hex, as ``uuid.uuid4().hex`` but from :mod:`random`.

    A correlation id must be unique, not secret, and ``uuid4`` reads ``os.urandom``: a system call
    that lets go of the GIL on the event loop for every request, which a step's worker thread
    then holds for its whole step (the service benchmark's profile: 56 us a call under load).
    Python reseeds :mod:`random` from the OS at start and in a forked child.
    """
    return uuid.UUID(int=random.getrandbits(128), version=4).hex


@contextmanager
def correlation(correlation_id: str | None) -> Iterator[None]:
    """Log lines written inside the block (in this context) carry ``correlation_id``."""
    token = _current.set(correlation_id)
    try:
        yield
    finally:
        _current.reset(token)


class CorrelationIdFilter(logging.Filter):
    """Adds ``correlation_id`` to every record passing the handler, unless the call set one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, LOG_FIELD):
            correlation_id = _current.get()
            if correlation_id is not None:
                setattr(record, LOG_FIELD, correlation_id)
        return True


class RequestIdMiddleware:
    """ASGI middleware: each HTTP request and WebSocket runs with a correlation id: the caller's
    ``X-Request-Id`` when it is a safe token, else a new one. HTTP responses echo it in
    ``X-Request-Id``, so a client can quote it and an operator find every line of the request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return
        header = REQUEST_ID_HEADER.lower().encode()
        given = next(
            (value for name, value in scope.get("headers") or () if name.lower() == header), None
        )
        request_id = accept_request_id(given.decode("latin-1") if given is not None else None)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers") or ()
                    if name.lower() != header
                ]
                headers.append((header, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with correlation(request_id):
            await self._app(scope, receive, send_with_id)
