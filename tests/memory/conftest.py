"""Fixtures for the memory tests: one real PostgreSQL + pgvector per test session, a table per test.

The server (``tests/fakes/postgres_server.py``) starts once, in well under a second; each test
gets its own table, dropped afterwards, so tests never see each other's rows or schemas.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from psycopg import sql

from runtime.memory.embedders import Embedder, HashingEmbedder
from runtime.memory.store import (
    DEFAULT_PURGE_INTERVAL_SECONDS,
    MAX_CONTENT_CHARS,
    PgVectorMemoryStore,
)
from tests.fakes.clock import FakeClock
from tests.fakes.postgres_server import PostgresServer

TTL_SECONDS = 3600
DIMENSIONS = 64

StoreFactory = Callable[..., PgVectorMemoryStore]


@pytest.fixture
def table_name(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"mem_{uuid.uuid4().hex[:12]}"
    yield name
    with postgres_server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def make_store(postgres_server: PostgresServer, table_name: str, clock: FakeClock) -> StoreFactory:
    """Stores on the per-test table (or ``table``), on the test clock."""

    def make(
        *,
        embedder: Embedder | None = None,
        table: str | None = None,
        max_content_chars: int = MAX_CONTENT_CHARS,
        max_connections: int = 10,
        purge_interval_seconds: float = DEFAULT_PURGE_INTERVAL_SECONDS,
    ) -> PgVectorMemoryStore:
        return PgVectorMemoryStore.from_url(
            postgres_server.url,
            user=postgres_server.user,
            password=postgres_server.password,
            embedder=embedder or HashingEmbedder(DIMENSIONS),
            ttl_seconds=TTL_SECONDS,
            clock=clock,
            table=table or table_name,
            max_content_chars=max_content_chars,
            max_connections=max_connections,
            connect_timeout_seconds=2,
            purge_interval_seconds=purge_interval_seconds,
        )

    return make


@pytest.fixture
def store(make_store: StoreFactory) -> PgVectorMemoryStore:
    memory_store = make_store()
    memory_store.ensure_schema()
    return memory_store
