"""RedisSessionStore against a real redis-server: layout, Redis TTL, locking races, outages, URLs.

The behaviour it shares with the DynamoDB store is asserted for both in
``test_session_store_contract.py``; this file covers what only Redis has.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.connection import Connection, SSLConnection

from runtime.llm.types import Message
from runtime.redis_store import MAX_SESSION_BYTES, RedisSessionStore
from runtime.session_store import (
    SessionConflictError,
    SessionStoreUnavailableError,
    SessionTooLargeError,
)
from runtime.settings import RuntimeSettings
from runtime.wiring import build_session_store
from tests.fakes.clock import FakeClock
from tests.fakes.redis_server import RedisServer, running_redis
from tests.runtime.conftest import TTL_SECONDS
from tests.runtime.test_dynamodb_store import TURN


@pytest.fixture
def client(raw: redis.Redis) -> redis.Redis:
    return raw


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A key space per test on the session's shared server, removed afterwards."""
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)


@pytest.fixture
def store(client: redis.Redis, prefix: str, clock: FakeClock) -> RedisSessionStore:
    return RedisSessionStore(client, ttl_seconds=TTL_SECONDS, clock=clock, key_prefix=prefix)


def raw_hash(client: redis.Redis, key: str) -> dict[str, str]:
    def text(value: bytes | str) -> str:
        return value.decode() if isinstance(value, bytes) else value

    return {text(name): text(value) for name, value in client.hgetall(key).items()}


def test_hash_layout_with_messages_as_one_json_string(
    store: RedisSessionStore, client: redis.Redis, clock: FakeClock
) -> None:
    store.save("s-1", TURN, expected_version=0)

    stored = raw_hash(client, store.key("s-1"))
    assert set(stored) == {
        "messages",
        "version",
        "created_at",
        "updated_at",
        "expires_at",
        "save_id",
    }
    assert json.loads(stored["messages"]) == [message.to_dict() for message in TURN]
    assert "ünïcødé ✓" in stored["messages"]  # stored as UTF-8, not \\u escapes
    now = int(clock.now)
    assert (stored["version"], stored["created_at"], stored["updated_at"]) == (
        "1",
        str(now),
        str(now),
    )
    assert stored["expires_at"] == str(now + TTL_SECONDS)


def test_every_save_sets_the_key_ttl(
    store: RedisSessionStore, client: redis.Redis, clock: FakeClock
) -> None:
    store.save("s-ttl", TURN[:1], expected_version=0)
    key = store.key("s-ttl")
    assert TTL_SECONDS - 2 <= client.ttl(key) <= TTL_SECONDS

    # Shorten it by hand; the next save must put the full TTL back (sliding expiry).
    client.expire(key, 10)
    clock.advance(30)
    saved = store.save("s-ttl", TURN, expected_version=1)

    assert TTL_SECONDS - 2 <= client.ttl(key) <= TTL_SECONDS
    assert saved.expires_at == int(clock.now) + TTL_SECONDS


def test_key_expires_in_redis_after_ttl(client: redis.Redis, prefix: str) -> None:
    # 2 s, not 1: expires_at is whole epoch seconds (now + TTL, truncated), so with a 1 s TTL a
    # read a few hundred ms after the save may already, rightly, find the session expired.
    store = RedisSessionStore(client, ttl_seconds=2, key_prefix=prefix)
    saved = store.save("short", TURN, expected_version=0)
    assert 0 < client.pttl(store.key("short")) <= 2000
    assert store.get("short") == saved

    # Redis drops the key itself (no sweeper), at most a moment after the TTL.
    deadline = time.monotonic() + 5
    while client.exists(store.key("short")) and time.monotonic() < deadline:
        time.sleep(0.05)

    assert client.exists(store.key("short")) == 0
    assert store.get("short") is None
    assert store.save("short", TURN[:1], expected_version=0).version == 1


def test_many_threads_saving_the_same_version_exactly_one_wins(
    store: RedisSessionStore,
) -> None:
    store.save("race", TURN[:1], expected_version=0)
    writers = 16
    barrier = threading.Barrier(writers, timeout=10)
    outcomes: dict[int, object] = {}

    def write(number: int) -> None:
        messages = (*TURN[:1], Message(role="assistant", content=f"writer {number}"))
        barrier.wait()
        try:
            outcomes[number] = store.save("race", messages, expected_version=1)
        except Exception as exc:
            outcomes[number] = exc

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    winners = [n for n, out in outcomes.items() if not isinstance(out, BaseException)]
    conflicts = [n for n, out in outcomes.items() if isinstance(out, SessionConflictError)]
    assert len(winners) == 1, outcomes
    assert len(conflicts) == writers - 1, outcomes
    stored = store.get("race")
    assert stored is not None
    assert stored.version == 2
    assert stored.messages[-1].content == f"writer {winners[0]}"


def test_read_modify_write_under_contention_loses_no_update(store: RedisSessionStore) -> None:
    """Every writer retries on conflict from a fresh read, as a client of the contract must."""
    writers, appends = 8, 10
    store.save("counter", (), expected_version=0)
    conflicts = [0] * writers

    def append(writer: int) -> None:
        for number in range(appends):
            while True:
                current = store.get("counter")
                assert current is not None
                entry = Message(role="user", content=f"{writer}:{number}")
                try:
                    store.save(
                        "counter", (*current.messages, entry), expected_version=current.version
                    )
                    break
                except SessionConflictError:
                    conflicts[writer] += 1

    threads = [threading.Thread(target=append, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    final = store.get("counter")
    assert final is not None
    assert final.version == 1 + writers * appends
    contents = [message.content for message in final.messages]
    assert sorted(contents) == sorted(f"{w}:{n}" for w in range(writers) for n in range(appends))
    for writer in range(writers):
        # Each writer's own appends kept their order.
        mine = [c for c in contents if c.startswith(f"{writer}:")]
        assert mine == [f"{writer}:{n}" for n in range(appends)]
    assert sum(conflicts) > 0, "no writer ever conflicted: the test did not race"


def test_a_replayed_save_is_recognised_not_reported_as_a_conflict(
    client: redis.Redis, prefix: str, clock: FakeClock
) -> None:
    # redis-py re-sends a command whose reply was lost; the save_id makes the re-run a no-op.
    # A save_id sequence in which the third call re-sends the second: a retry after a lost reply.
    save_ids = iter(["first", "second", "second", "third"])
    store = RedisSessionStore(
        client,
        ttl_seconds=TTL_SECONDS,
        clock=clock,
        key_prefix=prefix,
        new_save_id=lambda: next(save_ids),
    )
    store.save("replay", TURN[:1], expected_version=0)
    second = store.save("replay", TURN, expected_version=1)
    replay = store.save("replay", TURN, expected_version=1)

    assert replay == second
    loaded = store.get("replay")
    assert loaded is not None
    assert (loaded.version, loaded.messages) == (2, TURN)
    # Another save from the same stale version is still a conflict.
    with pytest.raises(SessionConflictError):
        store.save("replay", TURN[:2], expected_version=1)


def test_default_limit_is_512_kib(store: RedisSessionStore) -> None:
    # Above DynamoDB's 400 KB: a session of 450 KB fits here.
    store.save("big", [Message(role="user", content="x" * 450 * 1024)], expected_version=0)
    with pytest.raises(SessionTooLargeError) as caught:
        store.save(
            "big", [Message(role="user", content="x" * MAX_SESSION_BYTES)], expected_version=1
        )
    assert caught.value.limit_bytes == MAX_SESSION_BYTES == 512 * 1024


def test_works_with_a_client_that_decodes_responses(
    redis_server: RedisServer, prefix: str, clock: FakeClock
) -> None:
    client = redis.Redis(
        host=redis_server.host,
        port=redis_server.port,
        password=redis_server.password,
        decode_responses=True,
    )
    store = RedisSessionStore(client, ttl_seconds=TTL_SECONDS, clock=clock, key_prefix=prefix)
    saved = store.save("decoded", TURN, expected_version=0)
    assert store.get("decoded") == saved
    client.close()


# --- connections: from_url, credentials, outages -----------------------------------------------


def test_from_url_connects_with_the_password(redis_server: RedisServer, prefix: str) -> None:
    store = RedisSessionStore.from_url(
        redis_server.url, password=redis_server.password, ttl_seconds=60, key_prefix=prefix
    )
    store.ping()
    saved = store.save("via-url", TURN, expected_version=0)
    assert store.get("via-url") == saved
    store.close()


def test_from_url_parses_tls_host_port_db_and_sets_timeouts() -> None:
    store = RedisSessionStore.from_url(
        "rediss://master.agent-sessions.abc123.use1.cache.amazonaws.com:6380/2",
        password="auth-token",
        ttl_seconds=60,
    )
    pool = store.client.connection_pool
    kwargs = pool.connection_kwargs
    assert pool.connection_class is SSLConnection
    assert kwargs["host"] == "master.agent-sessions.abc123.use1.cache.amazonaws.com"
    assert (kwargs["port"], kwargs["db"], kwargs["password"]) == (6380, 2, "auth-token")
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 2.0
    assert kwargs["health_check_interval"] == 30
    assert kwargs["retry"].get_retries() == 2
    assert pool.max_connections == 50
    # Certificates are verified: ElastiCache's are public, an unverified one is a MITM.
    assert kwargs.get("ssl_cert_reqs", "required") == "required"
    assert "auth-token" not in repr(store.client)


def test_from_url_plain_redis_is_not_tls() -> None:
    store = RedisSessionStore.from_url("redis://localhost:6379", password=None, ttl_seconds=60)
    pool = store.client.connection_pool
    assert pool.connection_class is Connection
    assert pool.connection_kwargs.get("db", 0) == 0
    assert pool.connection_kwargs.get("password") is None


@pytest.mark.parametrize(
    ("url", "password", "message"),
    [
        ("http://localhost:6379", None, "REDIS_URL must look like redis://"),
        ("unix:///tmp/redis.sock", None, "REDIS_URL must look like redis://"),
        ("redis://:secret@localhost:6379/0", "other", "keep the AUTH token in REDIS_PASSWORD"),
    ],
)
def test_from_url_refuses_bad_urls(url: str, password: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisSessionStore.from_url(url, password=password, ttl_seconds=60)


def test_wrong_password_is_a_clear_error(redis_server: RedisServer) -> None:
    store = RedisSessionStore.from_url(redis_server.url, password="wrong", ttl_seconds=60)

    with pytest.raises(
        SessionStoreUnavailableError, match=r"refused the credentials.*REDIS_PASSWORD"
    ):
        store.ping()
    with pytest.raises(
        SessionStoreUnavailableError, match="refused the credentials when trying to read a session"
    ):
        store.get("anything")
    store.close()


def test_missing_password_is_a_clear_error(redis_server: RedisServer) -> None:
    store = RedisSessionStore.from_url(redis_server.url, password=None, ttl_seconds=60)

    with pytest.raises(SessionStoreUnavailableError, match="refused the credentials"):
        store.save("s", TURN, expected_version=0)
    store.close()


def test_server_down_is_a_clear_error_and_fast() -> None:
    with running_redis() as server:
        store = RedisSessionStore.from_url(server.url, password=server.password, ttl_seconds=60)
        store.save("s", TURN, expected_version=0)
        store.ping()
    # The server is gone now, with a pooled connection still open to it.
    started = time.monotonic()
    with pytest.raises(SessionStoreUnavailableError, match="unreachable, could not read a session"):
        store.get("s")
    with pytest.raises(SessionStoreUnavailableError, match="unreachable, could not ping"):
        store.ping()
    with pytest.raises(SessionStoreUnavailableError, match="unreachable, could not save"):
        store.save("s", TURN, expected_version=1)
    assert time.monotonic() - started < 5
    store.close()


def test_wiring_builds_the_redis_store_from_settings(
    redis_server: RedisServer, prefix: str
) -> None:
    settings = RuntimeSettings.from_env(
        {
            "SESSION_STORE": "redis",
            "REDIS_URL": redis_server.url,
            "REDIS_PASSWORD": redis_server.password,
            "SESSION_TTL_SECONDS": "600",
            "LLM_PROVIDER": "bedrock",
            "LLM_MODEL_ID": "m",
            "LLM_REQUEST_TIMEOUT_SECONDS": "5",
            "LLM_MAX_ATTEMPTS": "1",
            "AGENT_MAX_ITERATIONS": "2",
            "MAX_MESSAGE_CHARS": "100",
            "MAX_BODY_BYTES": "1024",
        }
    )
    store = build_session_store(settings)

    assert isinstance(store, RedisSessionStore)
    store.ping()
    session_id = prefix + "wired"
    saved = store.save(session_id, TURN, expected_version=0)
    assert saved.expires_at - saved.updated_at == 600
    assert 598 <= store.client.ttl(store.key(session_id)) <= 600
    store.client.delete(store.key(session_id))
    store.close()
