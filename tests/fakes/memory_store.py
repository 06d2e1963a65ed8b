"""An in-memory :class:`~runtime.session_store.SessionStore` with the real stores' contract.

The same rules as the DynamoDB and Redis stores, so tests of the adapters (the container service)
need neither: optimistic locking on ``version`` (``expected_version=0`` creates, or replaces an
expired session; otherwise the stored version must still match), a TTL measured with an injected
clock (an expired session reads as absent), an optional size limit, and a lock so steps in worker
threads can race on it for real. ``outage`` makes every call raise, for readiness tests.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from runtime.llm.types import Message
from runtime.session_store import (
    Clock,
    Session,
    SessionConflictError,
    SessionTooLargeError,
    check_expected_version,
    encode_messages,
    new_expiry,
    wall_clock,
)


class InMemorySessionStore:
    def __init__(
        self,
        *,
        ttl_seconds: int = 3600,
        clock: Clock = wall_clock,
        max_session_bytes: int | None = None,
    ) -> None:
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be positive")
        self.ttl_seconds = ttl_seconds
        self.max_session_bytes = max_session_bytes
        # Set to an exception to simulate the store being unreachable: every call raises it.
        self.outage: Exception | None = None
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            self._check_available()
            session = self._sessions.get(session_id)
            if session is None or session.is_expired(self._clock()):
                return None
            return session

    def save(
        self, session_id: str, messages: Sequence[Message], *, expected_version: int
    ) -> Session:
        check_expected_version(expected_version)
        body = encode_messages(messages)
        size = len(body.encode())
        if self.max_session_bytes is not None and size > self.max_session_bytes:
            raise SessionTooLargeError(session_id, size, self.max_session_bytes)
        with self._lock:
            self._check_available()
            now = int(self._clock())
            current = self._sessions.get(session_id)
            live = current if current is not None and not current.is_expired(now) else None
            stored_version = live.version if live is not None else 0
            if stored_version != expected_version:
                raise SessionConflictError(session_id, expected_version)
            saved = Session(
                session_id=session_id,
                messages=tuple(messages),
                version=expected_version + 1,
                created_at=live.created_at if live is not None else now,
                updated_at=now,
                expires_at=new_expiry(now, self.ttl_seconds),
            )
            self._sessions[session_id] = saved
            return saved

    def ping(self) -> bool:
        with self._lock:
            self._check_available()
            return True

    def _check_available(self) -> None:
        if self.outage is not None:
            raise self.outage
