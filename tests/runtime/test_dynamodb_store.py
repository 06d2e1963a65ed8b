"""DynamoDBSessionStore against moto: what is specific to DynamoDB (the item layout).

The store contract (round trip, versions, conflicts, expiry, size limit, the concurrent-step
race) runs against DynamoDB and Redis alike in ``test_session_store_contract.py``, which takes
``TURN`` and ``SerializedWrites`` from here.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, cast

from runtime.dynamodb_store import DynamoDBSessionStore
from runtime.llm.types import Message, ToolCall
from tests.runtime.conftest import (
    TABLE_NAME,
    TTL_SECONDS,
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
