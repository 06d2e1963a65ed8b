"""Serving the app with uvicorn (uvloop, httptools, websockets), JSON logs, and a graceful drain.

What uvicorn 0.54 does on SIGTERM by itself (``uvicorn/server.py``): within 0.1 s its main loop
sees the signal and ``Server.shutdown`` closes the listening sockets (new connections are refused),
asks every connection to shut down, waits for the connections and their tasks up to
``timeout_graceful_shutdown``, cancels what is left, and runs the lifespan shutdown. Asking
finishes in-flight HTTP requests properly (an idle keep-alive connection is closed, a busy one is
closed after its response), but a WebSocket is closed at once with code 1012 (service restart)
behind the app's back: the app is not told, a step's remaining frames are lost, and the client
cannot tell a shutdown from a crash-restart. It then re-raises the signal, so the process dies by
SIGTERM (exit status 143, checked) instead of exiting 0.

What :class:`DrainingServer` adds, in this order:

1. stop accepting (as uvicorn would, but first);
2. begin the app's :class:`~runtime.service.lifecycle.Drain`: ``/readyz`` answers 503, new
   sessions get 503 / 1001, and model calls get only the time left;
3. ask every WebSocket to close with 1001 (going away) after the frame it is sending, and wait
   for those close frames (at most :data:`WEBSOCKET_CLOSE_SECONDS`);
4. uvicorn's own shutdown, with ``timeout_graceful_shutdown`` set to what is left of the drain
   (a request still running then is cancelled; the app answers it 503 ``draining``);
5. no re-raised signal: a drained process exits 0.

The caller (``python -m runtime.service serve``) then waits for step threads whose clients left,
until the drain time is up, so the whole exit fits in ``SERVICE_DRAIN_SECONDS``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI

from runtime.observability.correlation import CorrelationIdFilter
from runtime.service.app import service_state
from runtime.service.settings import WS_HARD_CAP_FACTOR, ServiceSettings

logger = logging.getLogger("runtime.service")

# The close frames only wait for the frame being sent; past this a client is not reading its
# socket at all, and uvicorn's shutdown closes it (1012) so it cannot eat the HTTP requests' time.
WEBSOCKET_CLOSE_SECONDS = 2.0
# Keep-alive must outlast the load balancer's idle timeout: if the target closes an idle
# connection first, the balancer may send the next request into the closing socket (a 502).
KEEP_ALIVE_MARGIN_SECONDS = 5


def uvicorn_config(
    app: FastAPI,
    settings: ServiceSettings,
    *,
    host: str | None = None,
    port: int | None = None,
    configure_logging: bool = True,
) -> uvicorn.Config:
    """uvicorn's configuration for the service; ``host`` / ``port`` override the settings'.

    ``configure_logging=False`` leaves the process's logging alone (tests, whose log capture a
    new root configuration would replace).
    """
    state = service_state(app)
    if configure_logging:
        lean_log_records()
    return uvicorn.Config(
        app,
        host=settings.host if host is None else host,
        port=settings.port if port is None else port,
        loop="uvloop",
        http="httptools",
        # The websockets library's sans-I/O implementation: uvicorn 0.54 deprecates the older
        # "websockets" one (a warning at import, and the name will point here in a later release)
        # and its "auto" already picks this one.
        ws="websockets-sansio",
        # Above the request limit on purpose: a frame up to the hard cap is read, and the app
        # answers it with an error frame; only beyond it does the protocol close with 1009.
        ws_max_size=WS_HARD_CAP_FACTOR * state.request_limit_bytes,
        ws_ping_interval=settings.ws_heartbeat_seconds,
        ws_ping_timeout=settings.ws_heartbeat_seconds,
        # Frames are small JSON; compression would cost a zlib context per connection.
        ws_per_message_deflate=False,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_keep_alive=math.ceil(settings.lb_idle_timeout_seconds) + KEEP_ALIVE_MARGIN_SECONDS,
        timeout_graceful_shutdown=math.floor(settings.drain_seconds),
        server_header=False,
        log_config=log_config(settings.log_level) if configure_logging else None,
    )


# How long a thread may hold the GIL before another waiting one gets it (Python's default:
# 5 ms). Steps run in worker threads while the event loop serves every other connection; with
# the default, a busy step thread makes the loop wait up to 5 ms each time it wants the GIL back.
# 1 ms cut the agent endpoint's p99 by about a fifth in bench/service.py (3 interleaved A/B runs:
# 35.4 -> 28.7 ms) with requests/s a little up (1063 -> 1128).
GIL_SWITCH_INTERVAL_SECONDS = 0.001


def production_server(config: uvicorn.Config) -> DrainingServer:
    """The server as ``python -m runtime.service serve`` runs it (the benchmark runs this too)."""
    return DrainingServer(config, freeze_heap=True, gil_switch_interval=GIL_SWITCH_INTERVAL_SECONDS)


class DrainingServer(uvicorn.Server):
    """uvicorn's server plus the WebSocket-aware drain described in the module docstring.

    ``freeze_heap`` (the ``serve`` command sets it): just before listening, the objects the
    process has built so far (modules, the app, settings, clients) are moved out of the garbage
    collector's sight (``gc.freeze``). They live as long as the process, yet every full
    collection walked all of them: with the service's imports a pause of 25 ms and more, once
    every few hundred requests, which was the service benchmark's p99. ``gil_switch_interval``:
    set for the process as the server starts (see ``GIL_SWITCH_INTERVAL_SECONDS``).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        freeze_heap: bool = False,
        gil_switch_interval: float | None = None,
    ) -> None:
        super().__init__(config)
        app = config.app
        if not isinstance(app, FastAPI):
            raise TypeError("DrainingServer serves an app built by runtime.service.app.create_app")
        self.state = service_state(app)
        self._freeze_heap = freeze_heap
        if gil_switch_interval is not None and not 0 < gil_switch_interval <= 0.1:
            raise ValueError(
                f"gil_switch_interval must be in (0, 0.1] seconds, got {gil_switch_interval}"
            )
        self._gil_switch_interval = gil_switch_interval

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self._gil_switch_interval is not None:
            sys.setswitchinterval(self._gil_switch_interval)
        if self._freeze_heap:
            # After uvicorn has loaded the app and its protocol modules, before the first
            # request; collected first so no garbage is frozen with the rest.
            gc.collect()
            gc.freeze()
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        drain = self.state.drain
        for server in getattr(self, "servers", []):
            server.close()
        drain.begin()
        logger.info(
            "draining",
            extra={"websockets": drain.open_sockets, "drain_seconds": drain.drain_seconds},
        )
        still_open = await drain.close_sockets(
            min(WEBSOCKET_CLOSE_SECONDS, drain.remaining_seconds())
        )
        if still_open:
            logger.warning("WebSockets did not close in time", extra={"count": still_open})
        # uvicorn's wait for in-flight requests gets whatever the drain has left. Its option is
        # typed int, but uvicorn only hands it to asyncio.wait_for, which takes float seconds,
        # and whole seconds would lose up to one of a short drain.
        self.config.timeout_graceful_shutdown = drain.remaining_seconds()  # type: ignore[assignment]
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's version, minus re-raising the signal after the shutdown: uvicorn does that so
        # a program embedding it sees the signal, but here the server is the program, and a
        # drained shutdown is a clean exit (status 0), not a death by SIGTERM (143).
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, original in originals.items():
                signal.signal(sig, original)


# LogRecord's own attributes; anything else on a record came from ``extra=`` and is logged.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__
) | {"message", "asctime", "color_message", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: CloudWatch Logs Insights and most collectors parse it as is."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # uvicorn's access line has the args (client, method, path, http version, status).
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, _, status = args
            entry.update(client=client, method=method, path=path, status=status)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def lean_log_records() -> None:
    """Log records without the caller's file, line and function (the logging HOWTO's
    "Optimization": ``logging._srcfile = None``).

    :class:`JsonFormatter` never prints them, and finding them walks the stack on every record:
    half the cost of a log line, and the service writes two per request (uvicorn's access line
    and "agent step done"). For the whole process, so it runs only where the process's logging
    is configured.
    """
    logging._srcfile = None


def log_config(level: str) -> dict[str, Any]:
    """stdlib logging for the whole process (uvicorn's loggers included), as JSON on stdout."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        # Each line carries the request's correlation id (X-Request-Id), uvicorn's included.
        "filters": {"correlation": {"()": CorrelationIdFilter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["correlation"],
                "stream": "ext://sys.stdout",
            }
        },
        # uvicorn's loggers have no handlers of their own: they propagate to the root's.
        "loggers": {
            "uvicorn": {"level": level},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"level": level},
            # httpx logs every model request at INFO; the step's own record says enough.
            "httpx": {"level": "WARNING"},
        },
        "root": {"handlers": ["stdout"], "level": level},
    }
