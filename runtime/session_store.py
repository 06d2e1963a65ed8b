"""Session state: the interface every store implements, and the rules they share.

A session is the conversation so far plus a ``version`` used for optimistic locking: a save names
the version it started from and fails with :class:`SessionConflictError` when another writer got
there first. ``expires_at`` is epoch seconds; stores treat a session past it as absent, because
DynamoDB's TTL sweeper deletes expired items up to ~48 hours late.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from runtime.llm.types import Message

Clock = Callable[[], float]


@dataclass(frozen=True)
class Session:
    session_id: str
    messages: tuple[Message, ...]
    version: int
    created_at: int
    updated_at: int
    expires_at: int

    def is_expired(self, now: float) -> bool:
        return self.expires_at <= int(now)


class SessionConflictError(Exception):
    """Another step saved this session since it was read; the caller should re-read and retry."""

    def __init__(self, session_id: str, expected_version: int) -> None:
        super().__init__(
            f"session {session_id!r} changed since version {expected_version}; re-read it and retry"
        )
        self.session_id = session_id
        self.expected_version = expected_version


class SessionTooLargeError(Exception):
    """The session would exceed the store's item size limit; it cannot take another turn."""

    def __init__(self, session_id: str, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"session {session_id!r} would be {size_bytes} bytes, over the {limit_bytes}-byte "
            "item limit; start a new session"
        )
        self.session_id = session_id
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class SessionStoreUnavailableError(Exception):
    """The store cannot be reached right now (network, failover, refused credentials).

    Part of the contract so adapters handle every store alike: the HTTP adapters answer 503
    (retry later), the task worker retries the task later. The message says what
    failed and never includes a credential.
    """


class SessionStore(Protocol):
    """Get and save sessions with optimistic locking and a TTL.

    ``save`` with ``expected_version=0`` creates a session (and may replace an expired one);
    otherwise it succeeds only when the stored version still equals ``expected_version``.
    It returns the saved session, whose ``version`` is ``expected_version + 1``.
    Either method may raise :class:`SessionStoreUnavailableError` when the backend is down.
    """

    def get(self, session_id: str) -> Session | None: ...

    def save(
        self, session_id: str, messages: Sequence[Message], *, expected_version: int
    ) -> Session: ...


def check_expected_version(expected_version: int) -> None:
    if expected_version < 0:
        raise ValueError("expected_version must be >= 0")


def encode_messages(messages: Sequence[Message]) -> str:
    """The conversation as one compact JSON string: what every store writes, byte for byte.

    One string rather than native attributes/fields: tool arguments are arbitrary JSON, and a
    string round-trips exactly and has a size that is just its UTF-8 length.
    """
    return json.dumps(
        [message.to_dict() for message in messages], ensure_ascii=False, separators=(",", ":")
    )


def decode_messages(body: str | bytes) -> tuple[Message, ...]:
    return tuple(Message.from_dict(entry) for entry in json.loads(body))


def new_expiry(now: float, ttl_seconds: int) -> int:
    """Epoch seconds at which a session saved ``now`` expires (DynamoDB TTL wants an integer)."""
    return int(now) + ttl_seconds


def wall_clock() -> float:
    return time.time()
