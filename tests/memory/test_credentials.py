"""The memory store's password from Secrets Manager, through a rotation, on a real PostgreSQL.

Each test gets its own login role (the session's server is shared; its own user's password is
never touched) and moto's Secrets Manager. A rotation is played the way Secrets Manager's hosted
single-user PostgreSQL rotation plays it: createSecret puts the new password as AWSPENDING,
setSecret runs ALTER ROLE, finishSecret moves AWSCURRENT. The store, built once like a running
task's, must keep working through every step, without being rebuilt.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg import sql

from runtime.memory.credentials import (
    MemoryCredentialsError,
    SecretPassword,
    StaticPassword,
    parse_database_password,
)
from runtime.memory.embedders import HashingEmbedder
from runtime.memory.factory import build_memory_tools
from runtime.memory.settings import MemorySettings
from runtime.memory.store import PgVectorMemoryStore
from runtime.memory.types import MemoryStoreUnavailableError
from runtime.settings import SettingsError
from tests.fakes.clock import FakeClock
from tests.fakes.postgres_server import PostgresServer
from tests.memory.conftest import DIMENSIONS

pytestmark = pytest.mark.timeout(60)

FIRST = "first-password-Aa1"
SECOND = "second-password-Bb2"
THIRD = "third-password-Cc3"


@dataclass
class Role:
    name: str
    password: str
    server: PostgresServer

    def set_password(self, password: str) -> None:
        """What the rotation's setSecret step does: ALTER USER ... PASSWORD."""
        with self.server.connect(autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(self.name), sql.Literal(password)
                )
            )
        self.password = password


@pytest.fixture
def role(postgres_server: PostgresServer) -> Iterator[Role]:
    """A login role of its own that may create tables in ``public`` (pgvector made by admin)."""
    name = f"rot_{uuid.uuid4().hex[:10]}"
    with postgres_server.connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(FIRST)
            )
        )
        conn.execute(
            sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(sql.Identifier(name))
        )
    yield Role(name, FIRST, postgres_server)
    with postgres_server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def secrets(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def rds_secret(role: Role, password: str) -> str:
    """The JSON RDS keeps in a cluster's credentials secret (the fields the rotation needs)."""
    return json.dumps(
        {
            "engine": "postgres",
            "host": role.server.host,
            "port": role.server.port,
            "username": role.name,
            "password": password,
            "dbname": role.server.database,
        }
    )


def make_secret(secrets: Any, role: Role) -> str:
    return str(
        secrets.create_secret(Name=f"memory-{role.name}", SecretString=rds_secret(role, FIRST))[
            "ARN"
        ]
    )


def current_version(secrets: Any, arn: str) -> str:
    return str(secrets.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["VersionId"])


def create_pending(secrets: Any, arn: str, role: Role, password: str) -> str:
    """The rotation's createSecret step: the new password as AWSPENDING."""
    token = str(uuid.uuid4())
    secrets.put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=rds_secret(role, password),
        VersionStages=["AWSPENDING"],
    )
    return token


def finish(secrets: Any, arn: str, token: str) -> None:
    """The rotation's finishSecret step: AWSCURRENT moves to the pending version."""
    secrets.update_secret_version_stage(
        SecretId=arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
        RemoveFromVersionId=current_version(secrets, arn),
    )


def make_store(role: Role, credentials: Any, table: str) -> PgVectorMemoryStore:
    return PgVectorMemoryStore.from_url(
        role.server.url,
        user=role.name,
        credentials=credentials,
        embedder=HashingEmbedder(DIMENSIONS),
        ttl_seconds=3600,
        table=table,
        connect_timeout_seconds=2,
    )


class CountingSecrets:
    """Wraps the moto client to count reads per staging label."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.reads: list[str] = []

    def get_secret_value(self, **kwargs: Any) -> Any:
        self.reads.append(kwargs.get("VersionStage", "AWSCURRENT"))
        return self._client.get_secret_value(**kwargs)


# --- rotation, end to end ------------------------------------------------------------------------


def test_the_store_follows_a_finished_rotation_without_a_restart(
    role: Role, secrets: Any, clock: FakeClock
) -> None:
    arn = make_secret(secrets, role)
    counting = CountingSecrets(secrets)
    credentials = SecretPassword(arn, client=counting, ttl_seconds=300, clock=clock)  # type: ignore[arg-type]
    store = make_store(role, credentials, f"mem_{role.name}")
    store.add("s", "the user's dog is called Rex")
    assert counting.reads == ["AWSCURRENT"]

    # A whole rotation between two calls: the cached password (still fresh) is now refused.
    token = create_pending(secrets, arn, role, SECOND)
    role.set_password(SECOND)
    finish(secrets, arn, token)

    store.add("s", "the user lives in Lisbon")
    [hit] = store.search("s", "dog Rex", k=1)
    assert hit.memory.content == "the user's dog is called Rex"
    # One re-read of AWSCURRENT after the refusal, then the new password from the cache.
    assert counting.reads == ["AWSCURRENT", "AWSCURRENT"]


def test_the_store_works_between_set_secret_and_finish_secret(
    role: Role, secrets: Any, clock: FakeClock
) -> None:
    arn = make_secret(secrets, role)
    counting = CountingSecrets(secrets)
    credentials = SecretPassword(arn, client=counting, ttl_seconds=300, clock=clock)  # type: ignore[arg-type]
    store = make_store(role, credentials, f"mem_{role.name}")
    store.add("s", "the project deadline is in March")

    # createSecret and setSecret have run; finishSecret has not: AWSCURRENT holds a password
    # the database no longer takes, AWSPENDING the one it does.
    token = create_pending(secrets, arn, role, SECOND)
    role.set_password(SECOND)

    assert [hit.memory.content for hit in store.search("s", "project deadline", k=1)] == [
        "the project deadline is in March"
    ]
    assert counting.reads == ["AWSCURRENT", "AWSCURRENT", "AWSPENDING"]
    # The pending password that worked is held for the TTL: no more refusals or reads.
    store.add("s", "the user's favourite colour is green")
    assert counting.reads == ["AWSCURRENT", "AWSCURRENT", "AWSPENDING"]

    finish(secrets, arn, token)
    clock.advance(300)
    store.ping()
    assert counting.reads[-1] == "AWSCURRENT"
    # And the next rotation, whole, works too.
    token = create_pending(secrets, arn, role, THIRD)
    role.set_password(THIRD)
    finish(secrets, arn, token)
    store.ping()


def test_a_password_the_database_refuses_everywhere_fails_clearly(
    role: Role, secrets: Any, caplog: pytest.LogCaptureFixture
) -> None:
    arn = make_secret(secrets, role)
    # The database's password changed by hand; neither secret version knows it.
    create_pending(secrets, arn, role, SECOND)
    role.set_password(THIRD)
    store = make_store(role, SecretPassword(arn, client=secrets), f"mem_{role.name}")
    # The runtime's and the driver's own logs (botocore's debug log prints responses verbatim,
    # and is never on in a deployment).
    caplog.set_level(logging.DEBUG, logger="runtime")
    caplog.set_level(logging.DEBUG, logger="psycopg")
    with pytest.raises(MemoryStoreUnavailableError, match="refused the credentials") as raised:
        store.ping()
    message = str(raised.value)
    assert "MEMORY_DATABASE_SECRET_ARN" in message
    for password in (FIRST, SECOND, THIRD):
        assert password not in message
        assert password not in caplog.text
    assert isinstance(raised.value.__cause__, psycopg.OperationalError)


def test_a_static_password_is_tried_once(role: Role) -> None:
    role.set_password(SECOND)
    store = make_store(role, StaticPassword(FIRST), f"mem_{role.name}")
    with pytest.raises(MemoryStoreUnavailableError, match="MEMORY_DATABASE_PASSWORD"):
        store.ping()
    assert StaticPassword(FIRST).after_refusal(FIRST) == []


def test_an_outage_is_not_retried_with_other_passwords(secrets: Any, role: Role) -> None:
    arn = make_secret(secrets, role)
    counting = CountingSecrets(secrets)
    credentials = SecretPassword(arn, client=counting)  # type: ignore[arg-type]
    store = PgVectorMemoryStore.from_url(
        "postgresql://127.0.0.1:1/db",
        user=role.name,
        credentials=credentials,
        embedder=HashingEmbedder(DIMENSIONS),
        ttl_seconds=60,
        connect_timeout_seconds=2,
    )
    with pytest.raises(MemoryStoreUnavailableError, match="unavailable"):
        store.ping()
    assert counting.reads == ["AWSCURRENT"]


# --- the secret itself ---------------------------------------------------------------------------


def test_a_missing_secret_names_its_arn(secrets: Any, role: Role) -> None:
    arn = make_secret(secrets, role)
    missing = arn.replace("memory-", "nothere-")
    store = make_store(role, SecretPassword(missing, client=secrets), f"mem_{role.name}")
    with pytest.raises(MemoryCredentialsError, match="ResourceNotFoundException") as raised:
        store.ping()
    assert missing in str(raised.value)
    # The store contract's outage type: the memory tools report it like any outage.
    assert isinstance(raised.value, MemoryStoreUnavailableError)


@pytest.mark.parametrize(
    ("secret_string", "reason"),
    [
        ("not json " + FIRST, "is not a JSON object"),
        (json.dumps([FIRST]), "is not a JSON object"),
        (json.dumps({"username": "u"}), "no non-empty 'password'"),
        (json.dumps({"username": "u", "password": ""}), "no non-empty 'password'"),
        (json.dumps({"password": 12345}), "no non-empty 'password'"),
    ],
)
def test_a_secret_without_a_password_fails_without_echoing_it(
    secret_string: str, reason: str
) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:memory-AbCdEf"
    with pytest.raises(MemoryCredentialsError, match=reason) as raised:
        parse_database_password(secret_string, arn)
    assert arn in str(raised.value)
    assert FIRST not in str(raised.value)
    assert raised.value.__context__ is None or FIRST not in str(raised.value.__context__)


def test_the_password_field_of_an_rds_secret(secrets: Any, role: Role) -> None:
    arn = make_secret(secrets, role)
    assert SecretPassword(arn, client=secrets).password() == FIRST


# --- settings and the factory --------------------------------------------------------------------


def env(role: Role, **extra: str) -> dict[str, str]:
    return {
        "SESSION_TTL_SECONDS": "3600",
        "MEMORY_STORE": "pgvector",
        "MEMORY_DATABASE_URL": role.server.url,
        "MEMORY_DATABASE_USER": role.name,
        "MEMORY_EMBEDDER": "hashing",
        **extra,
    }


def test_the_factory_reads_the_password_from_the_secret(secrets: Any, role: Role) -> None:
    arn = make_secret(secrets, role)
    tools = build_memory_tools(env(role, MEMORY_DATABASE_SECRET_ARN=arn), secrets_client=secrets)
    assert {tool.name for tool in tools} == {"remember", "recall"}
    settings = MemorySettings.from_env(env(role, MEMORY_DATABASE_SECRET_ARN=arn))
    assert settings.memory_database_secret_arn == arn
    assert settings.memory_database_password is None


def test_password_and_secret_arn_together_are_refused(role: Role) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:memory-AbCdEf"
    with pytest.raises(
        SettingsError,
        match="MEMORY_DATABASE_PASSWORD and MEMORY_DATABASE_SECRET_ARN are both set; keep one",
    ) as raised:
        MemorySettings.from_env(
            env(role, MEMORY_DATABASE_PASSWORD=FIRST, MEMORY_DATABASE_SECRET_ARN=arn)
        )
    assert FIRST not in str(raised.value)


def test_a_secret_arn_must_be_a_secrets_manager_arn(role: Role) -> None:
    with pytest.raises(SettingsError, match="MEMORY_DATABASE_SECRET_ARN"):
        MemorySettings.from_env(env(role, MEMORY_DATABASE_SECRET_ARN="memory-secret"))
