"""The in-memory store the service tests use keeps the same contract as the real stores.

The contract's tests (``tests/runtime/test_session_store_contract.py``) run here once more, against
:class:`~tests.fakes.memory_store.InMemorySessionStore`: a fake that drifted from the contract
would let the service tests pass against behaviour no real store has.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from runtime.session_store import Clock, SessionStore
from tests.fakes.clock import FakeClock
from tests.fakes.memory_store import InMemorySessionStore
from tests.runtime import test_session_store_contract as contract
from tests.runtime.conftest import TTL_SECONDS

# Every contract test, collected in this module where the fixtures below give it the fake.
globals().update({name: test for name, test in vars(contract).items() if name.startswith("test_")})


@dataclass
class MemoryStores:
    kind: str = "memory"
    # The DynamoDB item limit, so the contract's size tests have a limit to cross.
    default_limit: int = 400 * 1024

    def __call__(
        self, *, clock: Clock, ttl_seconds: int = TTL_SECONDS, max_bytes: int | None = None
    ) -> SessionStore:
        return InMemorySessionStore(
            ttl_seconds=ttl_seconds, clock=clock, max_session_bytes=max_bytes or self.default_limit
        )


@pytest.fixture
def stores() -> MemoryStores:
    return MemoryStores()


@pytest.fixture
def store(stores: MemoryStores, clock: FakeClock) -> SessionStore:
    return stores(clock=clock)


def test_an_outage_fails_every_call_until_it_ends() -> None:
    store = InMemorySessionStore()
    store.outage = ConnectionError("down")

    for call in (
        store.ping,
        lambda: store.get("s"),
        lambda: store.save("s", [], expected_version=0),
    ):
        with pytest.raises(ConnectionError, match="down"):
            call()
    store.outage = None
    assert store.ping() is True
