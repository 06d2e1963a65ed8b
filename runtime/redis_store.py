"""Sessions in Redis (ElastiCache for the container service): one hash per session, same contract
as :class:`~runtime.dynamodb_store.DynamoDBSessionStore`.

Key ``<key_prefix><session_id>``, a hash::

    messages    the conversation as a JSON array of Message.to_dict() (as DynamoDB's store)
    version     incremented by every save; the optimistic-locking token
    created_at  epoch seconds of the first save, kept across saves
    updated_at  epoch seconds of the last save
    expires_at  epoch seconds after which the session no longer exists
    save_id     a random id per ``save`` call, so a retried save recognises its own write

Expiry is double: every save sets the key's Redis TTL to ``ttl_seconds`` (so memory is freed
without a sweeper), and ``expires_at`` is stored and checked against the injected clock, exactly
as the DynamoDB store does. The clock check keeps the two stores' answers identical under a
test clock, and makes ``expires_at`` the one truth when the key's TTL and the clock disagree by
the round trip. The TTL is relative (``EXPIRE key ttl``), never ``EXPIREAT expires_at``, so a
clock skewed from the server's cannot expire a session early.

Optimistic locking is one Lua script (:data:`SAVE_SCRIPT`): Redis runs a script atomically, so
"read the version, compare, write, set the TTL" is a single step no other client can interleave
with, in one round trip. ``WATCH``/``MULTI``/``EXEC`` would take three round trips on a connection
pinned for the whole exchange, and under contention it aborts every writer but one for *any*
touch of the key, leaving the retry loop (and the choice between a conflict and a retry) to the
client. The script is sent by SHA (``EVALSHA``); redis-py reloads it after a failover empties the
script cache.

redis-py retries a command after a connection error or timeout. For a save that means the script
can run twice when only its reply was lost: the second run would see its own version bump and
report a false conflict. The ``save_id`` check makes that replay a success instead.

The size limit (:data:`MAX_SESSION_BYTES`, 512 KiB) bounds what one session costs: every step
reads and rewrites the whole hash, and ElastiCache memory is provisioned, not elastic, so a few
runaway conversations must not evict everyone else's. It is a little above DynamoDB's 400 KB item
limit (Redis has no hard cap to mirror), with the same :class:`SessionTooLargeError`.

Sizing note: give the cluster a ``maxmemory-policy`` of ``volatile-ttl`` or ``noeviction``; an LRU
policy may evict a live session, which then reads as absent (a new conversation).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Final
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    MasterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
)
from redis.retry import Retry

from runtime.llm.types import Message
from runtime.session_store import (
    Clock,
    Session,
    SessionConflictError,
    SessionStoreUnavailableError,
    SessionTooLargeError,
    check_expected_version,
    decode_messages,
    encode_messages,
    new_expiry,
    wall_clock,
)

MAX_SESSION_BYTES: Final = 512 * 1024
DEFAULT_KEY_PREFIX: Final = "agent:session:"

# The hash's field names plus the largest values of its numeric fields (20 digits each) and of
# save_id: with the key and the messages, an upper bound of the bytes one session occupies.
_FIXED_FIELD_BYTES: Final = (
    sum(len(name) for name in ("messages", "version", "created_at", "updated_at", "expires_at"))
    + 4 * 20
    + len("save_id")
    + 32
)

# KEYS[1] the session key. ARGV: 1 expected version ("0": must not exist), 2 messages JSON,
# 3 now, 4 expires_at, 5 TTL seconds, 6 save_id, 7 new version.
# Returns {1, created_at} when saved (or when this very save already ran: same save_id and the
# version it wrote), {0} on a conflict.
# Versions are compared as the decimal strings Python wrote, so no Lua number conversion.
SAVE_SCRIPT: Final = """
local stored = redis.call('HMGET', KEYS[1], 'version', 'created_at', 'expires_at', 'save_id')
if stored[4] == ARGV[6] and stored[1] == ARGV[7] then
  return {1, stored[2]}
end
local live = stored[1] ~= false and tonumber(stored[3]) > tonumber(ARGV[3])
local created_at
if ARGV[1] == '0' then
  if live then return {0} end
  created_at = ARGV[3]
else
  if not live or stored[1] ~= ARGV[1] then return {0} end
  created_at = stored[2]
end
redis.call('HSET', KEYS[1], 'messages', ARGV[2], 'version', ARGV[7], 'created_at', created_at,
  'updated_at', ARGV[3], 'expires_at', ARGV[4], 'save_id', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, created_at}
"""


class RedisSessionStore:
    """:class:`~runtime.session_store.SessionStore` backed by Redis hashes.

    Thread-safe: redis-py checks a connection out of the pool per command. Build one per process
    (``runtime.wiring`` does) so every request shares its pool.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_seconds: int,
        clock: Clock = wall_clock,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        max_bytes: int = MAX_SESSION_BYTES,
        new_save_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if ttl_seconds < 1:
            raise ValueError("ttl_seconds must be positive")
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.client = client
        self.key_prefix = key_prefix
        self.max_bytes = max_bytes
        self._ttl_seconds = ttl_seconds
        self._clock = clock
        self._new_save_id = new_save_id
        self._save_script = client.register_script(SAVE_SCRIPT)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        password: str | None,
        ttl_seconds: int,
        clock: Clock = wall_clock,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        max_bytes: int = MAX_SESSION_BYTES,
        max_connections: int = 50,
        socket_timeout_seconds: float = 2.0,
        connect_timeout_seconds: float = 2.0,
        health_check_interval_seconds: int = 30,
    ) -> RedisSessionStore:
        """A store on its own connection pool for ``redis://`` or ``rediss://`` (TLS) ``url``.

        ElastiCache with in-transit encryption needs ``rediss://``; its certificate is verified
        (the redis-py default). The AUTH token comes in ``password`` (``REDIS_PASSWORD``, an ECS
        secret), never in the URL, which is configuration that ends up in logs and consoles.
        Nothing connects until the first command.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(
                "REDIS_URL must look like redis://host:port/db or rediss://host:port/db (TLS)"
            )
        if password is not None and parts.password is not None:
            raise ValueError(
                "REDIS_URL carries a password and REDIS_PASSWORD is set too; keep the AUTH "
                "token in REDIS_PASSWORD only"
            )
        pool = redis.BlockingConnectionPool.from_url(
            url,
            password=password,
            # Bounded so a burst queues for a connection (up to socket_timeout) instead of
            # opening thousands against the node; 50 covers a container's request threads.
            max_connections=max_connections,
            timeout=socket_timeout_seconds,
            # A session read or write is sub-millisecond; seconds mean the node is gone, and the
            # caller should get its 503 while it still has time to answer.
            socket_timeout=socket_timeout_seconds,
            socket_connect_timeout=connect_timeout_seconds,
            socket_keepalive=True,
            # PING a connection idle this long before reusing it: idle connections are cut by
            # NAT and failovers, and a dead one should fail the health check, not a save.
            health_check_interval=health_check_interval_seconds,
            # Two quick retries ride out a failover's dropped connections; more would only
            # delay the 503 when Redis is really down. Saves are safe to retry (save_id).
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
        )
        return cls(
            redis.Redis(connection_pool=pool),
            ttl_seconds=ttl_seconds,
            clock=clock,
            key_prefix=key_prefix,
            max_bytes=max_bytes,
        )

    def key(self, session_id: str) -> str:
        return self.key_prefix + session_id

    def ping(self) -> None:
        """Raise :class:`SessionStoreUnavailableError` unless Redis answers (readiness probe)."""
        with _reachable("ping"):
            self.client.ping()

    def close(self) -> None:
        """Close the pool's connections (process shutdown)."""
        self.client.close()

    def get(self, session_id: str) -> Session | None:
        with _reachable("read a session"):
            raw = self.client.hgetall(self.key(session_id))
        if not raw:
            return None
        session = _from_hash(session_id, raw)
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
        key = self.key(session_id)
        size = len(key.encode()) + len(body.encode()) + _FIXED_FIELD_BYTES
        if size > self.max_bytes:
            raise SessionTooLargeError(session_id, size, self.max_bytes)

        with _reachable("save a session"):
            reply = self._save_script(
                keys=[key],
                args=[
                    str(expected_version),
                    body,
                    str(now),
                    str(expires_at),
                    str(self._ttl_seconds),
                    self._new_save_id(),
                    str(new_version),
                ],
            )
        if int(reply[0]) != 1:
            raise SessionConflictError(session_id, expected_version)
        return Session(
            session_id=session_id,
            messages=tuple(messages),
            version=new_version,
            created_at=int(_text(reply[1])),
            updated_at=now,
            expires_at=expires_at,
        )


@contextmanager
def _reachable(action: str) -> Iterator[None]:
    """Turn redis-py's outage errors into the store contract's one exception type."""
    try:
        yield
    except (AuthenticationError, AuthorizationError, NoPermissionError) as exc:
        raise SessionStoreUnavailableError(
            f"Redis refused the credentials when trying to {action} ({exc}); check "
            "REDIS_PASSWORD and the user's ACL"
        ) from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise SessionStoreUnavailableError(
            f"Redis is unreachable, could not {action}: {exc}"
        ) from exc
    except (ReadOnlyError, MasterDownError, OutOfMemoryError) as exc:
        # A failover in progress (writes reached a replica) or a full node: transient for the
        # caller, whose retry lands on the new primary or after eviction frees memory.
        raise SessionStoreUnavailableError(f"Redis cannot {action} right now: {exc}") from exc


def _text(value: bytes | str) -> str:
    # The store works with either client setting of decode_responses.
    return value.decode() if isinstance(value, bytes) else value


def _from_hash(session_id: str, raw: Mapping[bytes | str, bytes | str]) -> Session:
    fields = {_text(name): _text(value) for name, value in raw.items()}
    return Session(
        session_id=session_id,
        messages=decode_messages(fields["messages"]),
        version=int(fields["version"]),
        created_at=int(fields["created_at"]),
        updated_at=int(fields["updated_at"]),
        expires_at=int(fields["expires_at"]),
    )
