"""Webhook secrets with rotation overlap: the current value, plus the previous one for a while.

A rotation (the operations issue's rotation Lambda, or ``put-secret-value``) moves the old value
to the ``AWSPREVIOUS`` stage. For ``overlap_seconds`` after the new ``AWSCURRENT`` version was
created, both values are returned, so:

* outgoing callbacks carry two signatures (``webhook-signature: v1,<new> v1,<old>``) and a
  receiver still holding the old secret keeps verifying until it has switched;
* incoming webhooks signed by a source that has not switched yet still verify.

Values are cached for ``ttl_seconds`` (default 5 minutes), so a rotation reaches every warm
container within that time and Secrets Manager stays off the hot path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

DEFAULT_TTL_SECONDS = 300.0


class SecretReadError(Exception):
    """A webhook secret could not be read; names the secret, never its value."""


class RotatingSecret:
    """``values()``: ``[current]`` or, inside the overlap window, ``[current, previous]``."""

    def __init__(
        self,
        secret_arn: str,
        *,
        client: SecretsManagerClient,
        overlap_seconds: float,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._arn = secret_arn
        self._client = client
        self._overlap = overlap_seconds
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, str, float, str | None] | None = None

    def values(self) -> list[str]:
        now = self._clock()
        with self._lock:
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, *self._fetch())
            _, current, rotated_at, previous = self._cached
        if previous is not None and now - rotated_at < self._overlap:
            return [current, previous]
        return [current]

    def _fetch(self) -> tuple[str, float, str | None]:
        try:
            current = self._client.get_secret_value(SecretId=self._arn)
        except (ClientError, BotoCoreError) as exc:
            raise SecretReadError(f"could not read webhook secret {self._arn}: {exc}") from None
        value = current.get("SecretString")
        if not value:
            raise SecretReadError(f"webhook secret {self._arn} has no SecretString")
        rotated_at = current["CreatedDate"].timestamp()
        previous: str | None = None
        if self._clock() - rotated_at < self._overlap:
            try:
                previous = self._client.get_secret_value(
                    SecretId=self._arn, VersionStage="AWSPREVIOUS"
                ).get("SecretString")
            except (ClientError, BotoCoreError) as exc:
                # Never rotated: there is no AWSPREVIOUS version, and nothing to overlap with.
                never_rotated = (
                    isinstance(exc, ClientError)
                    and exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException"
                )
                if not never_rotated:
                    raise SecretReadError(
                        f"could not read the previous version of {self._arn}: {exc}"
                    ) from None
        return value.strip(), rotated_at, previous.strip() if previous else None
