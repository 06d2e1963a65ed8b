"""Load and shutdown state shared by the app and the server: the session limit and the drain.

:class:`SessionLimiter` is the graceful-degradation rule: one process takes at most N sessions
(in-flight HTTP steps plus open WebSockets) and refuses the next one at once, with a hint when to
retry, instead of queueing work until every client times out. A session's slot is held until its
step's thread has finished, not merely until the client went away, so the count is the real work.

:class:`Drain` is the shutdown: the server starts it when it stops accepting connections
(:mod:`runtime.service.server`); from then on new sessions are refused, ``/readyz`` answers 503,
model calls get only the time left, and every WebSocket is asked to close with 1001.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from runtime.session_store import Clock


class Lease:
    """One slot of a :class:`SessionLimiter`; releasing twice is harmless (any thread)."""

    def __init__(self, limiter: SessionLimiter) -> None:
        self._limiter = limiter
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._limiter._release()


class SessionLimiter:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._in_use = 0
        # Step threads release slots too, so the count is guarded by a lock, not the event loop.
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._in_use

    def try_acquire(self) -> Lease | None:
        """A slot, or None at once when all are taken: callers refuse rather than wait."""
        with self._lock:
            if self._in_use >= self.limit:
                return None
            self._in_use += 1
        return Lease(self)

    def _release(self) -> None:
        with self._lock:
            self._in_use -= 1


class Drain:
    """The shutdown of one process. Created with the app; begun by the server, on the loop."""

    def __init__(self, drain_seconds: float, *, clock: Clock = time.monotonic) -> None:
        self.drain_seconds = drain_seconds
        self._clock = clock
        self._deadline: float | None = None
        self._started = asyncio.Event()
        # One event per open WebSocket, set once its close frame is out (or the peer is gone).
        self._sockets: set[asyncio.Event] = set()

    @property
    def draining(self) -> bool:
        return self._deadline is not None

    def begin(self) -> None:
        """Start draining (idempotent). Must run on the event loop: it wakes the WebSockets."""
        if self._deadline is None:
            self._deadline = self._clock() + self.drain_seconds
            self._started.set()

    def remaining_seconds(self) -> float:
        """Time left to finish work: infinite until the drain begins. Safe from any thread."""
        deadline = self._deadline
        if deadline is None:
            return math.inf
        return max(0.0, deadline - self._clock())

    async def wait_started(self) -> None:
        await self._started.wait()

    @contextmanager
    def track_socket(self) -> Iterator[asyncio.Event]:
        """Register an open WebSocket; the handler sets the event once its close frame is sent."""
        closed = asyncio.Event()
        self._sockets.add(closed)
        try:
            yield closed
        finally:
            closed.set()
            self._sockets.discard(closed)

    @property
    def open_sockets(self) -> int:
        return sum(1 for closed in self._sockets if not closed.is_set())

    async def close_sockets(self, grace_seconds: float) -> int:
        """Begin the drain; wait up to ``grace_seconds`` for every WebSocket to send its close.

        Returns how many had not by then; the server closes those itself (code 1012).
        """
        self.begin()
        waiters = [
            asyncio.ensure_future(closed.wait()) for closed in self._sockets if not closed.is_set()
        ]
        if waiters:
            try:
                await asyncio.wait(waiters, timeout=max(0.0, grace_seconds))
            finally:
                for waiter in waiters:
                    waiter.cancel()
        return self.open_sockets
