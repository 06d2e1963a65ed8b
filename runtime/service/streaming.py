"""The streaming variant of the agent step: :func:`runtime.agent.run_step` for asyncio code.

The model clients, the stores and the tools are synchronous, so a step runs in a worker thread and
its :class:`~runtime.agent.AgentEvent` s cross to the event loop through an :class:`asyncio.Queue`,
each handed over with ``loop.call_soon_threadsafe`` (the only thread-safe way into a loop)::

    stream = StepStream(lambda on_event: run_step(..., on_event=on_event), threads=threads)
    async for event in stream.events():   # thinking, action, ..., result | error
        await websocket.send_json(event.to_dict())
    result = await stream.result()          # the StepResult, or the step's exception

Rules, and why:

* **Backpressure.** At most ``max_pending_events`` events wait in the queue; past that the step's
  thread blocks in ``on_event`` until the consumer catches up. A slow client therefore pauses its
  own step (between model calls) instead of growing the process's memory without bound.
* **A step is never killed.** Cancelling the consumer, or the client disconnecting, does not stop
  the thread: nothing can safely interrupt a thread, and a step stopped between its model calls
  and its save would lose a turn the model was already paid for. The consumer calls
  :meth:`StepStream.detach`; from then on the thread drops its events without waiting, finishes,
  and saves. The client can read the saved turn with ``GET /sessions/{id}``.
* **Threads do not hold up the exit.** Step threads are daemon threads, counted by
  :class:`StepThreads`, so the server waits for them only as long as its drain allows (a thread
  still running when the process exits dies with it; its save is one conditional write, so the
  session holds the whole turn or none of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import math
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Final, TypeVar

from runtime.agent import AgentEvent, StepResult

EventSink = Callable[[AgentEvent], None]
StepFunction = Callable[[EventSink], StepResult]
T = TypeVar("T")

DEFAULT_MAX_PENDING_EVENTS = 16


class _End:
    """Queued after the last event: the step's thread has finished."""


_END: Final = _End()


class StepThreads:
    """The step threads: a pool of daemon workers, and a count of the steps still running.

    A pool, not a thread per step: ``Thread.start`` blocks its caller until the new thread has
    started, which on the event loop stalled every request (the service benchmark's profile:
    a quarter of the loop's time). Workers are daemon threads (see the module docstring), made
    when no idle one is left and retired after ``idle_seconds`` without work, so a burst does
    not leave its threads behind for good.
    """

    def __init__(self, *, idle_seconds: float = 60.0) -> None:
        self._running = 0
        # Workers waiting for work and not yet promised to a submitted step.
        self._idle_workers = 0
        self._idle = threading.Condition()
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle_seconds = idle_seconds

    @property
    def running(self) -> int:
        with self._idle:
            return self._running

    @property
    def idle_workers(self) -> int:
        """Workers waiting for work (a worker rejoins them just after its step's result is out)."""
        with self._idle:
            return self._idle_workers

    def wait_idle(self, timeout: float) -> bool:
        """Block until no step runs or ``timeout`` (maybe infinite) passes; True if none is left."""
        wait = None if math.isinf(timeout) else max(0.0, timeout)
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout=wait)

    def submit(self, work: Callable[[], None], *, name: str = "agent-step") -> None:
        """Run ``work`` on an idle worker, or on a new one when none is idle.

        ``work`` counts as running until it calls :meth:`finished` (a step does so before it
        hands its result to the loop, so whoever sees the result also sees the count drop).
        """
        with self._idle:
            self._running += 1
            spawn = self._idle_workers == 0
            if not spawn:
                self._idle_workers -= 1  # promised: that worker takes this item
        # The step runs in the submitter's context: its log lines and usage metrics carry the
        # request's correlation id although a worker thread runs it.
        self._work.put(functools.partial(contextvars.copy_context().run, work))
        if spawn:
            try:
                threading.Thread(target=self._worker, name=name, daemon=True).start()
            except BaseException:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()
                raise

    def _worker(self) -> None:
        while True:
            try:
                work = self._work.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._idle:
                    if self._idle_workers > 0:
                        # Nothing is promised to this worker: it may retire.
                        self._idle_workers -= 1
                        return
                continue  # an item was promised to an idle worker: this one takes it
            work()
            with self._idle:
                self._idle_workers += 1

    def finished(self) -> None:
        """A submitted piece of work is done (see :meth:`submit`)."""
        with self._idle:
            self._running -= 1
            self._idle.notify_all()


class StepStream:
    """One step running in its own thread, its events readable from the event loop.

    Create it on the event loop (it starts the thread at once). ``stream_events=False`` is for
    callers that only want the result: events are dropped in the thread and never queued.
    """

    def __init__(
        self,
        step: StepFunction,
        *,
        threads: StepThreads,
        stream_events: bool = True,
        max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS,
        name: str = "agent-step",
    ) -> None:
        if max_pending_events < 1:
            raise ValueError("max_pending_events must be at least 1")
        self._step = step
        self._threads = threads
        self._loop = asyncio.get_running_loop()
        # No queue when nobody reads the events (an HTTP step): nothing is ever put in it.
        self._queue: asyncio.Queue[AgentEvent | _End] | None = (
            asyncio.Queue() if stream_events else None
        )
        self._max_pending = max_pending_events
        # Guarded by _room: events handed to the loop and not yet taken by the consumer.
        self._pending = 0
        self._attached = stream_events
        self._room = threading.Condition()
        self._finished = asyncio.Event()
        self._result: StepResult | None = None
        self._error: BaseException | None = None
        self._on_finished: list[Callable[[], None]] = []
        # A daemon worker: see the module docstring ("Threads do not hold up the exit").
        threads.submit(self._run, name=name)

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    async def events(self) -> AsyncIterator[AgentEvent]:
        """The step's events in order, ending when the step has finished (either way)."""
        if self._queue is None:  # stream_events=False: there are none
            await self._finished.wait()
            return
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                return
            with self._room:
                self._pending -= 1
                self._room.notify()
            yield item

    async def result(self) -> StepResult:
        """Wait for the step; its result, or the exception it raised.

        Cancelling the wait leaves the step running (see the module docstring).
        """
        await self._finished.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None  # set together with _finished when there is no error
        return self._result

    def detach(self) -> None:
        """Nobody reads the events any more: drop them, and never block the step's thread."""
        with self._room:
            self._attached = False
            self._room.notify_all()

    def call_when_finished(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop once the thread has finished (now, if it has)."""
        if self.done:
            callback()
        else:
            self._on_finished.append(callback)

    # --- the worker thread's side -------------------------------------------------------------

    def _run(self) -> None:
        result: StepResult | None = None
        error: BaseException | None = None
        try:
            result = self._step(self._emit)
        except BaseException as exc:  # every outcome crosses to the loop; none is lost here
            error = exc
        finally:
            self._threads.finished()
        self._to_loop(self._finish, result, error)

    def _emit(self, event: AgentEvent) -> None:
        if not self._attached:
            # Read without the lock: it only ever turns False, and then stays so.
            return
        with self._room:
            while self._attached and self._pending >= self._max_pending:
                self._room.wait()
            if not self._attached:
                return
            self._pending += 1
        assert self._queue is not None  # attached streams have one
        self._to_loop(self._queue.put_nowait, event)

    def _to_loop(self, callback: Callable[..., None], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            # The loop is closed: the server has exited and nobody is left to tell.
            self.detach()

    # --- back on the loop ---------------------------------------------------------------------

    def _finish(self, result: StepResult | None, error: BaseException | None) -> None:
        self._result = result
        self._error = error
        self._finished.set()
        if self._queue is not None:
            self._queue.put_nowait(_END)
        callbacks, self._on_finished = self._on_finished, []
        for callback in callbacks:
            callback()


async def in_daemon_thread(function: Callable[[], T]) -> T:
    """``function()`` in a daemon thread, awaited from the loop.

    For blocking calls that must not hold up the process's exit the way the default executor's
    threads do (the interpreter joins those): a store read stuck on a dead connection, a probe.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            value = function()
        except BaseException as exc:
            settle = functools.partial(_set_exception, future, exc)
        else:
            settle = functools.partial(_set_result, future, value)
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=run, name="blocking-call", daemon=True).start()
    return await future


def _set_result(future: asyncio.Future[T], value: T) -> None:
    if not future.done():  # a cancelled wait leaves the future cancelled
        future.set_result(value)


def _set_exception(future: asyncio.Future[T], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
