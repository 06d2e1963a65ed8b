"""Memories in PostgreSQL with pgvector (Aurora Serverless v2 in AWS), searched by cosine distance.

One table (default ``agent_memories``)::

    id          uuid (version 4, made by the store)
    scope       text: whose memory it is ("session:<id>", or one scope for the deployment)
    content     text, at most ``max_content_chars``
    metadata    jsonb
    embedding   vector(N), N the embedder's dimensions
    created_at  timestamptz, from the injected clock
    expires_at  timestamptz, created_at + ttl_seconds (the sessions' SESSION_TTL_SECONDS)

with an HNSW index (``vector_cosine_ops``) for nearest-neighbour search and a btree on
``(scope, expires_at)`` for the scope filter, ``forget`` and ``delete_expired``.

Expiry is checked against the injected clock in every query, as the session stores do, so an
expired memory is never returned even before :meth:`PgVectorMemoryStore.delete_expired` removes
it; a write runs that at most once per ``purge_interval_seconds`` (an hour) per process, so the
table stays small without a scheduler.

Connections: one per operation, no pool kept open. Aurora Serverless v2 only scales to 0 ACU
(auto-pause) while no connection is open, so idle pooled connections would keep it billing; a
connect in the VPC costs milliseconds against seconds per model call; and a database that is
down fails the call at once with the driver's reason, where a pool waits out its timeout and
reports only that it waited. Concurrency is bounded (``max_connections``) so a burst cannot
exhaust the cluster's connection slots. For high rates put RDS Proxy in front.

Search with a scope filter: pgvector's HNSW scan (0.6/0.7) filters *after* the index returns its
``hnsw.ef_search`` nearest rows, so a small scope in a big table could come back short. The
planner picks the ``(scope, expires_at)`` btree and an exact sort when the scope is selective
(per-session memories), and the HNSW index when it is not (one deployment-wide scope), where
post-filtering loses nothing; the tests check the selective case on a table of many scopes.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from runtime.memory.credentials import PasswordSource, StaticPassword
from runtime.memory.embedders import Embedder, check_vectors
from runtime.memory.types import (
    MAX_INDEXED_DIMENSIONS,
    Memory,
    MemorySchemaError,
    MemoryStoreUnavailableError,
    ScoredMemory,
    check_database_url,
)
from runtime.session_store import Clock, wall_clock

DEFAULT_TABLE: Final = "agent_memories"
# How often a process deletes expired memories, on its next write (see ``_purge_if_due``).
DEFAULT_PURGE_INTERVAL_SECONDS: Final = 3600.0
# A memory is a fact, not a document; the bound also keeps every text well inside what the
# embedding models take in one request (Titan V2: 50,000 characters).
MAX_CONTENT_CHARS: Final = 2_000
MAX_METADATA_BYTES: Final = 4_096
MAX_SEARCH_K: Final = 50

_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
# ensure_schema takes this transaction-level advisory lock so that processes starting together
# take turns: CREATE ... IF NOT EXISTS is not safe against a concurrent create of the same name
# (the loser fails on a unique index of the catalog).
_SCHEMA_LOCK_KEY: Final = 0x6D656D6F7279  # "memory"

Connect = Callable[[], psycopg.Connection[Any]]
T = TypeVar("T")


class PgVectorMemoryStore:
    """:class:`~runtime.memory.types.MemoryStore` on PostgreSQL + pgvector. Thread-safe.

    ``connect`` opens a new connection (``from_url`` builds it from a URL and a password).
    The schema is created on first use (:meth:`ensure_schema`), not at construction, so building
    the store at a cold start neither connects nor wakes a paused cluster.
    """

    def __init__(
        self,
        connect: Connect,
        *,
        embedder: Embedder,
        ttl_seconds: int,
        clock: Clock = wall_clock,
        table: str = DEFAULT_TABLE,
        max_content_chars: int = MAX_CONTENT_CHARS,
        max_connections: int = 10,
        connection_wait_seconds: float = 10.0,
        purge_interval_seconds: float = DEFAULT_PURGE_INTERVAL_SECONDS,
    ) -> None:
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be positive")
        if max_content_chars < 1:
            raise ValueError("max_content_chars must be positive")
        if max_connections < 1:
            raise ValueError("max_connections must be positive")
        if not _TABLE_NAME.match(table):
            raise ValueError(
                f"table name {table!r} must be lower-case letters, digits and underscores, "
                "starting with a letter or underscore, at most 41 characters"
            )
        if not 1 <= embedder.dimensions <= MAX_INDEXED_DIMENSIONS:
            raise ValueError(
                f"embeddings of {embedder.dimensions} dimensions cannot be indexed: pgvector's "
                f"HNSW index takes 1 to {MAX_INDEXED_DIMENSIONS}"
            )
        self._connect = connect
        self._embedder = embedder
        self._ttl_seconds = ttl_seconds
        self._clock = clock
        self._table = table
        self._max_content_chars = max_content_chars
        self._slots = threading.BoundedSemaphore(max_connections)
        self._max_connections = max_connections
        self._connection_wait = connection_wait_seconds
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        self._purge_interval = purge_interval_seconds
        self._purge_lock = threading.Lock()
        self._last_purge: float | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        password: str | None = None,
        credentials: PasswordSource | None = None,
        embedder: Embedder,
        user: str | None = None,
        ttl_seconds: int,
        clock: Clock = wall_clock,
        table: str = DEFAULT_TABLE,
        max_content_chars: int = MAX_CONTENT_CHARS,
        max_connections: int = 10,
        connect_timeout_seconds: int = 20,
        statement_timeout_seconds: float = 5.0,
        purge_interval_seconds: float = DEFAULT_PURGE_INTERVAL_SECONDS,
    ) -> PgVectorMemoryStore:
        """A store on ``postgresql://[user@]host:port/dbname[?sslmode=...]``, password separate.

        The password comes from ``password`` (``MEMORY_DATABASE_PASSWORD``) or ``credentials``
        (e.g. :class:`~runtime.memory.credentials.SecretPassword`, ``MEMORY_DATABASE_SECRET_ARN``),
        never the URL, which is configuration that ends up in logs and consoles; the user from
        the URL or ``user`` (``MEMORY_DATABASE_USER``). When PostgreSQL refuses the password
        (SQLSTATE 28P01 or 28000), each password ``credentials.after_refusal`` offers gets one
        attempt, so a rotated secret is followed without a restart (see that module). The connect
        timeout is generous because Aurora Serverless v2 takes about 15 s to resume from 0 ACU;
        statements themselves are short and get ``statement_timeout_seconds``.
        """
        check_database_url(url, user=user)
        if password is not None and credentials is not None:
            raise ValueError("pass password or credentials, not both")
        source = credentials if credentials is not None else StaticPassword(password)
        if connect_timeout_seconds < 2:
            # libpq silently raises anything smaller to 2 seconds.
            raise ValueError("connect_timeout_seconds must be at least 2")
        statement_timeout_ms = int(statement_timeout_seconds * 1000)

        def connect_with(secret: str | None) -> psycopg.Connection[Any]:
            return psycopg.connect(
                url,
                user=user,
                password=secret,
                connect_timeout=connect_timeout_seconds,
                options=f"-c statement_timeout={statement_timeout_ms}",
                application_name="agent-memory",
            )

        def connect() -> psycopg.Connection[Any]:
            current = source.password()
            try:
                return connect_with(current)
            except psycopg.OperationalError as refused:
                if not _refused_credentials(refused):
                    raise
                for candidate in source.after_refusal(current):
                    try:
                        conn = connect_with(candidate)
                    except psycopg.OperationalError as again:
                        if not _refused_credentials(again):
                            raise
                        continue
                    source.accept(candidate)
                    return conn
                raise

        return cls(
            connect,
            embedder=embedder,
            ttl_seconds=ttl_seconds,
            clock=clock,
            table=table,
            max_content_chars=max_content_chars,
            max_connections=max_connections,
            connection_wait_seconds=float(connect_timeout_seconds),
            purge_interval_seconds=purge_interval_seconds,
        )

    @property
    def max_content_chars(self) -> int:
        return self._max_content_chars

    @property
    def ttl_seconds(self) -> int:
        return self._ttl_seconds

    @property
    def table(self) -> str:
        return self._table

    # --- schema -----------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the extension, table and indexes if missing; idempotent and safe to race.

        Raises :class:`MemorySchemaError` when the table exists with another embedding dimension:
        vectors of different sizes cannot be compared, so the store refuses rather than fail on
        every insert. Moving to another embedder means a new table (or re-embedding every row).
        """
        dimensions = self._embedder.dimensions
        table = sql.Identifier(self._table)
        statements = [
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {table} ("
                " id uuid PRIMARY KEY,"
                " scope text NOT NULL,"
                " content text NOT NULL,"
                " metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,"
                " embedding vector({dimensions}) NOT NULL,"
                " created_at timestamptz NOT NULL,"
                " expires_at timestamptz NOT NULL)"
            ).format(table=table, dimensions=sql.Literal(dimensions)),
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {index} ON {table} "
                "USING hnsw (embedding vector_cosine_ops)"
            ).format(index=sql.Identifier(f"{self._table}_embedding_hnsw"), table=table),
            sql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {table} (scope, expires_at)").format(
                index=sql.Identifier(f"{self._table}_scope_expires"), table=table
            ),
        ]

        def work(conn: psycopg.Connection[Any]) -> None:
            # Longer than the per-statement limit: waiting for another starter's turn, or
            # indexing a table that already holds rows, may take a while, and happens once.
            conn.execute("SET LOCAL statement_timeout = '60s'")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.errors.InsufficientPrivilege as exc:
                raise MemorySchemaError(
                    "the database user may not create the pgvector extension; run CREATE "
                    "EXTENSION vector once as an administrator (Aurora: the master user)"
                ) from exc
            existing = self._stored_dimensions(conn)
            if existing is not None and existing != dimensions:
                raise MemorySchemaError(
                    f"table {self._table!r} stores {existing}-dimensional embeddings but the "
                    f"embedder makes {dimensions}-dimensional ones; use the embedder and "
                    "MEMORY_EMBEDDING_DIMENSIONS the table was made with, or another table"
                )
            for statement in statements:
                conn.execute(statement)

        self._run("create the memory table", work)
        self._schema_ready = True

    def _stored_dimensions(self, conn: psycopg.Connection[Any]) -> int | None:
        # A vector column's type modifier is its dimension count; no row is needed to read it.
        row = conn.execute(
            "SELECT a.atttypmod FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attname = 'embedding' AND NOT a.attisdropped",
            (sql.Identifier(self._table).as_string(conn),),
        ).fetchone()
        return None if row is None else int(row[0])

    def _ready(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                self.ensure_schema()

    # --- memories ---------------------------------------------------------------------------

    def add(self, scope: str, content: str, metadata: Mapping[str, Any] | None = None) -> Memory:
        """Embed and store ``content``; it expires ``ttl_seconds`` from now."""
        _check_scope(scope)
        self._check_text("memory content", content)
        metadata_value = _check_metadata(metadata)
        vector = self._embed(content)
        self._ready()
        # Whole seconds, as the session stores count their TTL.
        now = int(self._clock())
        memory = Memory(
            id=uuid.uuid4(),
            scope=scope,
            content=content,
            created_at=_timestamp(now),
            expires_at=_timestamp(now + self._ttl_seconds),
            metadata=metadata_value,
        )
        insert = sql.SQL(
            "INSERT INTO {table} (id, scope, content, metadata, embedding, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s::vector, %s, %s)"
        ).format(table=sql.Identifier(self._table))
        params = (
            memory.id,
            scope,
            content,
            Jsonb(metadata_value),
            vector,
            memory.created_at,
            memory.expires_at,
        )
        self._run("store a memory", lambda conn: conn.execute(insert, params).rowcount)
        self._purge_if_due()
        return memory

    def _purge_if_due(self) -> None:
        """Delete expired rows at most once per ``purge_interval_seconds`` per process.

        Writes are where the table grows, so they pay for keeping it small: no scheduler to
        deploy, and an idle deployment (a paused Aurora) is never woken just to purge. A failed
        purge is retried on a later write; the memory just stored is kept either way.
        """
        now = self._clock()
        with self._purge_lock:
            if self._last_purge is not None and now - self._last_purge < self._purge_interval:
                return
            self._last_purge = now
        try:
            self.delete_expired()
        except MemoryStoreUnavailableError:
            with self._purge_lock:
                self._last_purge = None

    def search(
        self, scope: str, query: str, k: int = 5, min_score: float | None = None
    ) -> list[ScoredMemory]:
        """The ``k`` unexpired memories of ``scope`` nearest to ``query``, best first.

        ``score`` is the cosine similarity (1 - cosine distance); hits below ``min_score`` are
        dropped, so fewer than ``k`` may come back.
        """
        _check_scope(scope)
        self._check_text("query", query)
        if not 1 <= k <= MAX_SEARCH_K:
            raise ValueError(f"k must be between 1 and {MAX_SEARCH_K}, not {k}")
        vector = self._embed(query)
        self._ready()
        select = sql.SQL(
            "SELECT id, scope, content, metadata, created_at, expires_at,"
            " embedding <=> %s::vector AS distance"
            " FROM {table} WHERE scope = %s AND expires_at > %s"
            " ORDER BY distance LIMIT %s"
        ).format(table=sql.Identifier(self._table))
        params = (vector, scope, _timestamp(self._clock()), k)
        rows = self._run("search memories", lambda conn: conn.execute(select, params).fetchall())
        hits = [
            ScoredMemory(
                memory=Memory(
                    id=row[0],
                    scope=row[1],
                    content=row[2],
                    metadata=row[3],
                    created_at=row[4],
                    expires_at=row[5],
                ),
                score=1.0 - float(row[6]),
            )
            for row in rows
        ]
        if min_score is not None:
            hits = [hit for hit in hits if hit.score >= min_score]
        return hits

    def delete_expired(self) -> int:
        """Delete every expired memory, of all scopes; returns how many went."""
        self._ready()
        delete = sql.SQL("DELETE FROM {table} WHERE expires_at <= %s").format(
            table=sql.Identifier(self._table)
        )
        now = _timestamp(self._clock())
        return self._run(
            "delete expired memories", lambda conn: conn.execute(delete, (now,)).rowcount
        )

    def forget(self, scope: str) -> int:
        """Delete every memory of ``scope``, expired or not; returns how many went."""
        _check_scope(scope)
        self._ready()
        delete = sql.SQL("DELETE FROM {table} WHERE scope = %s").format(
            table=sql.Identifier(self._table)
        )
        return self._run("forget memories", lambda conn: conn.execute(delete, (scope,)).rowcount)

    def ping(self) -> None:
        """Raise :class:`MemoryStoreUnavailableError` unless the database answers."""
        self._run("ping", lambda conn: conn.execute("SELECT 1").fetchone())

    # --- helpers ----------------------------------------------------------------------------

    def _check_text(self, what: str, text: str) -> None:
        if not text.strip():
            raise ValueError(f"{what} must not be empty")
        if len(text) > self._max_content_chars:
            raise ValueError(
                f"{what} is {len(text)} characters, over the {self._max_content_chars}-character "
                "limit; store a shorter fact"
            )
        if "\x00" in text:
            raise ValueError(f"{what} must not contain NUL characters")

    def _embed(self, text: str) -> str:
        # Embedded before a connection is taken: the model call can take a while, and holding a
        # connection slot through it would only starve other callers.
        dimensions = self._embedder.dimensions
        (vector,) = check_vectors(
            self._embedder.embed([text]), count=1, dimensions=dimensions, source="the embedder"
        )
        # pgvector's text form, cast in SQL: no type registration per connection, which would
        # fail on a database where ensure_schema has not yet created the extension. Nine
        # significant digits round-trip the float32 values pgvector keeps.
        return "[" + ",".join(f"{value:.9g}" for value in vector) + "]"

    def _run(self, action: str, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        with self._slot(action), _reachable(action), self._connect() as conn:
            # The connection's context commits on success, rolls back on error, and closes.
            return work(conn)

    @contextmanager
    def _slot(self, action: str) -> Iterator[None]:
        if not self._slots.acquire(timeout=self._connection_wait):
            raise MemoryStoreUnavailableError(
                f"could not {action}: all {self._max_connections} memory database connections "
                f"stayed busy for {self._connection_wait:g}s"
            )
        try:
            yield
        finally:
            self._slots.release()


@contextmanager
def _reachable(action: str) -> Iterator[None]:
    """Turn the driver's outage errors into the store contract's one exception type."""
    try:
        yield
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if _refused_credentials(exc):
            raise MemoryStoreUnavailableError(
                f"PostgreSQL refused the credentials when trying to {action} ({reason}); check "
                "MEMORY_DATABASE_USER (or the URL's user) and MEMORY_DATABASE_PASSWORD or the "
                "secret MEMORY_DATABASE_SECRET_ARN names"
            ) from exc
        raise MemoryStoreUnavailableError(
            f"the memory database is unavailable, could not {action}: {reason}"
        ) from exc


def _refused_credentials(exc: psycopg.OperationalError) -> bool:
    """Whether the server refused the login: invalid_password (28P01) or invalid_authorization
    (28000, e.g. no pg_hba entry); a connection error during authentication has no SQLSTATE."""
    reason = str(exc)
    return exc.sqlstate in ("28P01", "28000") or "password authentication failed" in reason


def _check_scope(scope: str) -> None:
    if not scope or len(scope) > 512 or "\x00" in scope:
        raise ValueError("scope must be 1 to 512 characters, without NUL")


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    value = dict(metadata or {})
    try:
        encoded = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is over the {MAX_METADATA_BYTES}-byte limit")
    if "\\u0000" in encoded:
        raise ValueError("metadata must not contain NUL characters (jsonb cannot store them)")
    return value


def _timestamp(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)
