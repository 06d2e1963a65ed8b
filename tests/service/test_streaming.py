"""The streaming step: events cross from the step's thread to the loop, in order, with backpressure.

Each test runs its own event loop (``asyncio.run``); the steps are plain functions in threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from runtime.agent import AgentEvent, StepResult
from runtime.llm.types import LLMTimeoutError, Usage
from runtime.service.streaming import EventSink, StepStream, StepThreads, in_daemon_thread

WAIT = 5.0


def result(output: str = "done") -> StepResult:
    return StepResult(
        session_id="s",
        output=output,
        version=1,
        iterations=1,
        stop_reason="end_turn",
        usage=Usage(),
        tool_calls=(),
    )


def emitting(
    count: int, *, emitted: list[int] | None = None, before_return: threading.Event | None = None
) -> Callable[[EventSink], StepResult]:
    def step(on_event: EventSink) -> StepResult:
        for index in range(count):
            on_event(AgentEvent("thinking", f"event {index}"))
            if emitted is not None:
                emitted.append(index)
        if before_return is not None:
            assert before_return.wait(WAIT)
        return result()

    return step


def test_events_arrive_in_order_then_the_result() -> None:
    async def scenario() -> tuple[list[object], StepResult]:
        stream = StepStream(emitting(5), threads=StepThreads())
        contents: list[object] = [event.content async for event in stream.events()]
        return contents, await stream.result()

    contents, outcome = asyncio.run(scenario())

    assert contents == [f"event {index}" for index in range(5)]
    assert outcome.output == "done"


def test_the_steps_exception_comes_out_of_result_after_its_events() -> None:
    def failing(on_event: EventSink) -> StepResult:
        on_event(AgentEvent("error", "too slow"))
        raise LLMTimeoutError("too slow")

    async def scenario() -> list[str]:
        stream = StepStream(failing, threads=StepThreads())
        types: list[str] = [event.type async for event in stream.events()]
        with pytest.raises(LLMTimeoutError, match="too slow"):
            await stream.result()
        return types

    assert asyncio.run(scenario()) == ["error"]


def test_a_slow_consumer_pauses_the_step_instead_of_buffering_without_bound() -> None:
    emitted: list[int] = []

    async def scenario() -> list[object]:
        stream = StepStream(
            emitting(6, emitted=emitted), threads=StepThreads(), max_pending_events=2
        )
        # Nobody reads yet: the thread hands over two events and then waits for room.
        await asyncio.sleep(0.2)
        assert emitted == [0, 1]
        return [event.content async for event in stream.events()]

    assert asyncio.run(scenario()) == [f"event {index}" for index in range(6)]
    assert emitted == list(range(6))


def test_detaching_lets_a_blocked_step_finish_without_its_events() -> None:
    threads = StepThreads()
    emitted: list[int] = []

    async def scenario() -> StepResult:
        stream = StepStream(emitting(6, emitted=emitted), threads=threads, max_pending_events=1)
        await asyncio.sleep(0.1)
        assert emitted == [0]  # blocked on the second event: the queue holds one
        stream.detach()  # the client went away
        return await stream.result()

    assert asyncio.run(scenario()).output == "done"
    assert emitted == list(range(6))  # the step ran to its end (and would have saved)
    assert threads.wait_idle(WAIT)


def test_cancelling_the_wait_does_not_stop_the_step() -> None:
    threads = StepThreads()
    release = threading.Event()
    finished: list[str] = []

    async def scenario() -> None:
        stream = StepStream(
            emitting(1, before_return=release), threads=threads, stream_events=False
        )
        stream.call_when_finished(lambda: finished.append("callback"))
        waiter = asyncio.create_task(stream.result())
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert threads.running == 1
        release.set()
        assert (await stream.result()).output == "done"
        assert stream.done

    asyncio.run(scenario())

    assert finished == ["callback"]
    assert threads.running == 0


def test_step_threads_do_not_hold_up_an_exit() -> None:
    threads = StepThreads()
    release = threading.Event()

    async def scenario() -> None:
        StepStream(emitting(0, before_return=release), threads=threads)

    asyncio.run(scenario())

    started = time.monotonic()
    assert not threads.wait_idle(0.1)
    assert time.monotonic() - started < 1.0
    # Pool workers (this test's and earlier ones' idle workers) are all daemon threads.
    workers = [t for t in threading.enumerate() if t.name == "agent-step"]
    assert workers
    assert all(t.daemon for t in workers)
    release.set()
    assert threads.wait_idle(WAIT)


def test_in_daemon_thread_returns_or_raises() -> None:
    def boom() -> int:
        raise ConnectionError("store down")

    async def scenario() -> int:
        with pytest.raises(ConnectionError, match="store down"):
            await in_daemon_thread(boom)
        return await in_daemon_thread(lambda: threading.current_thread().daemon and 42)

    assert asyncio.run(scenario()) == 42


def test_steps_reuse_an_idle_worker_and_idle_workers_retire() -> None:
    """A pool, not a thread per step (starting a thread blocks the event loop); a burst's
    workers do not stay forever."""
    idents: list[int] = []

    def step(sink: EventSink) -> StepResult:
        idents.append(threading.get_ident())
        return emitting(0)(sink)

    def wait_for_idle_worker(threads: StepThreads) -> None:
        # The worker rejoins the idle ones just after the loop has the result: wait for that,
        # or the next step could (correctly) start a thread of its own.
        deadline = time.monotonic() + WAIT
        while threads.idle_workers < 1:
            assert time.monotonic() < deadline, "the worker never became idle"
            time.sleep(0.005)

    async def steps(threads: StepThreads, count: int) -> None:
        for _ in range(count):
            await StepStream(step, threads=threads).result()
            if count > 1:
                wait_for_idle_worker(threads)

    # Reuse: an idle timeout far above any scheduling delay of a loaded machine.
    asyncio.run(steps(StepThreads(idle_seconds=60), 3))
    assert len(idents) == 3
    assert len(set(idents)) == 1

    # Retirement: a short idle timeout, and the worker's thread ends.
    idents.clear()
    asyncio.run(steps(StepThreads(idle_seconds=0.2), 1))
    deadline = time.monotonic() + WAIT
    while any(t.ident == idents[0] for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the idle worker never retired"
        time.sleep(0.05)


def test_a_stream_without_events_drops_them_and_ends_with_the_step() -> None:
    # An HTTP step (stream_events=False): more events than the backpressure limit, none queued,
    # the step never waits for a reader, and events() ends once the step has finished.
    emitted: list[int] = []

    async def scenario() -> tuple[list[AgentEvent], StepResult, bool]:
        stream = StepStream(
            emitting(50, emitted=emitted),
            threads=StepThreads(),
            stream_events=False,
            max_pending_events=2,
        )
        events = [event async for event in stream.events()]
        return events, await asyncio.wait_for(stream.result(), WAIT), stream.done

    events, outcome, done = asyncio.run(scenario())

    assert events == []
    assert emitted == list(range(50))
    assert outcome.output == "done"
    assert done
