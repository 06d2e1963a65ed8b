"""The container service's ASGI app: the sessions API over HTTP and a WebSocket, health, readiness.

Routes (OpenAPI at ``/openapi.json``, interactive docs at ``/docs``)::

    POST /sessions/{session_id}/messages   one synchronous step, as the Lambda API answers it
    GET  /sessions/{session_id}            the stored session
    WS   /agent/{session_id}               steps streamed as frames (protocol below)
    GET  /healthz                          liveness: the process answers
    GET  /readyz                           readiness: the store answers, the process is not draining
    GET  /ui/                              the chat page, no token (SERVICE_UI; runtime.service.ui)

The request rules and the error mapping are :mod:`runtime.sessions_api`'s, shared with the Lambda
adapter. Everything blocking (steps, store reads, probes) runs in worker threads, so the event
loop only moves bytes and one slow model call never delays another session's frames.

WebSocket protocol. The client sends text frames ``{"message": "...", "expected_version": 3}``
(version optional), one step at a time; the server answers each with frames::

    {"type": "thinking", "content": "I will use the calculator."}
    {"type": "action",   "content": {"id", "tool", "arguments", "output", "is_error"}}
    {"type": "result",   "content": "<the answer>", "session_id", "version", "iterations",
                         "stop_reason", "usage": {"input_tokens", "output_tokens"}}
    {"type": "error",    "content": "<what went wrong>", "code": "llm_timeout", "retry_after"?: 10}

A step ends with exactly one ``result`` or ``error`` frame. A frame that is not valid (not JSON,
wrong fields, over the size limit, binary, or sent while a step runs) gets an ``error`` frame with
the same codes as the HTTP API (``busy`` for the last) and the connection stays open. Close codes:
1013 at capacity (retry later), 1001 when the server shuts down, 1008 for an invalid session id,
1009 for a frame over the protocol's hard cap (see :mod:`runtime.service.settings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect

from runtime.agent import StepResult, run_step
from runtime.api_errors import ApiError
from runtime.llm.types import LLMError, LLMRateLimitedError, LLMTimeoutError
from runtime.observability.correlation import RequestIdMiddleware
from runtime.service.auth import BearerAuth
from runtime.service.lifecycle import Drain, Lease, SessionLimiter
from runtime.service.settings import ServiceSettings
from runtime.service.streaming import (
    EventSink,
    StepStream,
    StepThreads,
    in_daemon_thread,
)
from runtime.service.ui import mount_ui
from runtime.session_store import SessionStore, SessionStoreUnavailableError
from runtime.sessions_api import (
    STEP_FAILURES,
    StepFailure,
    StepRequest,
    check_session_id,
    parse_step_request,
    session_response,
    step_failure,
    step_response,
)
from runtime.wiring import DeadlineLLM, Dependencies

logger = logging.getLogger("runtime.service")

# A probe answer is reused this long: load balancers and orchestrators probe every few seconds
# per target, and the store should not see a read per probe.
READINESS_CACHE_SECONDS = 5.0
# Shorter than any probe's own timeout, so a hung store gives a clear 503, not a probe timeout.
READINESS_TIMEOUT_SECONDS = 2.0
# Read by the default readiness check of stores without ping(): one key that never exists costs
# one cheap read and proves both the network path and the read permission.
READINESS_SENTINEL_SESSION_ID = "readiness-probe"

# Frames a client sees while a step runs; its result and error become the step's last frame.
_STREAMED_EVENTS = frozenset({"thinking", "action"})


# For the OpenAPI document only: the routes build their JSON with runtime.sessions_api, as the
# Lambda does, and these models describe it.


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class UsageAnswer(BaseModel):
    input_tokens: int
    output_tokens: int


class StepAnswer(BaseModel):
    session_id: str
    output: str
    version: int
    iterations: int
    stop_reason: str
    usage: UsageAnswer


class SessionAnswer(BaseModel):
    session_id: str
    version: int
    messages: list[dict[str, Any]]
    created_at: int
    updated_at: int
    expires_at: int


class ReadinessProbe:
    """Whether the session store answers, from a short cache and with a time limit.

    One probe runs at a time (callers during it wait for its answer), so a slow store is not hit
    by a pile of probes. Only successes are cached: a store that comes back is seen at once.
    """

    def __init__(
        self,
        check: Callable[[], None],
        *,
        cache_seconds: float = READINESS_CACHE_SECONDS,
        timeout_seconds: float = READINESS_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._cache_seconds = cache_seconds
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        self._ready_until = -math.inf
        self._lock = asyncio.Lock()

    async def reason_not_ready(self) -> str | None:
        async with self._lock:
            if self._clock() < self._ready_until:
                return None
            try:
                await asyncio.wait_for(in_daemon_thread(self._check), self._timeout_seconds)
            except TimeoutError:
                logger.warning("readiness check timed out")
                return f"the session store did not answer within {self._timeout_seconds:g} s"
            except Exception as exc:
                logger.warning("readiness check failed", exc_info=True)
                # The type only: a driver's message can carry hosts and internals.
                return f"the session store is unreachable ({type(exc).__name__})"
            self._ready_until = self._clock() + self._cache_seconds
            return None


def store_check(store: SessionStore) -> Callable[[], None]:
    """The default readiness check: ``store.ping()`` when the store has one, else a read."""
    ping = getattr(store, "ping", None)
    if callable(ping):

        def ping_store() -> None:
            if ping() is False:
                raise ConnectionError("the session store did not answer the ping")

        return ping_store

    def read_sentinel() -> None:
        store.get(READINESS_SENTINEL_SESSION_ID)

    return read_sentinel


@dataclass(frozen=True)
class ServiceState:
    """What the routes share, and what the server needs to drain them (``app.state.service``)."""

    deps: Dependencies
    settings: ServiceSettings
    limiter: SessionLimiter
    drain: Drain
    steps: StepThreads
    readiness: ReadinessProbe
    request_limit_bytes: int


def service_state(app: FastAPI) -> ServiceState:
    state = getattr(app.state, "service", None)
    if not isinstance(state, ServiceState):
        raise TypeError("not an app built by runtime.service.app.create_app")
    return state


def create_app(
    *,
    deps: Dependencies,
    settings: ServiceSettings,
    ready_check: Callable[[], None] | None = None,
) -> FastAPI:
    """The service. ``ready_check`` replaces the store check of ``/readyz`` (raise = not ready)."""
    state = ServiceState(
        deps=deps,
        settings=settings,
        limiter=SessionLimiter(settings.max_concurrent_sessions),
        drain=Drain(settings.drain_seconds),
        steps=StepThreads(),
        readiness=ReadinessProbe(ready_check or store_check(deps.store)),
        request_limit_bytes=settings.request_limit_bytes(deps.settings.max_body_bytes),
    )
    app = FastAPI(
        title="Agent service",
        summary="The agent's sessions API over HTTP and WebSocket",
        description=__doc__ or "",
        version="1",
    )
    app.state.service = state
    _register_error_handlers(app)
    if settings.auth_token is not None:
        app.add_middleware(BearerAuth, token=settings.auth_token.get_secret_value())

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        # Nothing external on purpose: a store outage must not get healthy processes restarted.
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: the session store answers and the process is not draining",
        responses={200: {"description": "Ready"}, 503: {"model": ErrorBody}},
    )
    async def readyz() -> JSONResponse:
        # No configuration check here: create_app only runs with validated settings.
        if state.drain.draining:
            return _error_response(ApiError(503, "draining", "the service is shutting down"))
        reason = await state.readiness.reason_not_ready()
        if reason is not None:
            return _error_response(ApiError(503, "not_ready", reason))
        return _json_response(200, {"status": "ready"})

    @app.post(
        "/sessions/{session_id}/messages",
        tags=["sessions"],
        summary="Run one agent step on the session (created by its first message)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": StepRequest.model_json_schema()}},
            }
        },
        responses={
            200: {"model": StepAnswer},
            400: {"model": ErrorBody},
            409: {"model": ErrorBody},
            413: {"model": ErrorBody},
            502: {"model": ErrorBody},
            503: {"model": ErrorBody, "description": "At capacity, draining or rate limited"},
            504: {"model": ErrorBody},
        },
    )
    async def post_message(session_id: str, request: Request) -> JSONResponse:
        # The body is parsed here, not by FastAPI, so that its rules and error shapes are exactly
        # the Lambda API's (FastAPI would answer 422 in its own format).
        check_session_id(session_id)
        raw = await _read_body(request, state.request_limit_bytes)
        step_request = parse_step_request(
            raw,
            max_body_bytes=state.request_limit_bytes,
            max_message_chars=deps.settings.max_message_chars,
        )
        lease = _admit(state)
        # Past the load balancer's idle timeout it has already answered 504 to the client, so a
        # model call started later would be paid for and thrown away.
        deadline = time.monotonic() + settings.lb_idle_timeout_seconds
        try:
            stream = _start_step(
                state, session_id, step_request, deadline=deadline, stream_events=False
            )
        except BaseException:
            lease.release()
            raise
        # Released when the step's thread ends, not when this request does: a request cancelled
        # at the drain deadline leaves a step that still runs and still counts.
        stream.call_when_finished(lease.release)
        try:
            result = await stream.result()
        except STEP_FAILURES as exc:
            raise _step_failed(session_id, exc) from None
        except asyncio.CancelledError:
            if not state.drain.draining:
                raise
            # uvicorn cancels what still runs when the drain time is up, and would answer a
            # plain-text 500. The step goes on in its thread and may yet save, so the client is
            # told to read the session before it sends the message again.
            logger.warning("agent step outlived the drain", extra={"session_id": session_id})
            return _error_response(
                ApiError(
                    503,
                    "draining",
                    "the service shut down before the step finished; it may still be saved, "
                    "so read the session before retrying",
                    headers={"Retry-After": str(settings.retry_after_seconds)},
                )
            )
        _log_step_done(result)
        return _json_response(200, step_response(result))

    @app.get(
        "/sessions/{session_id}",
        tags=["sessions"],
        summary="The stored session",
        responses={
            200: {"model": SessionAnswer},
            400: {"model": ErrorBody},
            404: {"model": ErrorBody},
        },
    )
    async def get_session(session_id: str) -> JSONResponse:
        check_session_id(session_id)
        try:
            session = await in_daemon_thread(lambda: deps.store.get(session_id))
        except SessionStoreUnavailableError as exc:
            raise _step_failed(session_id, exc) from None
        return _json_response(200, session_response(session, session_id))

    @app.websocket("/agent/{session_id}")
    async def agent_socket(websocket: WebSocket, session_id: str) -> None:
        await _AgentSocket(websocket, session_id, state).serve()

    if settings.ui:
        # Added last, so it is the outermost middleware: the static page is answered in front of
        # the bearer check; the API and the WebSocket behind it still need the token.
        mount_ui(app)
    # Outermost of all: every request, answered by the UI or refused by the bearer check
    # included, gets a correlation id on its log lines and an X-Request-Id response header.
    app.add_middleware(RequestIdMiddleware)
    return app


# --- HTTP helpers -------------------------------------------------------------------------------


def _json_response(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        payload, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})}
    )


def _error_response(error: ApiError) -> JSONResponse:
    return _json_response(error.status, error.to_dict(), error.headers)


def _register_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _error_response(exc)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        # Unknown routes and methods, in the API's error shape rather than FastAPI's.
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        error = ApiError(exc.status_code, code, message, headers=exc.headers)
        return _error_response(error)

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after answering, so uvicorn logs the traceback; none in the body.
        return _error_response(ApiError(500, "internal_error", "internal error"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit``.

    Never more than ``limit`` bytes are held, whatever the client declares or sends.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413, "payload_too_large", f"the body is {declared} bytes; the limit is {limit}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _admit(state: ServiceState) -> Lease:
    """A session slot, or the 503 that tells the client when to come back."""
    retry_after = {"Retry-After": str(state.settings.retry_after_seconds)}
    if state.drain.draining:
        raise ApiError(503, "draining", "the service is shutting down; retry", headers=retry_after)
    lease = state.limiter.try_acquire()
    if lease is None:
        raise ApiError(
            503,
            "overloaded",
            f"the service is at its limit of {state.limiter.limit} concurrent sessions; "
            "retry later",
            headers=retry_after,
        )
    return lease


# --- steps --------------------------------------------------------------------------------------


def _start_step(
    state: ServiceState,
    session_id: str,
    request: StepRequest,
    *,
    deadline: float,
    stream_events: bool,
) -> StepStream:
    """Start the step in its thread; model calls stop at ``deadline`` (monotonic) or the drain."""
    deps = state.deps

    def remaining_seconds() -> float:
        # Once the drain has begun, a model call gets only what is left of it.
        return min(state.drain.remaining_seconds(), deadline - time.monotonic())

    llm = DeadlineLLM(deps.llm_factory, remaining_seconds)

    def step(on_event: EventSink) -> StepResult:
        return run_step(
            store=deps.store,
            llm=llm,
            tools=deps.tools,
            session_id=session_id,
            user_input=request.message,
            max_iterations=deps.settings.agent_max_iterations,
            system_prompt=deps.settings.agent_system_prompt or None,
            expected_version=request.expected_version,
            on_event=on_event,
        )

    return StepStream(
        step, threads=state.steps, stream_events=stream_events, name=f"step-{session_id}"
    )


def _step_failed(session_id: str, error: StepFailure) -> ApiError:
    answer = step_failure(error)
    # Errors page someone (the provider or the store is failing); the rest are expected now and
    # then (conflicts, slow or rate-limited models).
    broken = isinstance(error, SessionStoreUnavailableError) or (
        isinstance(error, LLMError) and not isinstance(error, LLMTimeoutError | LLMRateLimitedError)
    )
    # Identifiers and the reason only: the conversation stays out of the logs.
    logger.log(
        logging.ERROR if broken else logging.WARNING,
        "agent step failed",
        extra={"session_id": session_id, "code": answer.code, "reason": str(error)},
    )
    return answer


def _log_step_done(result: StepResult) -> None:
    logger.info(
        "agent step done",
        extra={
            "session_id": result.session_id,
            "version": result.version,
            "iterations": result.iterations,
            "stop_reason": result.stop_reason,
            "tools": [call.name for call in result.tool_calls],
        },
    )


# --- the WebSocket ------------------------------------------------------------------------------


def _error_frame(error: ApiError) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "content": error.message, "code": error.code}
    retry_after = error.headers.get("Retry-After")
    if retry_after is not None:
        frame["retry_after"] = int(retry_after)
    return frame


def _result_frame(result: StepResult) -> dict[str, Any]:
    answer = step_response(result)
    return {"type": "result", "content": answer.pop("output"), **answer}


class _AgentSocket:
    """One WebSocket connection: reads frames, runs their steps, streams the events back.

    Two tasks share the socket. The reader always listens, also while a step runs, because
    uvicorn stops reading the socket after each message until the app has taken it: an app that
    did not read during a long step would, after the client's next frame, see neither the
    client's pongs (the heartbeat would close the connection with 1011) nor its disconnect.
    Frames go out one at a time under ``_send_lock``, which is what lets a shutdown close the
    socket *after* the frame being sent, never inside it.
    """

    def __init__(self, websocket: WebSocket, session_id: str, state: ServiceState) -> None:
        self._ws = websocket
        self._session_id = session_id
        self._state = state
        self._send_lock = asyncio.Lock()
        # No frame starts once closing; closed means our close frame is out or the peer is gone.
        self._closing = False
        self._closed = False
        self._close_sent = asyncio.Event()
        self._step_task: asyncio.Task[None] | None = None
        self._stream: StepStream | None = None

    async def serve(self) -> None:
        state = self._state
        # Accepted first in every case: close codes only exist once the handshake is done.
        await self._ws.accept()
        try:
            check_session_id(self._session_id)
        except ApiError as exc:
            await self._send(_error_frame(exc))
            await self._close(1008, "invalid session id")
            return
        if state.drain.draining:
            await self._close(1001, "server shutting down")
            return
        lease = state.limiter.try_acquire()
        if lease is None:
            retry_after = state.settings.retry_after_seconds
            await self._close(1013, f"at capacity; retry in {retry_after} s")
            return
        try:
            with state.drain.track_socket() as close_sent:
                self._close_sent = close_sent
                await self._converse()
        finally:
            stream = self._stream
            if stream is None or stream.done:
                lease.release()
            else:
                # The client is gone but its step still runs (and will save): keep its slot.
                stream.call_when_finished(lease.release)

    async def _converse(self) -> None:
        reader = asyncio.create_task(self._read_frames())
        going_away = asyncio.create_task(self._state.drain.wait_started())
        try:
            await asyncio.wait({reader, going_away}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                await self._close(1001, "server shutting down")
            elif not reader.cancelled() and reader.exception() is not None:
                logger.error("WebSocket reader failed", exc_info=reader.exception())
                await self._close(1011, "internal error")
        finally:
            self._closing = True
            tasks = [task for task in (reader, going_away, self._step_task) if task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._stream is not None:
                self._stream.detach()

    async def _read_frames(self) -> None:
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                self._closed = True
                return
            if self._closing:
                continue
            text = message.get("text")
            if text is None:
                await self._send(
                    _error_frame(
                        ApiError(400, "invalid_frame", "frames must be text frames of JSON")
                    )
                )
                continue
            await self._on_text(text)

    async def _on_text(self, text: str) -> None:
        limit = self._state.request_limit_bytes
        raw = text.encode()
        try:
            if len(raw) > limit:
                raise ApiError(
                    413, "frame_too_large", f"the frame is {len(raw)} bytes; the limit is {limit}"
                )
            request = parse_step_request(
                raw,
                max_body_bytes=limit,
                max_message_chars=self._state.deps.settings.max_message_chars,
                what="frame",
            )
            if self._step_task is not None and not self._step_task.done():
                raise ApiError(
                    409,
                    "busy",
                    "a step is already running on this connection; send the next message "
                    "after its result or error frame",
                )
        except ApiError as exc:
            await self._send(_error_frame(exc))
            return
        self._step_task = asyncio.create_task(self._run_step(request))

    async def _run_step(self, request: StepRequest) -> None:
        # No deadline of its own: the heartbeat keeps the connection open through long steps,
        # and the model client bounds each call (LLM_REQUEST_TIMEOUT_SECONDS x attempts).
        # The connection's slot covers its steps: one runs at a time.
        stream = _start_step(
            self._state, self._session_id, request, deadline=math.inf, stream_events=True
        )
        self._stream = stream
        try:
            async for event in stream.events():
                if event.type in _STREAMED_EVENTS and not await self._send(event.to_dict()):
                    stream.detach()  # the client is gone: the step finishes and saves unseen
                    return
            result = await stream.result()
        except STEP_FAILURES as exc:
            await self._send(_error_frame(_step_failed(self._session_id, exc)))
        except Exception:
            logger.exception("agent step failed", extra={"session_id": self._session_id})
            await self._send(_error_frame(ApiError(500, "internal_error", "internal error")))
        else:
            _log_step_done(result)
            await self._send(_result_frame(result))

    async def _send(self, frame: dict[str, Any]) -> bool:
        """Send one whole frame; False when the socket is closing or the client is gone."""
        async with self._send_lock:
            if self._closing or self._closed:
                return False
            try:
                await self._ws.send_text(json.dumps(frame, ensure_ascii=False))
            except (WebSocketDisconnect, OSError):
                self._closed = True
                return False
            return True

    async def _close(self, code: int, reason: str) -> None:
        """Close after the frame being sent, if any; later frames are dropped."""
        self._closing = True
        async with self._send_lock:
            if not self._closed:
                self._closed = True
                with contextlib.suppress(WebSocketDisconnect, OSError):
                    await self._ws.close(code, reason)
            self._close_sent.set()
