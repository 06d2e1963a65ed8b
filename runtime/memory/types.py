"""What a memory is, what a store promises, and how it fails; free of any database driver."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

# pgvector indexes at most 2,000 dimensions of the ``vector`` type.
MAX_INDEXED_DIMENSIONS: Final = 2_000


@dataclass(frozen=True)
class Memory:
    id: uuid.UUID
    scope: str
    content: str
    created_at: datetime
    expires_at: datetime
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredMemory:
    """A search hit; ``score`` is the cosine similarity to the query, 1.0 for the same direction."""

    memory: Memory
    score: float


class MemoryStoreUnavailableError(Exception):
    """The memory database cannot be reached right now (network, paused cluster, credentials).

    The counterpart of :class:`~runtime.session_store.SessionStoreUnavailableError`: a tool call
    that meets it fails with an error string and the step goes on without memory. The message
    says what failed and never includes a credential.
    """


class MemorySchemaError(Exception):
    """The table exists in a shape this store cannot use (e.g. another embedding dimension)."""


class MemoryStore(Protocol):
    """Store memories per scope and find the ones nearest in meaning to a query.

    Every memory expires a fixed time after it was written; expired ones are never returned.
    Either method may raise :class:`MemoryStoreUnavailableError` when the backend is down, and
    :class:`ValueError` for content or arguments out of bounds.
    """

    @property
    def max_content_chars(self) -> int: ...

    def add(
        self, scope: str, content: str, metadata: Mapping[str, Any] | None = None
    ) -> Memory: ...

    def search(
        self, scope: str, query: str, k: int = 5, min_score: float | None = None
    ) -> list[ScoredMemory]: ...


def check_database_url(url: str, *, user: str | None = None) -> None:
    """Refuse a URL that is not ``postgresql://[user@]host[:port]/dbname``, or holds a password.

    The user may be in the URL or in ``user`` (``MEMORY_DATABASE_USER``), not both, so there is
    one place to look when the database refuses it.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ValueError(
            "MEMORY_DATABASE_URL must look like postgresql://host:port/dbname"
            " (options such as ?sslmode=verify-full may follow)"
        )
    if parts.password is not None:
        raise ValueError(
            "MEMORY_DATABASE_URL carries a password; put it in MEMORY_DATABASE_PASSWORD instead"
        )
    if parts.path.strip("/") == "":
        raise ValueError("MEMORY_DATABASE_URL must name the database: postgresql://.../dbname")
    if parts.username and user:
        raise ValueError(
            "MEMORY_DATABASE_URL names a user and MEMORY_DATABASE_USER is set too; keep one"
        )
    if not parts.username and not user:
        raise ValueError(
            "no database user: set MEMORY_DATABASE_USER (or name it in MEMORY_DATABASE_URL as "
            "postgresql://user@host:port/dbname)"
        )
