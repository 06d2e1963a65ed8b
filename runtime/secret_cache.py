"""One Secrets Manager secret, read by ARN and cached for a short TTL; shared by every reader.

The stacks pass secrets' ARNs, never their values: the runtime reads the value here, so a rotated
secret reaches running processes without a redeploy. A few minutes of cache keep Secrets Manager
off the hot path; :meth:`CachedSecret.invalidate` (a caller whose credential was just refused)
forces the next read.

Each use parses the ``SecretString`` its own way and raises its own error type:
:class:`runtime.llm.secrets.SecretCache` (the LLM API key) and
:class:`runtime.memory.credentials.SecretPassword` (the memory database's password) build on
:class:`CachedSecret`. The value never appears in logs or exception messages: errors name the
secret's ARN and the reason only, and ``parse`` functions must keep to that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Generic, TypeVar

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

Clock = Callable[[], float]
T = TypeVar("T")

DEFAULT_TTL_SECONDS: Final = 300.0
# The version a rotation has stored but not yet promoted (Secrets Manager's staging labels).
CURRENT: Final = "AWSCURRENT"
PENDING: Final = "AWSPENDING"


class CachedSecret(Generic[T]):
    """Reads one secret by ARN and caches its parsed value for ``ttl_seconds``. Thread-safe.

    ``parse(secret_string, arn)`` turns the ``SecretString`` into the value; ``error(message)``
    builds the exception raised when the secret cannot be read (``what`` names the secret in
    those messages, e.g. "LLM API key secret"). Calling the instance is :meth:`get`.
    """

    def __init__(
        self,
        secret_arn: str,
        *,
        parse: Callable[[str, str], T],
        what: str,
        error: Callable[[str], Exception],
        client: SecretsManagerClient | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        self._arn = secret_arn
        self._parse = parse
        self._what = what
        self._error = error
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._fetched_at = 0.0

    @property
    def secret_arn(self) -> str:
        return self._arn

    def get(self) -> T:
        """The value, from the cache while it is younger than the TTL, else the AWSCURRENT one."""
        with self._lock:
            now = self._clock()
            if self._value is not None and now - self._fetched_at < self._ttl:
                return self._value
            value = self._read(CURRENT)
            if value is None:  # pragma: no cover - every secret with a value has AWSCURRENT
                raise self._error(f"{self._what} {self._arn} has no AWSCURRENT version")
            self._value = value
            self._fetched_at = now
            return value

    def __call__(self) -> T:
        return self.get()

    def invalidate(self) -> None:
        """Forget the cached value so the next :meth:`get` reads Secrets Manager again."""
        with self._lock:
            self._value = None

    def hold(self, value: T) -> None:
        """Serve ``value`` for one TTL from now: a value the caller has proven to work (e.g. the
        AWSPENDING version while a rotation is between its setSecret and finishSecret steps)."""
        with self._lock:
            self._value = value
            self._fetched_at = self._clock()

    def read_stage(self, stage: str) -> T | None:
        """The version labelled ``stage``, uncached; None when no version carries that label."""
        return self._read(stage)

    def _secrets_client(self) -> SecretsManagerClient:
        if self._client is None:
            # boto3 costs ~100 ms of import; only pay it when a secret is actually configured.
            import boto3

            self._client = boto3.client("secretsmanager")
        return self._client

    def _read(self, stage: str) -> T | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            # The stage is always named: AWSCURRENT is the default, but a rotation also holds
            # AWSPENDING and AWSPREVIOUS versions, and readers ask for one on purpose.
            response = self._secrets_client().get_secret_value(
                SecretId=self._arn, VersionStage=stage
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            if stage != CURRENT and code == "ResourceNotFoundException":
                # No version has the label (no rotation in progress); a missing secret fails
                # on the AWSCURRENT read, which every caller makes first.
                return None
            raise self._error(f"could not read {self._what} {self._arn}: {code}") from exc
        except BotoCoreError as exc:
            raise self._error(
                f"could not read {self._what} {self._arn}: {type(exc).__name__}"
            ) from exc
        secret_string = response.get("SecretString")
        if secret_string is None:
            raise self._error(
                f"{self._what} {self._arn} has no SecretString (binary secrets are not used)"
            )
        return self._parse(secret_string, self._arn)
