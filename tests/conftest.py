"""Fixtures every test folder shares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.fakes import docker_shim
from tests.fakes.clock import FakeClock
from tests.fakes.postgres_server import PostgresServer, running_postgres
from tests.fakes.redis_server import RedisServer, running_redis

if TYPE_CHECKING:
    from tests.infra.conftest import Synthesized

AWS_TEST_REGION = "us-east-1"
docker_shim.install()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so nothing can reach (or bill) a real account."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_TEST_REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session; tests flush what they use (see fakes/redis_server)."""
    with running_redis() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL with pgvector for the session (see fakes/postgres_server)."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The whole CDK app, synthesized in-process once per session for every test that reads
    templates (tests/infra, tests/costs); see tests/infra/conftest.py."""
    from tests.infra.conftest import synthesize_app

    return synthesize_app(tmp_path_factory.mktemp("cdk.out"))


# Session-scoped work that more than one worker must not repeat when the suite runs in parallel
# (`make test` runs pytest-xdist with --dist loadgroup): every test that needs one of these
# fixtures runs on the worker that built it.
_SHARED_SESSION_FIXTURES = ("synth", "k8s_synth")


# tryfirst: xdist's own hook turns the marker into the test id's @group suffix it schedules by.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for name in _SHARED_SESSION_FIXTURES:
            if name in fixtures:
                item.add_marker(pytest.mark.xdist_group(name))
                break
