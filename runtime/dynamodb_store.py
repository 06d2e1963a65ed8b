"""Sessions in a DynamoDB table: one item per session, optimistic locking on ``version``, TTL.

Item layout (partition key ``session_id``, string)::

    session_id  S   the key
    messages    S   the conversation as a JSON array of Message.to_dict()
    version     N   incremented by every save; the optimistic-locking token
    created_at  N   epoch seconds of the first save, kept across saves
    updated_at  N   epoch seconds of the last save
    expires_at  N   epoch seconds; the table's TTL attribute

``messages`` is one JSON string rather than a DynamoDB list of maps because tool arguments are
arbitrary JSON: as native attributes their floats would need converting to ``Decimal`` and back,
deeply nested arguments could hit DynamoDB's 32-level nesting limit, and the item size (400 KB
limit) would be hard to predict. A string is stored verbatim, read back exactly, and its size is
just its UTF-8 length. The low-level client is used (not the resource API) for the same reason:
numbers come back as strings, so no ``Decimal`` ever reaches the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from runtime.llm.types import Message
from runtime.session_store import (
    Clock,
    Session,
    SessionConflictError,
    SessionTooLargeError,
    check_expected_version,
    decode_messages,
    encode_messages,
    new_expiry,
    wall_clock,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

# DynamoDB's hard item limit counts attribute names and values together.
MAX_ITEM_BYTES = 400 * 1024
# A number attribute takes at most 21 bytes; counting the maximum keeps the estimate an upper bound.
_NUMBER_BYTES = 21
_NUMBER_ATTRIBUTES = ("version", "created_at", "updated_at", "expires_at")


class DynamoDBSessionStore:
    """:class:`~runtime.session_store.SessionStore` backed by one DynamoDB table."""

    def __init__(
        self,
        table_name: str,
        *,
        ttl_seconds: int,
        client: DynamoDBClient | None = None,
        clock: Clock = wall_clock,
        max_item_bytes: int = MAX_ITEM_BYTES,
    ) -> None:
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be positive")
        self._table_name = table_name
        self._ttl_seconds = ttl_seconds
        self._client = client
        self._clock = clock
        self._max_item_bytes = max_item_bytes

    @property
    def client(self) -> DynamoDBClient:
        # Created on first use so that constructing the store (at import or in tests) needs
        # neither credentials nor a region.
        if self._client is None:
            import boto3

            self._client = boto3.client("dynamodb")
        return self._client

    def get(self, session_id: str) -> Session | None:
        response = self.client.get_item(
            TableName=self._table_name,
            Key={"session_id": {"S": session_id}},
            # A step reads, thinks for seconds, then saves conditionally on what it read; an
            # eventually consistent read would make stale-version conflicts far more likely.
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        session = _from_item(item)
        if session.is_expired(self._clock()):
            return None
        return session

    def save(
        self, session_id: str, messages: Sequence[Message], *, expected_version: int
    ) -> Session:
        check_expected_version(expected_version)
        now = int(self._clock())
        new_version = expected_version + 1
        expires_at = new_expiry(now, self._ttl_seconds)
        body = encode_messages(messages)
        size = _item_size(session_id, body)
        if size > self._max_item_bytes:
            raise SessionTooLargeError(session_id, size, self._max_item_bytes)

        try:
            if expected_version == 0:
                created_at = now
                self._create(session_id, body, now, expires_at)
            else:
                created_at = self._update(
                    session_id, body, expected_version, new_version, now, expires_at
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise SessionConflictError(session_id, expected_version) from None
            raise
        return Session(
            session_id=session_id,
            messages=tuple(messages),
            version=new_version,
            created_at=created_at,
            updated_at=now,
            expires_at=expires_at,
        )

    def _create(self, session_id: str, body: str, now: int, expires_at: int) -> None:
        # An expired item may linger until the TTL sweeper runs (up to ~48 h); it no longer
        # counts as a session, so creating over it is allowed.
        self.client.put_item(
            TableName=self._table_name,
            Item={
                "session_id": {"S": session_id},
                "messages": {"S": body},
                "version": {"N": "1"},
                "created_at": {"N": str(now)},
                "updated_at": {"N": str(now)},
                "expires_at": {"N": str(expires_at)},
            },
            ConditionExpression="attribute_not_exists(session_id) OR expires_at <= :now",
            ExpressionAttributeValues={":now": {"N": str(now)}},
        )

    def _update(
        self,
        session_id: str,
        body: str,
        expected_version: int,
        new_version: int,
        now: int,
        expires_at: int,
    ) -> int:
        # UpdateItem rather than PutItem: the same single conditional write, but it leaves
        # ``created_at`` untouched server-side, where a PutItem would need an extra read to carry
        # it over. ALL_NEW is the one return mode that reliably includes an attribute the update
        # does not change; its size costs bandwidth only, not capacity.
        response = self.client.update_item(
            TableName=self._table_name,
            Key={"session_id": {"S": session_id}},
            UpdateExpression=(
                "SET messages = :messages, version = :new_version, updated_at = :now, "
                "expires_at = :expires_at"
            ),
            ConditionExpression="version = :expected AND expires_at > :now",
            ExpressionAttributeValues={
                ":messages": {"S": body},
                ":new_version": {"N": str(new_version)},
                ":expected": {"N": str(expected_version)},
                ":now": {"N": str(now)},
                ":expires_at": {"N": str(expires_at)},
            },
            ReturnValues="ALL_NEW",
        )
        return int(response["Attributes"]["created_at"]["N"])


def _item_size(session_id: str, body: str) -> int:
    size = len("session_id") + len(session_id.encode())
    size += len("messages") + len(body.encode())
    size += sum(len(name) + _NUMBER_BYTES for name in _NUMBER_ATTRIBUTES)
    return size


def _from_item(item: Mapping[str, Any]) -> Session:
    return Session(
        session_id=item["session_id"]["S"],
        messages=decode_messages(item["messages"]["S"]),
        version=int(item["version"]["N"]),
        created_at=int(item["created_at"]["N"]),
        updated_at=int(item["updated_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
    )
