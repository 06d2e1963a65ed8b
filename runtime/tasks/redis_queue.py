"""A Redis-backed queue with SQS semantics, for clusters without SQS (Kubernetes with KEDA).

:class:`RedisQueueClient` is a duck-typed subset of the boto3 SQS client: the calls
:class:`~runtime.tasks.queues.SqsQueue` and :mod:`runtime.queue_worker` make (``send_message``,
``receive_message``, ``delete_message``, ``change_message_visibility`` and
``change_message_visibility_batch``), with the same parameters, answers and errors
(:class:`botocore.exceptions.ClientError`, which every caller already handles). So the producers
(ingress, the task and callback workers) and the container worker run unchanged on either;
:meth:`runtime.tasks.wiring.TaskClients.queue_client` picks one per queue URL.

**Queue URL.** ``redis://host:port/db#<list-name>``, or ``rediss://...`` for TLS (ElastiCache
with in-transit encryption): the part before ``#`` is the server, the fragment names the queue.
The AUTH token comes from ``REDIS_PASSWORD`` (``password=``), never from the URL, which ends up in
logs and consoles; a URL carrying one is refused. A user name (ElastiCache RBAC) may be given.

The same URL describes the queue's KEDA ``redis`` trigger: ``address`` is ``host:port``,
``databaseIndex`` the db, ``listName`` the fragment, ``enableTLS`` true for ``rediss://``, and the
password the same secret as ``REDIS_PASSWORD``.

**Keys per queue** (``<list-name>`` is the fragment)::

    <list-name>            LIST  ids of ready messages: LPUSH by producers, RPOP by consumers
                                 (FIFO). KEDA's redis scaler reads LLEN <list-name>, so this
                                 list is exactly the visible backlog.
    <list-name>:messages   HASH  id -> JSON {body, receive_count, sent, first_receive, receipt}
                                 of every message not yet deleted or dead-lettered
    <list-name>:inflight   ZSET  id -> visibility deadline (server epoch milliseconds)
    <list-name>:delayed    ZSET  id -> due time of a message sent with DelaySeconds
    <list-name>:dead       LIST  dead letters, newest first: JSON {id, body, receive_count,
                                 sent, first_receive, receipt, dead_at}

Every transition is one Lua script (sent by SHA), so it is atomic with respect to every other
client, and reads the server's clock (``TIME``), so workers with skewed clocks agree on
deadlines. Each script first promotes what is due: delayed messages whose time has come join
the back of the line like fresh sends; in-flight messages whose visibility ran out go back to
the front (they already waited their turn), or to ``<list-name>:dead`` once they have had
``max_receive_count`` receives (SQS's redrive ``maxReceiveCount``; set it to
``TASK_MAX_RECEIVE_COUNT``, so the task worker's last try is the queue's last receive). A
message found in the ready list after its last receive is dead-lettered when popped, as SQS does
on the receive attempt after the last one.

**Receipt handles** are ``<message id>:<token>``, the token new at every receive, as SQS's are:
a handle from an earlier receive cannot delete or extend a message someone else now holds.
Deleting with such a stale handle raises ``ReceiptHandleIsInvalid`` (the worker logs it; the
current holder settles the message), deleting one that is gone succeeds (SQS's idempotent
delete); a visibility change with a stale handle fails with ``ReceiptHandleIsInvalid``, and of
a message no longer in flight with ``MessageNotInflight``. Visibility 0 makes a message ready
at once.

**Long polling** (``WaitTimeSeconds``) runs the receive script every ``poll_interval_seconds``
until a message arrives or the wait is over, so no command blocks on the server and the socket
timeout only has to cover one short script.

**Promotion needs a client.** Nothing runs in Redis between calls: a delayed or postponed
message, or one held by a crashed worker, becomes ready (and counts in ``LLEN``) at the next
call on its queue by any producer or consumer. With KEDA scaling to zero and no new sends, such
a message waits: keep one worker running (``minReplicaCount: 1``) or let a periodic job receive.

Limits: no message retention period (messages stay until deleted or dead-lettered), no Redis
Cluster (one server or a primary with replicas), bodies up to 256 KiB. redis-py retries a command
after a dropped connection; if a receive's reply was the thing lost, its messages stay hidden
for their visibility timeout and then return, like an SQS receive whose response never arrived.
Needs Redis 5 or later (scripts replicate their effects, so ``TIME`` before a write is allowed).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

# redis-py and botocore are imported where used: the URL helpers serve the settings and the
# wiring of every process, the Lambdas included, whose bundle has no redis package.
if TYPE_CHECKING:
    import redis
    from botocore.exceptions import ClientError
    from redis.commands.core import Script

SCHEMES: Final = ("redis", "rediss")
# SQS's limits, so a queue moved between the two behaves alike.
MAX_MESSAGE_BYTES: Final = 262_144
MAX_DELAY_SECONDS: Final = 900
MAX_VISIBILITY_SECONDS: Final = 43_200
MAX_WAIT_SECONDS: Final = 20
MAX_BATCH: Final = 10
DEFAULT_MAX_RECEIVE_COUNT: Final = 5

_SUFFIXES: Final = (":messages", ":inflight", ":delayed", ":dead")
# Letters, digits and the punctuation of usual key names ({} for a Redis Cluster hash tag).
_LIST_NAME: Final = re.compile(r"[A-Za-z0-9_.:{}\-]{1,200}")
_MALFORMED_HANDLE: Final = "not a receipt handle of a Redis queue (<message id>:<token>)"
_URL_FORM: Final = "redis://host:6379/0#agent-tasks (or rediss:// for TLS)"
_ATTRIBUTES: Final = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "ApproximateFirstReceiveTimestamp",
)

# --- Lua --------------------------------------------------------------------------------------

# The head of every script. KEYS: 1 ready LIST, 2 messages HASH, 3 inflight ZSET, 4 delayed ZSET,
# 5 dead LIST. ARGV[1]: max receive count. Promotion takes at most 100 ids of each kind per
# call, bounding how long one script blocks the server; the rest follow on the next calls.
_PRELUDE: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local max_receives = tonumber(ARGV[1])

local function dead_letter(id, record)
  redis.call('HDEL', KEYS[2], id)
  record.id = id
  record.dead_at = now
  redis.call('LPUSH', KEYS[5], cjson.encode(record))
end

local function release(id)
  local raw = redis.call('HGET', KEYS[2], id)
  if not raw then return end
  local record = cjson.decode(raw)
  if record.receive_count >= max_receives then
    dead_letter(id, record)
  else
    redis.call('RPUSH', KEYS[1], id)
  end
end

local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[4], id)
  redis.call('LPUSH', KEYS[1], id)
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
-- Latest deadline first, so the earliest ends up at the consumers' end of the list.
for i = #expired, 1, -1 do
  redis.call('ZREM', KEYS[3], expired[i])
  release(expired[i])
end
"""

# ARGV: 2 message id, 3 body, 4 delay in milliseconds.
_SEND: Final = (
    _PRELUDE
    + """
local record = {body = ARGV[3], receive_count = 0, sent = now}
redis.call('HSET', KEYS[2], ARGV[2], cjson.encode(record))
local delay = tonumber(ARGV[4])
if delay > 0 then
  redis.call('ZADD', KEYS[4], now + delay, ARGV[2])
else
  redis.call('LPUSH', KEYS[1], ARGV[2])
end
return now
"""
)

# ARGV: 2 max messages, 3 visibility in milliseconds, 4 receipt token.
# Returns {id, body, receive_count, sent, first_receive} per message.
_RECEIVE: Final = (
    _PRELUDE
    + """
local limit = tonumber(ARGV[2])
local visibility = tonumber(ARGV[3])
local out = {}
while #out < limit do
  local id = redis.call('RPOP', KEYS[1])
  if not id then break end
  local raw = redis.call('HGET', KEYS[2], id)
  if raw then
    local record = cjson.decode(raw)
    if record.receive_count >= max_receives then
      dead_letter(id, record)
    else
      record.receive_count = record.receive_count + 1
      record.receipt = ARGV[4]
      if record.first_receive == nil then record.first_receive = now end
      redis.call('HSET', KEYS[2], id, cjson.encode(record))
      redis.call('ZADD', KEYS[3], now + visibility, id)
      out[#out + 1] = {id, record.body, record.receive_count, record.sent, record.first_receive}
    end
  end
end
return out
"""
)

# ARGV: 2 message id, 3 receipt token. Returns 1 deleted, 0 already gone, -1 stale receipt.
_DELETE: Final = (
    _PRELUDE
    + """
local raw = redis.call('HGET', KEYS[2], ARGV[2])
if not raw then return 0 end
if cjson.decode(raw).receipt ~= ARGV[3] then return -1 end
redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('ZREM', KEYS[3], ARGV[2]) == 0 then
  -- Its visibility ran out and nobody received it since: the handle is still the latest.
  redis.call('LREM', KEYS[1], 1, ARGV[2])
end
return 1
"""
)

# ARGV from 2: (message id, receipt token, visibility in milliseconds) per entry.
# Returns one code per entry: 'ok', 'ReceiptHandleIsInvalid' or 'MessageNotInflight'.
_CHANGE_VISIBILITY: Final = (
    _PRELUDE
    + """
local results = {}
for i = 2, #ARGV, 3 do
  local id, receipt, visibility = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local raw = redis.call('HGET', KEYS[2], id)
  local code = 'ok'
  if not raw or cjson.decode(raw).receipt ~= receipt then
    code = 'ReceiptHandleIsInvalid'
  elseif not redis.call('ZSCORE', KEYS[3], id) then
    code = 'MessageNotInflight'
  elseif visibility == 0 then
    redis.call('ZREM', KEYS[3], id)
    release(id)
  else
    redis.call('ZADD', KEYS[3], now + visibility, id)
  end
  results[#results + 1] = code
end
return results
"""
)

_SCRIPTS: Final = {
    "send": _SEND,
    "receive": _RECEIVE,
    "delete": _DELETE,
    "change_visibility": _CHANGE_VISIBILITY,
}


# --- queue URLs -------------------------------------------------------------------------------


def is_redis_queue_url(url: str) -> bool:
    """Whether ``url`` names a Redis queue (``redis://`` or ``rediss://``) rather than SQS."""
    return url.split("://", 1)[0].lower() in SCHEMES


@dataclass(frozen=True)
class RedisQueueAddress:
    """A parsed queue URL: the server (``server_url``, no password) and the list's name."""

    server_url: str
    list_name: str

    @property
    def keys(self) -> list[str]:
        """The queue's keys in the order the scripts' ``KEYS`` expect."""
        return [self.list_name, *(self.list_name + suffix for suffix in _SUFFIXES)]


def parse_queue_url(url: str, *, variable: str = "QueueUrl") -> RedisQueueAddress:
    """``url`` checked and split; a :class:`ValueError` naming ``variable`` and the fix if not.

    The URL itself is never quoted in an error: it may carry the password being refused.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(f"{variable} must be a Redis queue URL like {_URL_FORM}")
    if parts.password is not None:
        raise ValueError(
            f"{variable} carries a password; remove it from the URL and give the AUTH token in "
            "REDIS_PASSWORD (URLs end up in logs and consoles)"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{variable} has an invalid port; use {_URL_FORM}") from None
    if not parts.hostname:
        raise ValueError(f"{variable} names no host; use {_URL_FORM}")
    if parts.query:
        raise ValueError(f"{variable} must not have query parameters; use {_URL_FORM}")
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise ValueError(
            f"{variable} must give the database as a number after the host (/0), got "
            f"/{db}; use {_URL_FORM}"
        )
    name = parts.fragment
    if not name:
        raise ValueError(
            f"{variable} names no list: add #<list-name> (the LIST KEDA's redis scaler reads "
            f"with LLEN), as in {_URL_FORM}"
        )
    if not _LIST_NAME.fullmatch(name):
        raise ValueError(
            f"{variable}'s list name (after #) must be 1-200 letters, digits or _ . : {{ }} -"
        )
    if name.endswith(_SUFFIXES):
        raise ValueError(
            f"{variable}'s list name must not end with {', '.join(_SUFFIXES)}: those keys belong "
            "to another queue's layout"
        )
    user = f"{parts.username}@" if parts.username else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{user}{host}" + (f":{port}" if port is not None else "")
    return RedisQueueAddress(f"{parts.scheme.lower()}://{netloc}/{int(db)}", name)


# --- the client -------------------------------------------------------------------------------


@dataclass
class _Server:
    client: redis.Redis
    scripts: dict[str, Script]


class RedisQueueClient:
    """The SQS client's queue calls, served by Redis; any number of queues on any servers.

    Thread-safe, like a boto3 client: one per process (``TaskClients`` builds it), shared by the
    producers, the consumers and the visibility heartbeat. Each server gets one connection pool,
    opened at the first call on one of its queues.
    """

    def __init__(
        self,
        *,
        password: str | None = None,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        default_visibility_seconds: int = 30,
        poll_interval_seconds: float = 0.1,
        socket_timeout_seconds: float = 5.0,
        connect_timeout_seconds: float = 5.0,
        max_connections: int = 20,
    ) -> None:
        if not 1 <= max_receive_count <= 1000:
            raise ValueError("max_receive_count must be 1-1000 (SQS's maxReceiveCount range)")
        if not 0 <= default_visibility_seconds <= MAX_VISIBILITY_SECONDS:
            raise ValueError(f"default_visibility_seconds must be 0-{MAX_VISIBILITY_SECONDS}")
        if poll_interval_seconds <= 0:
            raise ValueError("poll_interval_seconds must be positive")
        self.max_receive_count = max_receive_count
        self._password = password or None
        self._default_visibility = default_visibility_seconds
        self._poll_interval = poll_interval_seconds
        self._socket_timeout = socket_timeout_seconds
        self._connect_timeout = connect_timeout_seconds
        self._max_connections = max_connections
        self._lock = threading.Lock()
        self._servers: dict[str, _Server] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **options: Any) -> RedisQueueClient:
        """A client with the AUTH token of ``REDIS_PASSWORD`` (an ECS or Kubernetes secret)."""
        return cls(password=environ.get("REDIS_PASSWORD") or None, **options)

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.client.close()

    # -- the SQS calls

    def send_message(
        self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0
    ) -> dict[str, Any]:
        operation = "SendMessage"
        _int_param(operation, "DelaySeconds", DelaySeconds, 0, MAX_DELAY_SECONDS)
        if not isinstance(MessageBody, str) or not MessageBody:
            raise _error(operation, "InvalidParameterValue", "MessageBody must be a non-empty str")
        size = len(MessageBody.encode())
        if size > MAX_MESSAGE_BYTES:
            raise _error(
                operation,
                "InvalidParameterValue",
                f"MessageBody is {size} bytes; the limit is {MAX_MESSAGE_BYTES}",
            )
        message_id = str(uuid.uuid4())
        self._run(operation, QueueUrl, "send", message_id, MessageBody, DelaySeconds * 1000)
        return {
            "MessageId": message_id,
            "MD5OfMessageBody": hashlib.md5(MessageBody.encode()).hexdigest(),  # noqa: S324 - SQS's checksum field
        }

    def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        WaitTimeSeconds: int = 0,
        VisibilityTimeout: int | None = None,
        AttributeNames: Sequence[str] = (),
        MessageSystemAttributeNames: Sequence[str] = (),
        # Accepted for callers written against SQS; no message attributes are ever stored.
        MessageAttributeNames: Sequence[str] = (),
    ) -> dict[str, Any]:
        operation = "ReceiveMessage"
        _int_param(operation, "MaxNumberOfMessages", MaxNumberOfMessages, 1, MAX_BATCH)
        _int_param(operation, "WaitTimeSeconds", WaitTimeSeconds, 0, MAX_WAIT_SECONDS)
        visibility = self._default_visibility if VisibilityTimeout is None else VisibilityTimeout
        _int_param(operation, "VisibilityTimeout", visibility, 0, MAX_VISIBILITY_SECONDS)
        wanted = set(AttributeNames) | set(MessageSystemAttributeNames)
        names = _ATTRIBUTES if "All" in wanted else tuple(a for a in _ATTRIBUTES if a in wanted)
        deadline = time.monotonic() + WaitTimeSeconds
        while True:
            token = secrets.token_hex(8)
            rows = self._run(
                operation, QueueUrl, "receive", MaxNumberOfMessages, visibility * 1000, token
            )
            if rows:
                return {"Messages": [_message(row, token, names) for row in rows]}
            left = deadline - time.monotonic()
            if left <= 0:
                return {}
            time.sleep(min(self._poll_interval, left))

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        operation = "DeleteMessage"
        message_id, token = _split_handle(operation, ReceiptHandle)
        if self._run(operation, QueueUrl, "delete", message_id, token) == -1:
            raise _error(
                operation,
                "ReceiptHandleIsInvalid",
                f"the receipt handle of message {message_id} is stale: it was received again "
                "since, and only the latest receipt handle can delete it",
            )
        return {}

    def change_message_visibility(
        self, *, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int
    ) -> dict[str, Any]:
        operation = "ChangeMessageVisibility"
        entry = {"Id": "0", "ReceiptHandle": ReceiptHandle, "VisibilityTimeout": VisibilityTimeout}
        response = self._change_visibility(operation, QueueUrl, [entry])
        for failure in response["Failed"]:
            raise _error(operation, failure["Code"], failure["Message"])
        return {}

    def change_message_visibility_batch(
        self, *, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        operation = "ChangeMessageVisibilityBatch"
        if not Entries:
            raise _error(operation, "EmptyBatchRequest", "Entries must not be empty")
        if len(Entries) > MAX_BATCH:
            raise _error(operation, "TooManyEntriesInBatchRequest", f"at most {MAX_BATCH} Entries")
        if len({entry["Id"] for entry in Entries}) != len(Entries):
            raise _error(operation, "BatchEntryIdsNotDistinct", "each entry needs its own Id")
        return self._change_visibility(operation, QueueUrl, Entries)

    # -- plumbing

    def _change_visibility(
        self, operation: str, queue_url: str, entries: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        failed: list[dict[str, Any]] = []
        valid: list[tuple[str, str, str, int]] = []  # entry Id, message id, token, seconds
        for entry in entries:
            seconds = _int_param(
                operation,
                "VisibilityTimeout",
                entry.get("VisibilityTimeout"),
                0,
                MAX_VISIBILITY_SECONDS,
            )
            handle = _parse_handle(entry["ReceiptHandle"])
            if handle is None:
                failed.append(_failure(entry["Id"], "ReceiptHandleIsInvalid", _MALFORMED_HANDLE))
                continue
            valid.append((entry["Id"], *handle, seconds))
        successful: list[dict[str, Any]] = []
        if valid:
            args: list[str | int] = []
            for _, message_id, token, seconds in valid:
                args += [message_id, token, seconds * 1000]
            codes = self._run(operation, queue_url, "change_visibility", *args)
            for (entry_id, message_id, _, _), raw_code in zip(valid, codes, strict=True):
                code = _text(raw_code)
                if code == "ok":
                    successful.append({"Id": entry_id})
                elif code == "MessageNotInflight":
                    failed.append(
                        _failure(entry_id, code, f"message {message_id} is not in flight")
                    )
                else:
                    failed.append(
                        _failure(
                            entry_id,
                            code,
                            f"the receipt handle of message {message_id} is stale or the "
                            "message is gone",
                        )
                    )
        return {"Successful": successful, "Failed": failed}

    def _run(self, operation: str, queue_url: str, script: str, *args: str | int) -> Any:
        """Run ``script`` on ``queue_url``'s keys; Redis errors become ClientErrors."""
        try:
            address = parse_queue_url(queue_url)
        except ValueError as exc:
            raise _error(operation, "InvalidAddress", str(exc)) from None
        with _as_client_error(operation):
            server = self._server(address.server_url)
            return server.scripts[script](
                keys=address.keys, args=[self.max_receive_count, *args], client=server.client
            )

    def _server(self, server_url: str) -> _Server:
        with self._lock:
            server = self._servers.get(server_url)
            if server is None:
                server = self._servers[server_url] = self._connect(server_url)
            return server

    def _connect(self, server_url: str) -> _Server:
        import redis
        from redis.backoff import ExponentialWithJitterBackoff
        from redis.retry import Retry

        pool = redis.BlockingConnectionPool.from_url(
            server_url,
            password=self._password,
            max_connections=self._max_connections,
            timeout=self._socket_timeout,
            # Every command is a short script (long polls are client-side), so seconds without
            # an answer mean the node is gone: fail the call, and the worker backs off.
            socket_timeout=self._socket_timeout,
            socket_connect_timeout=self._connect_timeout,
            socket_keepalive=True,
            # Idle connections are cut by NAT and failovers; PING one idle this long first.
            health_check_interval=30,
            # Rides out a failover's dropped connections, as the session store does.
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
        )
        client = redis.Redis(connection_pool=pool)
        # Registered once per server; redis-py sends EVALSHA and reloads after a failover.
        scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}
        return _Server(client, scripts)


# --- helpers ----------------------------------------------------------------------------------


def _message(row: Sequence[Any], token: str, names: Sequence[str]) -> dict[str, Any]:
    raw_id, body, receive_count, sent, first_receive = row
    message_id = _text(raw_id)
    values = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(sent),
        "ApproximateFirstReceiveTimestamp": str(first_receive),
    }
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"{message_id}:{token}",
        "Body": _text(body),
        "Attributes": {name: values[name] for name in names},
    }


def _parse_handle(handle: object) -> tuple[str, str] | None:
    """``(message id, token)`` of a receipt handle, None if it is not one."""
    if isinstance(handle, str):
        message_id, sep, token = handle.partition(":")
        if sep and message_id and token:
            return message_id, token
    return None


def _split_handle(operation: str, handle: object) -> tuple[str, str]:
    parsed = _parse_handle(handle)
    if parsed is None:
        raise _error(operation, "ReceiptHandleIsInvalid", _MALFORMED_HANDLE)
    return parsed


def _int_param(operation: str, name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _error(operation, "InvalidParameterValue", f"{name} must be an integer {low}-{high}")
    return value


def _failure(entry_id: str, code: str, message: str) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": True, "Code": code, "Message": message}


def _error(operation: str, code: str, message: str) -> ClientError:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@contextmanager
def _as_client_error(operation: str) -> Iterator[None]:
    """Redis failures as the ClientError every queue caller already handles (backs off, 503s)."""
    import redis
    from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError

    try:
        yield
    except (AuthenticationError, AuthorizationError, NoPermissionError) as exc:
        raise _error(
            operation,
            type(exc).__name__,
            f"Redis refused the credentials ({exc}); check REDIS_PASSWORD and the user's ACL",
        ) from exc
    except redis.RedisError as exc:
        raise _error(operation, type(exc).__name__, f"Redis: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
