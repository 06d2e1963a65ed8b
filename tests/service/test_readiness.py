"""The readiness probe: a short cache for successes, none for failures, a time limit."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runtime.service.app import ReadinessProbe, store_check
from runtime.session_store import Session
from tests.fakes.clock import FakeClock
from tests.fakes.memory_store import InMemorySessionStore


def test_a_success_is_reused_for_the_cache_time_a_failure_is_not() -> None:
    clock = FakeClock()
    calls: list[str] = []
    failing = threading.Event()

    def check() -> None:
        calls.append("probe")
        if failing.is_set():
            raise ConnectionError("down")

    async def scenario() -> list[str | None]:
        probe = ReadinessProbe(check, cache_seconds=5, clock=clock)
        answers = [await probe.reason_not_ready(), await probe.reason_not_ready()]
        failing.set()
        clock.advance(5)
        answers += [await probe.reason_not_ready(), await probe.reason_not_ready()]
        failing.clear()
        answers.append(await probe.reason_not_ready())
        return answers

    answers = asyncio.run(scenario())

    unreachable = "the session store is unreachable (ConnectionError)"
    assert answers == [None, None, unreachable, unreachable, None]
    assert len(calls) == 4  # the second answer came from the cache


def test_a_hung_store_is_not_ready_within_the_time_limit() -> None:
    release = threading.Event()

    def hang() -> None:
        release.wait(5)

    async def scenario() -> str | None:
        probe = ReadinessProbe(hang, timeout_seconds=0.05)
        return await probe.reason_not_ready()

    try:
        assert asyncio.run(scenario()) == "the session store did not answer within 0.05 s"
    finally:
        release.set()


def test_the_default_check_pings_a_store_that_can_and_reads_otherwise() -> None:
    reads: list[str] = []

    class ReadOnlyStore(InMemorySessionStore):
        ping = None  # type: ignore[assignment]  # a store without ping(), like DynamoDB's

        def get(self, session_id: str) -> Session | None:
            reads.append(session_id)
            return super().get(session_id)

    pinged = InMemorySessionStore()
    pinged.outage = ConnectionError("down")

    store_check(ReadOnlyStore())()
    assert reads == ["readiness-probe"]
    with pytest.raises(ConnectionError, match="down"):
        store_check(pinged)()
