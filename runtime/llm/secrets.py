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
  Other fields are ignored: the rotation Lambda (:mod:`runtime.rotation`) writes
  ``{"api_key": ..., "issuer": ..., "key_id": ..., "issued_at": ...}``, where ``key_id`` is what it
  needs to revoke the key one rotation later.

Rotation and this cache: a rotation keeps the previous key valid at the provider for at least one
rotation period (4 hours at the shortest, config/model.py checks), far longer than
:data:`DEFAULT_TTL_SECONDS`, so every warm cache has moved to the new key before the old one is
revoked; a 401 inside that window (a key revoked by hand) is recovered by ``invalidate``.

The secret value never appears in logs or exception messages: errors name the ARN and the reason.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from runtime.llm.types import LLMError
from runtime.secret_cache import DEFAULT_TTL_SECONDS, CachedSecret, Clock

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["DEFAULT_TTL_SECONDS", "SecretCache", "SecretUnavailableError", "parse_api_key"]


class SecretUnavailableError(LLMError):
    """The API key could not be read or parsed; the message never includes the secret value."""


class SecretCache(CachedSecret[str]):
    """Reads the LLM key secret by ARN and caches its key for ``ttl_seconds``.

    Calling the instance is the same as :meth:`get`, so it can be passed wherever a key provider
    callable is expected. It is thread-safe so a threaded container service can share one. The
    reading and caching are :class:`runtime.secret_cache.CachedSecret`'s; this class adds the
    key's formats (above) and :class:`SecretUnavailableError`.
    """

    def __init__(
        self,
        secret_arn: str,
        *,
        client: SecretsManagerClient | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(
            secret_arn,
            parse=parse_api_key,
            what="LLM API key secret",
            error=SecretUnavailableError,
            client=client,
            ttl_seconds=ttl_seconds,
            clock=clock,
        )


def parse_api_key(secret_string: str, arn: str) -> str:
    """The key in a ``SecretString`` (either format above); errors name ``arn``, never the value."""
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
