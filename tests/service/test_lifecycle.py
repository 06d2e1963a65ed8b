"""The session limit and the drain clock, on their own."""

from __future__ import annotations

import asyncio
import math
import threading

from runtime.service.lifecycle import Drain, SessionLimiter
from tests.fakes.clock import FakeClock


def test_the_limiter_refuses_at_once_when_full_and_a_lease_frees_one_slot_once() -> None:
    limiter = SessionLimiter(2)

    first, second = limiter.try_acquire(), limiter.try_acquire()

    assert first is not None and second is not None
    assert limiter.try_acquire() is None
    first.release()
    first.release()  # a second release must not free someone else's slot
    assert limiter.in_use == 1
    assert limiter.try_acquire() is not None
    assert limiter.try_acquire() is None


def test_slots_released_from_many_threads_are_all_counted() -> None:
    limiter = SessionLimiter(100)
    leases = [limiter.try_acquire() for _ in range(100)]
    threads = [threading.Thread(target=lease.release) for lease in leases if lease is not None]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert limiter.in_use == 0


def test_the_drain_gives_model_calls_only_the_time_left() -> None:
    clock = FakeClock(100.0)
    drain = Drain(25, clock=clock)

    assert (drain.draining, drain.remaining_seconds()) == (False, math.inf)
    drain.begin()
    clock.advance(10)
    drain.begin()  # a second signal does not restart the clock
    assert (drain.draining, drain.remaining_seconds()) == (True, 15.0)
    clock.advance(30)
    assert drain.remaining_seconds() == 0.0


def test_closing_sockets_waits_for_their_close_frames_up_to_the_grace_time() -> None:
    async def scenario() -> tuple[int, int]:
        drain = Drain(25)
        with drain.track_socket() as prompt, drain.track_socket():
            # One socket sends its close when asked; the other never does.
            async def close_when_asked() -> None:
                await drain.wait_started()
                prompt.set()

            closer = asyncio.create_task(close_when_asked())
            still_open = await drain.close_sockets(0.1)
            await closer
            return still_open, drain.open_sockets

    assert asyncio.run(scenario()) == (1, 1)
