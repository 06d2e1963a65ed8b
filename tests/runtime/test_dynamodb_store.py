"""DynamoDBSessionStore against moto: item layout, TTL, expiry and optimistic locking."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, cast

import pytest

from runtime.agent import run_step
from runtime.dynamodb_store import MAX_ITEM_BYTES, DynamoDBSessionStore
from runtime.llm.types import Message, ToolCall
from runtime.session_store import SessionConflictError, SessionTooLargeError
from runtime.tools import default_registry
from tests.fakes.clock import FakeClock
from tests.runtime.conftest import (
    TABLE_NAME,
    TTL_SECONDS,
    ScriptedLLM,
    barrier_then,
    text,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

TURN = (
    Message(role="user", content="What is 0.1 + 0.2? ünïcødé ✓"),
    Message(
        role="assistant",
        tool_calls=(
            ToolCall(
                id="call_1",
                name="calculator",
                arguments={"expression": "0.1 + 0.2", "precision": 0.5, "nested": {"a": [1, 2.5]}},
            ),
        ),
    ),
    Message(role="tool", content="0.30000000000000004", tool_call_id="call_1"),
    Message(role="assistant", content="About 0.3."),
)


def raw_item(client: DynamoDBClient, session_id: str) -> dict[str, Any]:
    response = client.get_item(TableName=TABLE_NAME, Key={"session_id": {"S": session_id}})
    return cast(dict[str, Any], response["Item"])


def test_round_trip_keeps_messages_exactly(store: DynamoDBSessionStore, clock: FakeClock) -> None:
    saved = store.save("s-1", TURN, expected_version=0)
    loaded = store.get("s-1")

    assert loaded == saved
    assert loaded.messages == TURN
    assert loaded.version == 1
    assert loaded.created_at == loaded.updated_at == int(clock.now)
    arguments = loaded.messages[1].tool_calls[0].arguments
    # Stored as a JSON string, so floats come back as floats, not Decimal.
    assert type(arguments["precision"]) is float
    assert arguments["nested"] == {"a": [1, 2.5]}


def test_item_layout_and_ttl_attribute(dynamodb: DynamoDBClient) -> None:
    store = DynamoDBSessionStore(TABLE_NAME, ttl_seconds=TTL_SECONDS, client=dynamodb)
    before = time.time()
    store.save("s-ttl", TURN, expected_version=0)

    item = raw_item(dynamodb, "s-ttl")
    assert set(item) == {
        "session_id",
        "messages",
        "version",
        "created_at",
        "updated_at",
        "expires_at",
    }
    assert set(item["messages"]) == {"S"}
    # The TTL attribute must be a Number holding whole epoch seconds, or DynamoDB ignores it.
    expires_at = item["expires_at"]["N"]
    assert expires_at.isdigit()
    assert before + TTL_SECONDS - 2 <= int(expires_at) <= time.time() + TTL_SECONDS + 1
    ttl = dynamodb.describe_time_to_live(TableName=TABLE_NAME)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"


def test_get_of_unknown_session_is_none(store: DynamoDBSessionStore) -> None:
    assert store.get("never-saved") is None


def test_second_save_bumps_version_and_keeps_created_at(
    store: DynamoDBSessionStore, clock: FakeClock
) -> None:
    first = store.save("s-2", TURN[:1], expected_version=0)
    clock.advance(120)
    second = store.save("s-2", TURN, expected_version=1)

    loaded = store.get("s-2")
    assert loaded == second
    assert second.version == 2
    assert second.created_at == first.created_at
    assert second.updated_at == first.updated_at + 120
    assert second.expires_at == int(clock.now) + TTL_SECONDS


def test_stale_version_conflicts_and_keeps_the_winner(store: DynamoDBSessionStore) -> None:
    store.save("s-3", TURN[:1], expected_version=0)
    store.save("s-3", TURN[:2], expected_version=1)

    with pytest.raises(SessionConflictError) as caught:
        store.save("s-3", TURN, expected_version=1)

    assert caught.value.expected_version == 1
    loaded = store.get("s-3")
    assert loaded is not None
    assert (loaded.version, loaded.messages) == (2, TURN[:2])


def test_create_over_a_live_session_conflicts(store: DynamoDBSessionStore) -> None:
    store.save("s-4", TURN, expected_version=0)

    with pytest.raises(SessionConflictError):
        store.save("s-4", TURN[:1], expected_version=0)

    loaded = store.get("s-4")
    assert loaded is not None
    assert loaded.messages == TURN


def test_expired_item_is_absent_and_can_be_replaced(
    store: DynamoDBSessionStore, clock: FakeClock, dynamodb: DynamoDBClient
) -> None:
    old = store.save("s-5", TURN, expected_version=0)
    clock.advance(TTL_SECONDS)  # expires_at == now: expired

    # The item is still in the table (TTL deletion lags), but it is no longer a session.
    assert raw_item(dynamodb, "s-5")["version"]["N"] == "1"
    assert store.get("s-5") is None
    with pytest.raises(SessionConflictError):
        store.save("s-5", TURN, expected_version=1)

    fresh = store.save("s-5", TURN[:1], expected_version=0)
    assert fresh.version == 1
    assert fresh.created_at == old.created_at + TTL_SECONDS
    assert store.get("s-5") == fresh


def test_session_over_the_item_limit_raises_and_writes_nothing(
    store: DynamoDBSessionStore,
) -> None:
    store.save("s-6", TURN[:1], expected_version=0)
    huge = (*TURN[:1], Message(role="assistant", content="x" * MAX_ITEM_BYTES))

    with pytest.raises(SessionTooLargeError, match="item limit") as caught:
        store.save("s-6", huge, expected_version=1)

    assert caught.value.size_bytes > MAX_ITEM_BYTES
    loaded = store.get("s-6")
    assert loaded is not None
    assert (loaded.version, loaded.messages) == (1, TURN[:1])


def test_size_limit_counts_utf8_bytes_not_characters(dynamodb: DynamoDBClient) -> None:
    store = DynamoDBSessionStore(TABLE_NAME, ttl_seconds=60, client=dynamodb, max_item_bytes=2000)
    store.save("s-7", [Message(role="user", content="é" * 700)], expected_version=0)

    with pytest.raises(SessionTooLargeError):
        store.save("s-7", [Message(role="user", content="é" * 1000)], expected_version=1)


class SerializedWrites:
    """Runs the client's writes one at a time, as DynamoDB does for the writes to one item.

    moto evaluates a condition and stores the item in two Python steps without a lock; this keeps
    the test about the store's optimistic locking rather than about moto's thread safety.
    """

    def __init__(self, client: DynamoDBClient) -> None:
        self._client = client
        self._lock = threading.Lock()

    def put_item(self, **kwargs: Any) -> Any:
        with self._lock:
            return self._client.put_item(**kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        with self._lock:
            return self._client.update_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_two_concurrent_steps_one_wins_the_other_conflicts(
    dynamodb: DynamoDBClient, clock: FakeClock
) -> None:
    client = cast("DynamoDBClient", SerializedWrites(dynamodb))
    store = DynamoDBSessionStore(TABLE_NAME, ttl_seconds=TTL_SECONDS, client=client, clock=clock)
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
