"""The SessionStore contract, asserted once and run against every store.

DynamoDB (moto) and Redis (a real redis-server) must give the same answers for the same calls:
the agent, the HTTP adapters and the task worker are written against the contract, not a store.
Store-specific layout (item attributes, hash fields, TTLs) is tested in each store's own file.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

import pytest
import redis

from runtime.agent import run_step
from runtime.dynamodb_store import MAX_ITEM_BYTES, DynamoDBSessionStore
from runtime.llm.types import Message
from runtime.redis_store import MAX_SESSION_BYTES, RedisSessionStore
from runtime.session_store import (
    Clock,
    SessionConflictError,
    SessionStore,
    SessionTooLargeError,
)
from runtime.tools import default_registry
from tests.fakes.clock import FakeClock
from tests.fakes.redis_server import RedisServer
from tests.runtime.conftest import TABLE_NAME, TTL_SECONDS, ScriptedLLM, barrier_then, text
from tests.runtime.test_dynamodb_store import TURN, SerializedWrites

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class StoreFactory(Protocol):
    """Builds stores of one kind over the same backing table or key space."""

    kind: str
    default_limit: int

    def __call__(
        self, *, clock: Clock, ttl_seconds: int = TTL_SECONDS, max_bytes: int | None = None
    ) -> SessionStore: ...


@dataclass
class DynamoDBStores:
    client: DynamoDBClient
    kind: str = "dynamodb"
    default_limit: int = MAX_ITEM_BYTES

    def __call__(
        self, *, clock: Clock, ttl_seconds: int = TTL_SECONDS, max_bytes: int | None = None
    ) -> SessionStore:
        # Writes serialized as DynamoDB serializes writes to one item (see SerializedWrites).
        client = cast("DynamoDBClient", SerializedWrites(self.client))
        return DynamoDBSessionStore(
            TABLE_NAME,
            ttl_seconds=ttl_seconds,
            client=client,
            clock=clock,
            max_item_bytes=max_bytes or self.default_limit,
        )


@dataclass
class RedisStores:
    client: redis.Redis
    key_prefix: str
    kind: str = "redis"
    default_limit: int = MAX_SESSION_BYTES

    def __call__(
        self, *, clock: Clock, ttl_seconds: int = TTL_SECONDS, max_bytes: int | None = None
    ) -> SessionStore:
        return RedisSessionStore(
            self.client,
            ttl_seconds=ttl_seconds,
            clock=clock,
            key_prefix=self.key_prefix,
            max_bytes=max_bytes or self.default_limit,
        )


@pytest.fixture(params=["dynamodb", "redis"])
def stores(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    if request.param == "dynamodb":
        yield DynamoDBStores(request.getfixturevalue("dynamodb"))
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = redis.Redis(host=server.host, port=server.port, password=server.password)
    # A key space of its own per test: the server is shared by the whole session.
    prefix = f"contract:{uuid.uuid4().hex}:"
    try:
        yield RedisStores(client, prefix)
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()


@pytest.fixture
def store(stores: StoreFactory, clock: FakeClock) -> SessionStore:
    return stores(clock=clock)


def test_round_trip_keeps_messages_exactly(store: SessionStore, clock: FakeClock) -> None:
    saved = store.save("s-1", TURN, expected_version=0)
    loaded = store.get("s-1")

    assert loaded == saved
    assert loaded is not None
    assert loaded.messages == TURN
    assert loaded.version == 1
    assert loaded.created_at == loaded.updated_at == int(clock.now)
    assert loaded.expires_at == int(clock.now) + TTL_SECONDS
    arguments = loaded.messages[1].tool_calls[0].arguments
    assert type(arguments["precision"]) is float
    assert arguments["nested"] == {"a": [1, 2.5]}
    assert loaded.messages[0].content == "What is 0.1 + 0.2? ünïcødé ✓"


def test_get_of_unknown_session_is_none(store: SessionStore) -> None:
    assert store.get("never-saved") is None


def test_second_save_bumps_version_and_keeps_created_at(
    store: SessionStore, clock: FakeClock
) -> None:
    first = store.save("s-2", TURN[:1], expected_version=0)
    clock.advance(120)
    second = store.save("s-2", TURN, expected_version=1)

    assert store.get("s-2") == second
    assert second.version == 2
    assert second.created_at == first.created_at
    assert second.updated_at == first.updated_at + 120
    assert second.expires_at == int(clock.now) + TTL_SECONDS


def test_stale_version_conflicts_and_keeps_the_winner(store: SessionStore) -> None:
    store.save("s-3", TURN[:1], expected_version=0)
    store.save("s-3", TURN[:2], expected_version=1)

    with pytest.raises(SessionConflictError) as caught:
        store.save("s-3", TURN, expected_version=1)

    assert caught.value.expected_version == 1
    assert caught.value.session_id == "s-3"
    loaded = store.get("s-3")
    assert loaded is not None
    assert (loaded.version, loaded.messages) == (2, TURN[:2])


def test_update_of_a_missing_session_conflicts(store: SessionStore) -> None:
    with pytest.raises(SessionConflictError):
        store.save("s-missing", TURN, expected_version=3)

    assert store.get("s-missing") is None


def test_create_over_a_live_session_conflicts(store: SessionStore) -> None:
    store.save("s-4", TURN, expected_version=0)

    with pytest.raises(SessionConflictError):
        store.save("s-4", TURN[:1], expected_version=0)

    loaded = store.get("s-4")
    assert loaded is not None
    assert loaded.messages == TURN


def test_expired_session_is_absent_and_can_be_replaced(
    store: SessionStore, clock: FakeClock
) -> None:
    old = store.save("s-5", TURN, expected_version=0)
    clock.advance(TTL_SECONDS)  # expires_at == now: expired

    assert store.get("s-5") is None
    with pytest.raises(SessionConflictError):
        store.save("s-5", TURN, expected_version=1)

    fresh = store.save("s-5", TURN[:1], expected_version=0)
    assert fresh.version == 1
    assert fresh.created_at == old.created_at + TTL_SECONDS
    assert store.get("s-5") == fresh


def test_session_over_the_limit_raises_and_writes_nothing(
    stores: StoreFactory, clock: FakeClock
) -> None:
    store = stores(clock=clock)
    store.save("s-6", TURN[:1], expected_version=0)
    huge = (*TURN[:1], Message(role="assistant", content="x" * stores.default_limit))

    with pytest.raises(SessionTooLargeError, match="item limit") as caught:
        store.save("s-6", huge, expected_version=1)

    assert caught.value.size_bytes > stores.default_limit
    assert caught.value.limit_bytes == stores.default_limit
    loaded = store.get("s-6")
    assert loaded is not None
    assert (loaded.version, loaded.messages) == (1, TURN[:1])


def test_size_limit_counts_utf8_bytes_not_characters(
    stores: StoreFactory, clock: FakeClock
) -> None:
    store = stores(clock=clock, ttl_seconds=60, max_bytes=2000)
    store.save("s-7", [Message(role="user", content="é" * 700)], expected_version=0)

    with pytest.raises(SessionTooLargeError):
        store.save("s-7", [Message(role="user", content="é" * 1000)], expected_version=1)


def test_invalid_arguments_are_refused(stores: StoreFactory, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="ttl_seconds must be positive"):
        stores(clock=clock, ttl_seconds=0)
    with pytest.raises(ValueError, match="expected_version must be >= 0"):
        stores(clock=clock).save("s-8", TURN, expected_version=-1)


def test_two_concurrent_steps_one_wins_the_other_conflicts(
    store: SessionStore,
) -> None:
    store.save("race", TURN, expected_version=0)
    # Both steps are inside the model call, so both have read version 1 before either saves.
    barrier = threading.Barrier(2, timeout=10)
    outcomes: dict[str, object] = {}

    def step(name: str) -> None:
        llm = ScriptedLLM([barrier_then(barrier, text(f"answer for {name}"))])
        try:
            outcomes[name] = run_step(
                store=store,
                llm=llm,
                tools=default_registry(),
                session_id="race",
                user_input=f"question from {name}",
                max_iterations=2,
            )
        except Exception as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=step, args=(name,)) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    conflicts = [name for name, out in outcomes.items() if isinstance(out, SessionConflictError)]
    winners = [name for name, out in outcomes.items() if not isinstance(out, BaseException)]
    assert len(conflicts) == 1, outcomes
    assert len(winners) == 1, outcomes
    winner, loser = winners[0], conflicts[0]

    stored = store.get("race")
    assert stored is not None
    assert stored.version == 2
    assert stored.messages == (
        *TURN,
        Message(role="user", content=f"question from {winner}"),
        Message(role="assistant", content=f"answer for {winner}"),
    )
    assert all(f"from {loser}" not in message.content for message in stored.messages)
