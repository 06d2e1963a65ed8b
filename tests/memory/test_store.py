"""PgVectorMemoryStore against a real PostgreSQL + pgvector: schema, search, scopes, TTL, bounds,
injection, concurrency and outages.

The embedder is the local HashingEmbedder, whose similarity is lexical: the ranking tests use
texts that share words with the query, not merely meaning.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from runtime.memory.embedders import EmbeddingError, HashingEmbedder
from runtime.memory.store import MAX_SEARCH_K, PgVectorMemoryStore
from runtime.memory.types import MemorySchemaError, MemoryStoreUnavailableError, ScoredMemory
from tests.fakes.clock import FakeClock
from tests.fakes.ports import free_port
from tests.fakes.postgres_server import PostgresServer
from tests.memory.conftest import DIMENSIONS, TTL_SECONDS, StoreFactory

FACTS = (
    "The user's favourite colour is green.",
    "The user lives in Lisbon, Portugal.",
    "The user's dog is called Rex and likes long walks.",
    "The project deadline is the last Friday of March.",
)


def count_rows(server: PostgresServer, table: str, scope: str | None = None) -> int:
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
    params: tuple[str, ...] = ()
    if scope is not None:
        query = query + sql.SQL(" WHERE scope = %s")
        params = (scope,)
    with server.connect() as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def contents(hits: Sequence[ScoredMemory]) -> list[str]:
    return [hit.memory.content for hit in hits]


# --- schema ----------------------------------------------------------------------------------


def test_ensure_schema_creates_the_table_and_indexes_idempotently(
    make_store: StoreFactory, postgres_server: PostgresServer, table_name: str
) -> None:
    store = make_store()
    store.ensure_schema()
    store.ensure_schema()
    make_store().ensure_schema()  # another process starting later

    with postgres_server.connect() as conn:
        columns = dict(
            conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped",
                (table_name,),
            ).fetchall()
        )
        indexes = [
            row[0]
            for row in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname",
                (table_name,),
            ).fetchall()
        ]
    assert columns == {
        "id": "uuid",
        "scope": "text",
        "content": "text",
        "metadata": "jsonb",
        "embedding": f"vector({DIMENSIONS})",
        "created_at": "timestamp with time zone",
        "expires_at": "timestamp with time zone",
    }
    assert len(indexes) == 3  # the primary key, HNSW, and the scope btree
    assert any("USING hnsw (embedding vector_cosine_ops)" in index for index in indexes)
    assert any("USING btree (scope, expires_at)" in index for index in indexes)


def test_concurrent_first_starts_do_not_race(
    make_store: StoreFactory, postgres_server: PostgresServer, table_name: str
) -> None:
    # CREATE TABLE IF NOT EXISTS is not safe against a concurrent create (a unique violation in
    # pg_type); the advisory lock makes simultaneous cold starts take turns. Without it, 8
    # starters collide in most rounds, so three rounds catch a regression almost surely.
    errors: list[BaseException] = []
    tables = [f"{table_name}_{round_number}" for round_number in range(3)]
    try:
        for table in tables:
            stores = [make_store(table=table) for _ in range(8)]
            barrier = threading.Barrier(len(stores))

            def start(store: PgVectorMemoryStore, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                try:
                    store.ensure_schema()
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=start, args=(store,)) for store in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
    finally:
        with postgres_server.connect(autocommit=True) as conn:
            for table in tables:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    assert errors == []


def test_another_dimension_is_refused_naming_both(make_store: StoreFactory) -> None:
    make_store(embedder=HashingEmbedder(DIMENSIONS)).ensure_schema()
    other = make_store(embedder=HashingEmbedder(32))

    with pytest.raises(MemorySchemaError, match=rf"stores {DIMENSIONS}-dimensional.*makes 32-"):
        other.ensure_schema()
    # The lazy path (first add or search) refuses the same way, and nothing is written.
    with pytest.raises(MemorySchemaError, match="MEMORY_EMBEDDING_DIMENSIONS"):
        other.add("s", "a fact")


def test_schema_is_created_on_first_use(
    make_store: StoreFactory, postgres_server: PostgresServer, table_name: str
) -> None:
    store = make_store()  # no ensure_schema: building a store must not connect
    store.add("s", FACTS[0])
    assert count_rows(postgres_server, table_name) == 1


def test_store_settings_are_checked(postgres_server: PostgresServer) -> None:
    embedder = HashingEmbedder(DIMENSIONS)
    with pytest.raises(ValueError, match="table name"):
        PgVectorMemoryStore(
            postgres_server.connect, embedder=embedder, ttl_seconds=60, table='x"; DROP TABLE y'
        )
    with pytest.raises(ValueError, match="HNSW index takes 1 to 2000"):
        PgVectorMemoryStore(postgres_server.connect, embedder=HashingEmbedder(2001), ttl_seconds=60)
    with pytest.raises(ValueError, match="ttl_seconds"):
        PgVectorMemoryStore(postgres_server.connect, embedder=embedder, ttl_seconds=0)


@pytest.mark.parametrize(
    ("url", "user", "message"),
    [
        ("postgresql://u:secret@db:5432/app", None, "MEMORY_DATABASE_PASSWORD"),
        ("postgresql://db:5432/app", None, "MEMORY_DATABASE_USER"),
        ("postgresql://u@db:5432/app", "u", "keep one"),
        ("mysql://db:3306/app", "u", "postgresql://host:port/dbname"),
        ("postgresql://db:5432/", "u", "must name the database"),
    ],
)
def test_from_url_refuses_bad_urls(url: str, user: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        PgVectorMemoryStore.from_url(
            url, user=user, password="pw", embedder=HashingEmbedder(8), ttl_seconds=60
        )
    assert "secret" not in str(raised.value)


# --- add and search --------------------------------------------------------------------------


def test_add_stores_the_memory_with_its_expiry(
    store: PgVectorMemoryStore, clock: FakeClock, postgres_server: PostgresServer
) -> None:
    memory = store.add("session:a", FACTS[0], {"source": "test", "tags": ["colour"]})

    assert memory.created_at == datetime.fromtimestamp(clock.now, tz=UTC)
    assert memory.expires_at == datetime.fromtimestamp(clock.now + TTL_SECONDS, tz=UTC)
    with postgres_server.connect() as conn:
        row = conn.execute(
            sql.SQL("SELECT id, scope, content, metadata, created_at, expires_at FROM {}").format(
                sql.Identifier(store.table)
            )
        ).fetchone()
    assert row == (
        memory.id,
        "session:a",
        FACTS[0],
        {"source": "test", "tags": ["colour"]},
        memory.created_at,
        memory.expires_at,
    )


def test_search_ranks_the_nearest_first(store: PgVectorMemoryStore) -> None:
    for fact in FACTS:
        store.add("s", fact)

    assert contents(store.search("s", "what is the favourite colour", k=1)) == [FACTS[0]]
    assert contents(store.search("s", "where does the user live? Lisbon?", k=1)) == [FACTS[1]]
    assert contents(store.search("s", "dog walks", k=1)) == [FACTS[2]]

    hits = store.search("s", FACTS[3], k=4)
    assert hits[0].memory.content == FACTS[3]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)  # the same text: the same direction
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert len(hits) == 4


def test_min_score_drops_weak_hits(store: PgVectorMemoryStore) -> None:
    for fact in FACTS:
        store.add("s", fact)

    hits = store.search("s", "deadline Friday March", k=4, min_score=0.3)

    assert contents(hits) == [FACTS[3]]


def test_scopes_are_isolated(store: PgVectorMemoryStore) -> None:
    store.add("session:a", "Alice's secret code word is pelican.")
    store.add("session:b", "Bob's favourite food is ramen.")

    hits_b = store.search("session:b", "Alice's secret code word is pelican.", k=10)
    assert contents(hits_b) == ["Bob's favourite food is ramen."]
    assert contents(store.search("session:a", "code word", k=10)) == [
        "Alice's secret code word is pelican."
    ]
    assert store.search("session:c", "pelican ramen", k=10) == []

    assert store.forget("session:a") == 1
    assert store.search("session:a", "code word") == []
    assert len(store.search("session:b", "ramen")) == 1


def test_a_small_scope_in_a_crowded_table_gets_all_its_hits(
    store: PgVectorMemoryStore, postgres_server: PostgresServer, clock: FakeClock
) -> None:
    # pgvector's HNSW scan filters after taking its ef_search (40) nearest rows: if the planner
    # used it for a selective scope, rows of other scopes nearer the query would crowd out ours.
    embedder = HashingEmbedder(DIMENSIONS)
    crowd = [f"alpha beta gamma delta note {number}" for number in range(500)]
    vectors = embedder.embed(crowd)
    now = datetime.fromtimestamp(clock.now, tz=UTC)
    later = datetime.fromtimestamp(clock.now + TTL_SECONDS, tz=UTC)
    with postgres_server.connect() as conn, conn.cursor() as cursor:
        cursor.executemany(
            sql.SQL(
                "INSERT INTO {} (id, scope, content, embedding, created_at, expires_at)"
                " VALUES (%s, %s, %s, %s::vector, %s, %s)"
            ).format(sql.Identifier(store.table)),
            [
                (uuid.uuid4(), f"session:other-{number % 100}", text, str(vector), now, later)
                for number, (text, vector) in enumerate(zip(crowd, vectors, strict=True))
            ],
        )
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(store.table)))
    mine = [f"omega psi alpha fact {number}" for number in range(5)]
    for fact in mine:
        store.add("session:mine", fact)

    hits = store.search("session:mine", "alpha beta gamma delta", k=10)

    assert sorted(contents(hits)) == sorted(mine)


# --- TTL -------------------------------------------------------------------------------------


def test_memories_expire_ttl_seconds_after_they_were_written(
    store: PgVectorMemoryStore, clock: FakeClock, postgres_server: PostgresServer
) -> None:
    start = clock.now
    store.add("s", "The first fact about apples.")
    clock.advance(1800)
    store.add("s", "The second fact about apples.")

    clock.now = start + TTL_SECONDS - 1
    assert len(store.search("s", "apples", k=10)) == 2
    clock.now = start + TTL_SECONDS
    assert contents(store.search("s", "apples", k=10)) == ["The second fact about apples."]
    assert count_rows(postgres_server, store.table) == 2  # hidden, not yet deleted

    assert store.delete_expired() == 1
    assert count_rows(postgres_server, store.table) == 1
    assert store.delete_expired() == 0

    clock.now = start + 1800 + TTL_SECONDS
    assert store.search("s", "apples") == []
    assert store.delete_expired() == 1


def test_writes_purge_expired_memories_once_per_interval(
    make_store: StoreFactory, clock: FakeClock, postgres_server: PostgresServer
) -> None:
    store = make_store(purge_interval_seconds=1.5 * TTL_SECONDS)
    start = clock.now
    store.add("s", "An old fact about pears.")  # the first write purges (nothing yet)
    clock.now = start + TTL_SECONDS
    # Expired, but the last purge is less than an interval ago: hidden, not yet deleted.
    store.add("s", "A fresh fact about pears.")
    assert count_rows(postgres_server, store.table) == 2
    clock.now = start + 1.5 * TTL_SECONDS
    store.add("s", "Another fresh fact about pears.")
    # The interval has passed: this write purged the expired row, and only that one.
    assert count_rows(postgres_server, store.table) == 2
    assert sorted(contents(store.search("s", "pears", k=10))) == [
        "A fresh fact about pears.",
        "Another fresh fact about pears.",
    ]


# --- bounds and hostile input ----------------------------------------------------------------


def test_k_is_bounded(store: PgVectorMemoryStore) -> None:
    for fact in FACTS:
        store.add("s", fact)

    assert len(store.search("s", "the user", k=2)) == 2
    assert len(store.search("s", "the user", k=MAX_SEARCH_K)) == len(FACTS)
    for k in (0, -1, MAX_SEARCH_K + 1):
        with pytest.raises(ValueError, match=f"k must be between 1 and {MAX_SEARCH_K}"):
            store.search("s", "the user", k=k)


def test_content_and_query_are_bounded(
    make_store: StoreFactory, postgres_server: PostgresServer, table_name: str
) -> None:
    store = make_store(max_content_chars=100)

    store.add("s", "x" * 100)
    with pytest.raises(ValueError, match="101 characters, over the 100-character limit"):
        store.add("s", "x" * 101)
    with pytest.raises(ValueError, match="must not be empty"):
        store.add("s", "  \n ")
    with pytest.raises(ValueError, match="NUL"):
        store.add("s", "a\x00b")
    with pytest.raises(ValueError, match="query is 101 characters"):
        store.search("s", "y" * 101)
    with pytest.raises(ValueError, match="metadata is over"):
        store.add("s", "fact", {"blob": "z" * 5000})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        store.add("s", "fact", {"when": object()})
    assert count_rows(postgres_server, table_name) == 1


def test_sql_in_content_scope_and_query_is_only_data(
    store: PgVectorMemoryStore, postgres_server: PostgresServer
) -> None:
    hostile = "Robert'); DROP TABLE agent_memories; DELETE FROM pg_user; --"
    scope = "session:x' OR '1'='1"
    store.add(scope, hostile, {"note": "'; TRUNCATE x; --"})
    store.add("session:other", "an innocent fact")

    hits = store.search(scope, "' OR 1=1; DROP TABLE x; --", k=10)

    assert contents(hits) == [hostile]
    assert hits[0].memory.scope == scope
    assert hits[0].memory.metadata == {"note": "'; TRUNCATE x; --"}
    assert count_rows(postgres_server, store.table) == 2
    assert store.forget("session:%") == 0  # no LIKE patterns either


def test_concurrent_adds_from_threads(
    make_store: StoreFactory, postgres_server: PostgresServer, table_name: str
) -> None:
    store = make_store(max_connections=3)  # fewer slots than threads: some wait their turn
    store.ensure_schema()
    threads_count, per_thread = 8, 5
    barrier = threading.Barrier(threads_count)
    ids: list[uuid.UUID] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(number: int) -> None:
        barrier.wait()
        try:
            for item in range(per_thread):
                memory = store.add("s", f"fact number {item} from writer {number}")
                with lock:
                    ids.append(memory.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert errors == []
    assert len(set(ids)) == threads_count * per_thread
    assert count_rows(postgres_server, table_name, "s") == threads_count * per_thread
    assert contents(store.search("s", "fact number 3 from writer 6", k=1)) == [
        "fact number 3 from writer 6"
    ]


class _BrokenEmbedder:
    dimensions = DIMENSIONS

    def __init__(self, vector: list[float]) -> None:
        self.vector = vector

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vector for _ in texts]


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ([0.0] * DIMENSIONS, "zero or non-finite"),
        ([float("nan")] * DIMENSIONS, "zero or non-finite"),
        ([1.0] * (DIMENSIONS - 1), f"{DIMENSIONS - 1}-dimensional embedding, expected"),
    ],
)
def test_unusable_embeddings_are_refused_before_the_database(
    make_store: StoreFactory, vector: list[float], message: str
) -> None:
    store = make_store(embedder=_BrokenEmbedder(vector))

    with pytest.raises(EmbeddingError, match=message):
        store.add("s", "a fact")


# --- outages ---------------------------------------------------------------------------------


def test_nothing_listening_is_unavailable_at_once(postgres_server: PostgresServer) -> None:
    store = PgVectorMemoryStore.from_url(
        f"postgresql://127.0.0.1:{free_port()}/postgres",
        user="postgres",
        password=postgres_server.password,
        embedder=HashingEmbedder(DIMENSIONS),
        ttl_seconds=60,
        connect_timeout_seconds=2,
    )
    started = time.monotonic()
    with pytest.raises(MemoryStoreUnavailableError, match="unavailable, could not") as raised:
        store.add("s", "a fact")
    assert time.monotonic() - started < 2
    assert "Connection refused" in str(raised.value)
    with pytest.raises(MemoryStoreUnavailableError):
        store.search("s", "a fact")


def test_a_wrong_password_names_the_setting_not_the_password(
    postgres_server: PostgresServer,
) -> None:
    store = PgVectorMemoryStore.from_url(
        postgres_server.url,
        user=postgres_server.user,
        password="not-the-password-xyzzy",
        embedder=HashingEmbedder(DIMENSIONS),
        ttl_seconds=60,
    )
    with pytest.raises(MemoryStoreUnavailableError, match="MEMORY_DATABASE_PASSWORD") as raised:
        store.ping()
    assert "xyzzy" not in str(raised.value)
    assert isinstance(raised.value.__cause__, psycopg.OperationalError)
