"""Where the memory store's database password comes from, and what to try when it is refused.

Two sources, one per setting (``runtime.memory.settings`` allows only one):

* :class:`StaticPassword`: ``MEMORY_DATABASE_PASSWORD``, fixed for the process's life.
* :class:`SecretPassword`: ``MEMORY_DATABASE_SECRET_ARN``, the database's credentials secret in
  Secrets Manager (RDS's JSON: ``{"username", "password", "host", "port", "dbname", ...}``; the
  ``password`` field is used), read through :class:`runtime.secret_cache.CachedSecret`.

Rotation. The memory stack rotates that secret with Secrets Manager's hosted *single-user*
PostgreSQL rotation, whose steps are: createSecret stores a new password as ``AWSPENDING``;
setSecret runs ``ALTER USER ... PASSWORD`` with it; testSecret logs in with it; finishSecret moves
``AWSCURRENT`` to it. From setSecret to finishSecret the database takes only the pending password
while ``AWSCURRENT`` still holds the old one. So when PostgreSQL refuses a password
(:meth:`SecretPassword.after_refusal`), the store tries, once each:

1. the ``AWSCURRENT`` password re-read from Secrets Manager, if it differs from the refused one
   (the rotation has finished; this process's cache was older);
2. else the ``AWSPENDING`` password, if there is one and it differs (the rotation is between
   setSecret and finishSecret).

A password that works is held for one cache TTL (:meth:`SecretPassword.accept`), so the window
costs one extra connection attempt per process, not one per operation. Passwords never reach
logs or exception messages.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Protocol

from runtime.memory.types import MemoryStoreUnavailableError
from runtime.secret_cache import DEFAULT_TTL_SECONDS, PENDING, CachedSecret, Clock

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class MemoryCredentialsError(MemoryStoreUnavailableError):
    """The database secret could not be read or has no password; never includes a secret value."""


class PasswordSource(Protocol):
    """The store's password: the one to use now, and the ones to try after a refusal."""

    def password(self) -> str | None:
        """The password to connect with (None: the connection needs none, e.g. a local trust)."""
        ...

    def after_refusal(self, refused: str | None) -> list[str]:
        """Other passwords worth one attempt each after ``refused`` was refused; may be empty."""
        ...

    def accept(self, password: str) -> None:
        """``password`` (one of :meth:`after_refusal`'s) worked: use it from now on."""
        ...


class StaticPassword:
    """``MEMORY_DATABASE_PASSWORD``: nothing else to try when it is refused."""

    def __init__(self, password: str | None) -> None:
        self._password = password

    def password(self) -> str | None:
        return self._password

    def after_refusal(self, refused: str | None) -> list[str]:
        return []

    def accept(self, password: str) -> None:
        return None


class SecretPassword:
    """``MEMORY_DATABASE_SECRET_ARN``: the ``password`` of the credentials secret, cached."""

    def __init__(
        self,
        secret_arn: str,
        *,
        client: SecretsManagerClient | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._secret = CachedSecret(
            secret_arn,
            parse=parse_database_password,
            what="memory database secret",
            error=MemoryCredentialsError,
            client=client,
            ttl_seconds=ttl_seconds,
            clock=clock,
        )

    @property
    def secret_arn(self) -> str:
        return self._secret.secret_arn

    def password(self) -> str:
        return self._secret.get()

    def after_refusal(self, refused: str | None) -> list[str]:
        cached = self._secret.get()
        if cached != refused:
            # Another thread has already moved on (re-read the secret, or found the pending one).
            return [cached]
        self._secret.invalidate()
        current = self._secret.get()
        if current != refused:
            return [current]
        # AWSCURRENT is the password just refused: a rotation may have changed it in the
        # database (setSecret) without promoting the new version yet (finishSecret).
        pending = self._secret.read_stage(PENDING)
        return [pending] if pending is not None and pending != refused else []

    def accept(self, password: str) -> None:
        self._secret.hold(password)


def parse_database_password(secret_string: str, arn: str) -> str:
    """The ``password`` of an RDS credentials secret's JSON; errors name ``arn``, not values."""
    data: object = None
    try:
        data = json.loads(secret_string)
    except json.JSONDecodeError:
        # Raised outside this block: the decode error holds the whole document, and as the new
        # error's __context__ it would put the secret into any logged traceback.
        valid = False
    else:
        valid = isinstance(data, dict)
    if not valid or not isinstance(data, dict):
        raise MemoryCredentialsError(
            f"memory database secret {arn} is not a JSON object; it must hold the database "
            'credentials as RDS writes them: {"username": ..., "password": ..., ...}'
        )
    password = data.get("password")
    if not isinstance(password, str) or not password:
        raise MemoryCredentialsError(
            f"memory database secret {arn} has no non-empty 'password' string; is "
            "MEMORY_DATABASE_SECRET_ARN the database's credentials secret?"
        )
    return password
