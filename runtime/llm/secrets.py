"""The LLM provider's API key, read from Secrets Manager and cached for a short TTL.

The key is never baked into the environment: the stack passes the secret's ARN and the runtime
reads the value here. Caching for a few minutes keeps Secrets Manager off the hot path, while the
short TTL (and :meth:`SecretCache.invalidate`, which the OpenAI client calls on a 401) means a
rotated key is picked up without a redeploy.

Accepted ``SecretString`` formats:

* a plain string: the whole value, surrounding whitespace stripped, is the key;
* a JSON object with a string ``api_key`` field: the value of that field is the key (the shape
  the console's "key/value" editor writes). A value starting with ``{`` is always read as JSON,
  so a malformed object fails loudly instead of sending the raw JSON text as a bearer token.

The secret value never appears in logs or exception messages: errors name the ARN and the reason.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime.llm.types import LLMError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

Clock = Callable[[], float]

DEFAULT_TTL_SECONDS = 300.0


class SecretUnavailableError(LLMError):
    """The API key could not be read or parsed; the message never includes the secret value."""


class SecretCache:
    """Reads one secret by ARN and caches its key for ``ttl_seconds``.

    Calling the instance is the same as :meth:`get`, so it can be passed wherever a key provider
    callable is expected. It is thread-safe so a threaded container service can share one.
    """

    def __init__(
        self,
        secret_arn: str,
        *,
        client: SecretsManagerClient | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        self._arn = secret_arn
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._fetched_at = 0.0

    @property
    def secret_arn(self) -> str:
        return self._arn

    def get(self) -> str:
        """The key, from the cache while it is younger than the TTL, else from Secrets Manager."""
        with self._lock:
            now = self._clock()
            if self._value is not None and now - self._fetched_at < self._ttl:
                return self._value
            value = self._fetch()
            self._value = value
            self._fetched_at = now
            return value

    def __call__(self) -> str:
        return self.get()

    def invalidate(self) -> None:
        """Forget the cached key so the next :meth:`get` reads Secrets Manager again."""
        with self._lock:
            self._value = None

    def _secrets_client(self) -> SecretsManagerClient:
        if self._client is None:
            # boto3 costs ~100 ms of import; only pay it when a secret is actually configured.
            import boto3

            self._client = boto3.client("secretsmanager")
        return self._client

    def _fetch(self) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._secrets_client().get_secret_value(SecretId=self._arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise SecretUnavailableError(
                f"could not read LLM API key secret {self._arn}: {code}"
            ) from exc
        except BotoCoreError as exc:
            raise SecretUnavailableError(
                f"could not read LLM API key secret {self._arn}: {type(exc).__name__}"
            ) from exc
        secret_string = response.get("SecretString")
        if secret_string is None:
            raise SecretUnavailableError(
                f"LLM API key secret {self._arn} has no SecretString (binary secrets are not used)"
            )
        return _parse_key(secret_string, self._arn)


def _parse_key(secret_string: str, arn: str) -> str:
    text = secret_string.strip()
    if text.startswith("{"):
        data: object = None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            # Raised outside this block: the decode error holds the whole document, and as the
            # new error's __context__ it would put the secret into any logged traceback.
            valid = False
        else:
            valid = True
        if not valid:
            raise SecretUnavailableError(
                f"LLM API key secret {arn} starts with '{{' but is not valid JSON"
            )
        key = data.get("api_key") if isinstance(data, dict) else None
        if not isinstance(key, str) or not key.strip():
            raise SecretUnavailableError(
                f"LLM API key secret {arn} is a JSON object without a non-empty 'api_key' string"
            )
        return key.strip()
    if not text:
        raise SecretUnavailableError(f"LLM API key secret {arn} is empty")
    return text
