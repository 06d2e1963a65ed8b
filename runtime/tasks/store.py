"""Task records in DynamoDB: every state change is one conditional write.

One table (partition key ``pk``, TTL attribute ``expires_at``) holds three kinds of item::

    task#<task_id>       the task: status, input, result or error, lease, callback state
    idem#<sha256>        an Idempotency-Key (hashed with the caller's identity) -> task id
    endpoint#<sha256>    a callback URL that answered 410 Gone, until the gone TTL passes

SQS delivers at least once, and a worker can die at any instruction, so no step trusts that it
is the only one or the first one. The guarantees come from conditions on these items:

* **claim**: a worker runs a task only after it wins a conditional write that moves it to
  ``running`` with a lease (owner and expiry). A second copy of the message sees a live lease and
  backs off; a crashed run's lease expires and its message's redelivery takes the task over.
* **complete**: the result is written only while the writer still holds the lease, and the same
  write bumps ``callback_event`` and sets ``callback_status = pending`` when a callback is due:
  exactly one completion per run, hence one callback event.
* **callback attempts**: a delivery attempt ``n`` is claimed by moving ``callback_attempts`` from
  ``n - 1`` to ``n`` (or re-taking ``n`` after its lease expired), so duplicate callback messages
  never deliver twice and a crashed attempt is retried.

The low-level client is used, as in :mod:`runtime.dynamodb_store`: numbers come back as strings
and JSON payloads are stored as strings, so no ``Decimal`` reaches the runtime.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

TaskStatus = Literal["queued", "running", "succeeded", "failed"]
CallbackStatus = Literal[
    "none", "pending", "enqueued", "delivering", "retrying", "delivered", "gone", "failed"
]
# Callback states in which a next attempt may still be claimed.
_OPEN_CALLBACK_STATES = ("pending", "enqueued", "retrying", "delivering")


class TaskStoreBusyError(Exception):
    """A write was cancelled for a reason the caller cannot fix (a throttle, a concurrent
    transaction on the same key); retrying shortly succeeds."""


class IdempotencyMismatchError(Exception):
    """The Idempotency-Key was used before with a different request body."""

    def __init__(self, task_id: str) -> None:
        super().__init__(
            "this Idempotency-Key was already used with a different request body (task "
            f"{task_id}); use a new key for a new request"
        )
        self.task_id = task_id


@dataclass(frozen=True)
class TaskError:
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Task:
    task_id: str
    status: TaskStatus
    input: str
    session_id: str
    created_at: int
    updated_at: int
    expires_at: int
    callback_url: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    enqueued_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    runs: int = 0
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    result: Mapping[str, Any] | None = None
    error: TaskError | None = None
    # A failure the operator may redrive (the model kept failing); False for a task that cannot
    # succeed as submitted (its session is full, the model rejects the request).
    retryable: bool = False
    last_error: str | None = None
    callback_status: CallbackStatus = "none"
    callback_event: int = 0
    callback_attempts: int = 0
    callback_lease_expires_at: int | None = None
    callback_last_error: str | None = None
    callback_delivered_at: int | None = None

    def public_view(self) -> dict[str, Any]:
        """What ``GET /tasks/{task_id}`` returns: no lease internals, no input echo."""
        view: dict[str, Any] = {
            "task_id": self.task_id,
            "status": self.status,
            "session_id": self.session_id,
            "metadata": dict(self.metadata),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "expires_at": self.expires_at,
            "result": dict(self.result) if self.result is not None else None,
            "error": self.error.to_dict() if self.error is not None else None,
        }
        if self.callback_url is not None:
            view["callback"] = {
                "url": self.callback_url,
                "status": self.callback_status,
                "attempts": self.callback_attempts,
                "last_error": self.callback_last_error,
                "delivered_at": self.callback_delivered_at,
            }
        return view


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`TaskStore.claim`."""

    outcome: Literal["claimed", "busy", "done", "missing"]
    task: Task | None


def task_key(task_id: str) -> str:
    return f"task#{task_id}"


def idempotency_key(scope: str, key: str) -> str:
    # Hashed: keys are caller-chosen strings of any length, and scoped by caller so two API
    # clients choosing the same key never see each other's task.
    digest = hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()
    return f"idem#{digest}"


def endpoint_key(url: str) -> str:
    return f"endpoint#{hashlib.sha256(url.encode()).hexdigest()}"


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """A stable hash of a parsed request body, to spot a reused key with a different body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _n(value: int) -> AttributeValueTypeDef:
    return {"N": str(value)}


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class TaskStore:
    """Task records and their state transitions; ``now`` is epoch seconds from the caller."""

    def __init__(self, table_name: str, *, client: DynamoDBClient, ttl_seconds: int) -> None:
        self._table = table_name
        self._client = client
        self._ttl = ttl_seconds

    # --- ingress --------------------------------------------------------------------------------

    def create(
        self,
        *,
        task_id: str,
        user_input: str,
        session_id: str,
        callback_url: str | None,
        metadata: Mapping[str, str],
        now: int,
        idempotency: tuple[str, str, int] | None = None,
    ) -> tuple[Task, bool]:
        """Write a new ``queued`` task; returns ``(task, created)``.

        ``idempotency`` is ``(idempotency item key, request fingerprint, window seconds)``. When
        that key is live, nothing is written and the task it points to comes back with
        ``created=False``; a different fingerprint raises :class:`IdempotencyMismatchError`.
        """
        expires_at = now + self._ttl
        item: dict[str, AttributeValueTypeDef] = {
            "pk": _s(task_key(task_id)),
            "task_id": _s(task_id),
            "status": _s("queued"),
            "input": _s(user_input),
            "session_id": _s(session_id),
            "metadata": _s(json.dumps(dict(metadata), ensure_ascii=False)),
            "created_at": _n(now),
            "updated_at": _n(now),
            "expires_at": _n(expires_at),
            "runs": _n(0),
            "callback_status": _s("none"),
            "callback_event": _n(0),
            "callback_attempts": _n(0),
        }
        if callback_url is not None:
            item["callback_url"] = _s(callback_url)
        task = _task_from_item(item)
        if idempotency is None:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
            )
            return task, True

        idem_pk, fingerprint, window = idempotency
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": _s(idem_pk),
                                "task_id": _s(task_id),
                                "fingerprint": _s(fingerprint),
                                "created_at": _n(now),
                                "expires_at": _n(now + window),
                            },
                            # A key past its window is free again, even before TTL deletes it.
                            "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                            "ExpressionAttributeValues": {":now": _n(now)},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
            return task, True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
        existing = self._client.get_item(
            TableName=self._table, Key={"pk": _s(idem_pk)}, ConsistentRead=True
        ).get("Item")
        if existing is None:
            # Cancelled for a reason other than the key (a throttle, a conflicting transaction):
            # let the caller retry rather than guess.
            raise TaskStoreBusyError("the task could not be recorded right now; retry")
        previous_id = existing["task_id"]["S"]
        if existing["fingerprint"]["S"] != fingerprint:
            raise IdempotencyMismatchError(previous_id)
        previous = self.get(previous_id, now=now)
        if previous is None:
            # The window outlived the task (TASK_TTL_SECONDS < IDEMPOTENCY_WINDOW_SECONDS, which
            # the settings refuse) or the task was deleted by hand.
            raise TaskStoreBusyError(
                f"the Idempotency-Key points at task {previous_id}, which expired"
            )
        return previous, False

    def mark_enqueued(self, task_id: str, *, now: int) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={"pk": _s(task_key(task_id))},
            UpdateExpression="SET enqueued_at = if_not_exists(enqueued_at, :now)",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":now": _n(now)},
        )

    def delete_unqueued(self, task_id: str, idem_pk: str | None) -> None:
        """Undo :meth:`create` after the queue refused the task, so no orphan stays ``queued``."""
        self._client.delete_item(
            TableName=self._table,
            Key={"pk": _s(task_key(task_id))},
            ConditionExpression="attribute_not_exists(enqueued_at)",
        )
        if idem_pk is not None:
            self._client.delete_item(TableName=self._table, Key={"pk": _s(idem_pk)})

    # --- reads ----------------------------------------------------------------------------------

    def get(self, task_id: str, *, now: int) -> Task | None:
        item = self._client.get_item(
            TableName=self._table, Key={"pk": _s(task_key(task_id))}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        task = _task_from_item(item)
        # TTL deletion runs up to a few days late; an expired task reads as absent.
        return None if task.expires_at <= now else task

    # --- the task worker ------------------------------------------------------------------------

    def claim(self, task_id: str, *, owner: str, lease_seconds: int, now: int) -> Claim:
        """Move the task to ``running`` under a lease held by ``owner``.

        Claimable: ``queued``; ``running`` whose lease expired (its worker died); ``failed`` with
        ``retryable`` (an operator redrove it from the DLQ). A finished task is ``done``.
        """
        claimed = self._update(
            task_id,
            update=(
                "SET #status = :running, lease_owner = :owner, lease_expires_at = :lease, "
                "started_at = :now, updated_at = :now, expires_at = :expires ADD runs :one"
            ),
            condition=(
                "attribute_exists(pk) AND expires_at > :now AND ("
                "#status = :queued"
                " OR (#status = :running AND lease_expires_at < :now)"
                " OR (#status = :failed AND retryable = :true))"
            ),
            values={
                ":running": _s("running"),
                ":queued": _s("queued"),
                ":failed": _s("failed"),
                ":true": {"BOOL": True},
                ":owner": _s(owner),
                ":lease": _n(now + lease_seconds),
                ":now": _n(now),
                ":expires": _n(now + self._ttl),
                ":one": _n(1),
            },
            names={"#status": "status"},
        )
        if claimed is not None:
            return Claim("claimed", claimed)
        current = self.get(task_id, now=now)
        if current is None:
            return Claim("missing", None)
        if current.status == "running":
            return Claim("busy", current)
        return Claim("done", current)

    def release(self, task_id: str, *, owner: str, error: str, now: int) -> bool:
        """Give the task back to the queue after a failed try, keeping why it failed."""
        return (
            self._owned_update(
                task_id,
                owner=owner,
                now=now,
                update="SET #status = :queued, last_error = :error, updated_at = :now "
                "REMOVE lease_owner, lease_expires_at",
                values={":queued": _s("queued"), ":error": _s(error[:1000])},
                names={},
            )
            is not None
        )

    def complete(
        self,
        task_id: str,
        *,
        owner: str,
        status: Literal["succeeded", "failed"],
        result: Mapping[str, Any] | None,
        error: TaskError | None,
        retryable: bool,
        has_callback: bool,
        now: int,
    ) -> Task | None:
        """Record the outcome while still holding the lease; ``None`` if the lease was lost.

        With a callback, the same write opens a new callback event (``callback_event + 1``,
        attempts reset) so exactly one completion produces exactly one callback.
        """
        sets = [
            "#status = :status",
            "finished_at = :now",
            "updated_at = :now",
            "expires_at = :expires",
            "retryable = :retryable",
        ]
        values: dict[str, AttributeValueTypeDef] = {
            ":status": _s(status),
            ":expires": _n(now + self._ttl),
            ":retryable": {"BOOL": retryable},
        }
        removes = ["lease_owner", "lease_expires_at"]
        if result is not None:
            sets.append("#result = :result")
            values[":result"] = _s(json.dumps(result, ensure_ascii=False))
            removes.append("#error")
        if error is not None:
            sets.append("#error = :error")
            values[":error"] = _s(json.dumps(error.to_dict(), ensure_ascii=False))
            removes.append("#result")
        if result is None and error is None:
            removes += ["#result", "#error"]
        if has_callback:
            sets += [
                "callback_status = :pending",
                "callback_event = callback_event + :one",
                "callback_attempts = :zero",
            ]
            values.update({":pending": _s("pending"), ":one": _n(1), ":zero": _n(0)})
            removes += ["callback_last_error", "callback_lease_expires_at"]
        return self._owned_update(
            task_id,
            owner=owner,
            now=now,
            update="SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes),
            values=values,
            names={"#result": "result", "#error": "error"},
        )

    def _owned_update(
        self,
        task_id: str,
        *,
        owner: str,
        now: int,
        update: str,
        values: dict[str, AttributeValueTypeDef],
        names: dict[str, str],
    ) -> Task | None:
        """An update that only the holder of the task's live lease may make."""
        return self._update(
            task_id,
            update=update,
            condition="#status = :running AND lease_owner = :owner",
            values={**values, ":running": _s("running"), ":owner": _s(owner), ":now": _n(now)},
            names={"#status": "status", **names},
        )

    def mark_callback_enqueued(self, task_id: str, *, event: int, now: int) -> None:
        """``pending`` -> ``enqueued`` once the first callback message is on the queue.

        A miss means a fast callback worker already moved it on: nothing to record.
        """
        self._update_if(
            task_id,
            update="SET callback_status = :enqueued, updated_at = :now",
            condition="callback_status = :pending AND callback_event = :event",
            values={
                ":enqueued": _s("enqueued"),
                ":pending": _s("pending"),
                ":event": _n(event),
                ":now": _n(now),
            },
        )

    # --- the callback worker --------------------------------------------------------------------

    def claim_callback_attempt(
        self, task_id: str, *, event: int, attempt: int, lease_seconds: int, now: int
    ) -> Task | None:
        """Own delivery attempt ``attempt`` of callback ``event``; ``None`` if not this caller's.

        Wins when the previous attempt finished (``callback_attempts == attempt - 1``), or when
        this same attempt was claimed by a worker that died (its lease expired).
        """
        return self._update(
            task_id,
            update=(
                "SET callback_status = :delivering, callback_attempts = :attempt, "
                "callback_lease_expires_at = :lease, updated_at = :now"
            ),
            condition=(
                "callback_event = :event AND callback_status IN (:s0, :s1, :s2, :s3) AND ("
                "callback_attempts = :previous"
                " OR (callback_attempts = :attempt AND callback_status = :delivering"
                " AND callback_lease_expires_at < :now))"
            ),
            values={
                ":delivering": _s("delivering"),
                ":attempt": _n(attempt),
                ":previous": _n(attempt - 1),
                ":event": _n(event),
                ":lease": _n(now + lease_seconds),
                ":now": _n(now),
                **{f":s{i}": _s(state) for i, state in enumerate(_OPEN_CALLBACK_STATES)},
            },
        )

    def finish_callback_attempt(
        self,
        task_id: str,
        *,
        event: int,
        attempt: int,
        status: Literal["delivered", "gone", "retrying", "failed"],
        error: str | None,
        now: int,
    ) -> None:
        """Record how attempt ``attempt`` ended (only while it is still the current attempt)."""
        sets = ["callback_status = :status", "updated_at = :now"]
        values: dict[str, AttributeValueTypeDef] = {
            ":status": _s(status),
            ":now": _n(now),
            ":event": _n(event),
            ":attempt": _n(attempt),
            ":delivering": _s("delivering"),
        }
        if status == "delivered":
            sets.append("callback_delivered_at = :now")
        if error is not None:
            sets.append("callback_last_error = :error")
            values[":error"] = _s(error[:1000])
        self._update_if(
            task_id,
            update="SET " + ", ".join(sets) + " REMOVE callback_lease_expires_at",
            condition=(
                "callback_event = :event AND callback_attempts = :attempt "
                "AND callback_status = :delivering"
            ),
            values=values,
        )

    def reopen_callback(self, task_id: str, *, event: int, now: int) -> bool:
        """A ``failed`` callback starts over (an operator redrove it); False if it is not failed."""
        return self._update_if(
            task_id,
            update="SET callback_status = :retrying, callback_attempts = :zero, updated_at = :now",
            condition="callback_event = :event AND callback_status = :failed",
            values={
                ":retrying": _s("retrying"),
                ":failed": _s("failed"),
                ":zero": _n(0),
                ":event": _n(event),
                ":now": _n(now),
            },
        )

    def _update(
        self,
        task_id: str,
        *,
        update: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
        names: dict[str, str] | None = None,
    ) -> Task | None:
        """One conditional update; the task as written, or ``None`` if the condition failed."""
        response = self._conditional_update(
            task_id, update, condition, values, names, return_values="ALL_NEW"
        )
        return _task_from_item(response["Attributes"]) if response is not None else None

    def _update_if(
        self,
        task_id: str,
        *,
        update: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
    ) -> bool:
        """One conditional update whose result nobody reads (nothing sent back); did it apply?"""
        return (
            self._conditional_update(task_id, update, condition, values, None, return_values="NONE")
            is not None
        )

    def _conditional_update(
        self,
        task_id: str,
        update: str,
        condition: str,
        values: dict[str, AttributeValueTypeDef],
        names: dict[str, str] | None,
        *,
        return_values: Literal["ALL_NEW", "NONE"],
    ) -> dict[str, Any] | None:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": _s(task_key(task_id))},
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValues": return_values,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            return dict(self._client.update_item(**request))
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise

    # --- endpoints that answered 410 Gone -------------------------------------------------------

    def mark_endpoint_gone(self, url: str, *, now: int, ttl_seconds: int) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": _s(endpoint_key(url)),
                "url": _s(url),
                "gone_at": _n(now),
                "expires_at": _n(now + ttl_seconds),
            },
        )

    def endpoint_gone_since(self, url: str, *, now: int) -> int | None:
        item = self._client.get_item(
            TableName=self._table, Key={"pk": _s(endpoint_key(url))}, ConsistentRead=True
        ).get("Item")
        if item is None or int(item["expires_at"]["N"]) <= now:
            return None
        return int(item["gone_at"]["N"])


def _task_from_item(item: Mapping[str, Any]) -> Task:
    def opt_int(name: str) -> int | None:
        value = item.get(name)
        return int(value["N"]) if value is not None else None

    def opt_str(name: str) -> str | None:
        value = item.get(name)
        return str(value["S"]) if value is not None else None

    result = opt_str("result")
    error = opt_str("error")
    error_data = json.loads(error) if error is not None else None
    return Task(
        task_id=item["task_id"]["S"],
        status=item["status"]["S"],
        input=item["input"]["S"],
        session_id=item["session_id"]["S"],
        created_at=int(item["created_at"]["N"]),
        updated_at=int(item["updated_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        callback_url=opt_str("callback_url"),
        metadata=json.loads(item["metadata"]["S"]) if "metadata" in item else {},
        enqueued_at=opt_int("enqueued_at"),
        started_at=opt_int("started_at"),
        finished_at=opt_int("finished_at"),
        runs=opt_int("runs") or 0,
        lease_owner=opt_str("lease_owner"),
        lease_expires_at=opt_int("lease_expires_at"),
        result=json.loads(result) if result is not None else None,
        error=TaskError(**error_data) if error_data is not None else None,
        retryable=bool(item.get("retryable", {}).get("BOOL", False)),
        last_error=opt_str("last_error"),
        callback_status=item.get("callback_status", {}).get("S", "none"),
        callback_event=opt_int("callback_event") or 0,
        callback_attempts=opt_int("callback_attempts") or 0,
        callback_lease_expires_at=opt_int("callback_lease_expires_at"),
        callback_last_error=opt_str("callback_last_error"),
        callback_delivered_at=opt_int("callback_delivered_at"),
    )
