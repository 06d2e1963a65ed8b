"""Locust users of ``python -m loadtest``: one class per scenario, run in locust's own process.

Never import this module elsewhere: locust patches the standard library with gevent when it is
imported, which is why the CLI runs locust as a subprocess and hands it a
:class:`~loadtest.config.RunConfig` in the environment.

Users run closed loops without think time: each sends its next request when the previous one
has finished, so the numbers measure the target's throughput and latency at ``--users``
concurrency. Every URL is built by :class:`~loadtest.guard.HostGuard` on the run's one target, and
redirects are never followed. Every request the target receives (HTTP request, WebSocket
handshake, WebSocket message, status poll) takes one unit of the run's ``--max-requests`` budget;
when it is spent the run stops as if ``--run-time`` had passed.

What locust's own stats hold (one entry each, request type / name):

* ``POST /sessions/{id}/messages`` (http): a step's round trip; not 200 is an error.
* ``WS connect /agent/{id}`` and ``WS step (send -> final frame)`` (ws): the handshake, and from
  sending a message to its ``result`` frame; an ``error`` frame is an error.
* ``POST /webhook`` (webhook): not 202 is an error; then ``CALLBACK 202 -> callback`` (from the
  202 to the signed callback's arrival at the receiver) or, polling, ``GET /tasks/{id}`` and
  ``POLL 202 -> done``. A callback that does not verify, a task that failed, a callback that
  did not come within ``--timeout`` or before the run's end: errors, each with its reason.

What they do not hold (WebSocket frames, callback counts, why the run stopped) goes to the
extras file the CLI reads next to locust's CSV and JSON.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gevent
import websocket
from gevent.event import Event
from gevent.pywsgi import WSGIServer
from locust import User, constant, events, task
from locust.contrib.fasthttp import FastHttpUser, FastResponse, ResponseContextManager
from locust.env import Environment
from locust.exception import StopUser

from loadtest.config import RunConfig
from loadtest.guard import HostGuard
from runtime.webhooks import signing

logger = logging.getLogger("loadtest")

CONFIG = RunConfig.from_env(os.environ)
GUARD = HostGuard(CONFIG.host)
RUN_ID = uuid.uuid4().hex[:12]
STEP_BODY = json.dumps({"message": CONFIG.message})
FINISHED_TASK = frozenset({"succeeded", "failed"})
# What the webhook scenario counts, by mode; a missing callback or a task not done in time is
# also an error in locust's stats, with its reason.
CALLBACK_COUNTS = (
    "accepted",
    "callbacks_verified",
    "callbacks_missing",
    "callbacks_rejected",
    "callbacks_duplicate",
    "callbacks_late_or_unknown",
    "tasks_failed",
)
POLL_COUNTS = ("accepted", "tasks_done", "tasks_not_done", "tasks_failed")


class StepError(Exception):
    """A step the target answered with an error (its ``code`` is the error's kind)."""


class CallbackError(Exception):
    """A task whose outcome did not arrive, did not verify, or was a failure."""


@dataclass
class RunState:
    """The run's shared counters; greenlets switch only on I/O, so no lock is needed."""

    max_requests: int
    sent: int = 0
    stopped_by: str | None = None
    started_at: float | None = None
    stopped_at: float | None = None
    ws_frames: int = 0
    failures: dict[tuple[str, str, str], int] = field(default_factory=dict)
    webhook: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CALLBACK_COUNTS + POLL_COUNTS, 0)
    )

    def webhook_counts(self) -> dict[str, int] | None:
        """The counters that mean something in this run's webhook mode."""
        if CONFIG.scenario != "webhook":
            return None
        names = CALLBACK_COUNTS if CONFIG.webhook.mode == "callback" else POLL_COUNTS
        return {name: self.webhook[name] for name in names}

    def count_failure(self, request_type: str, name: str, exception: BaseException) -> None:
        # Kept here, not read back from locust's failures CSV: that file is rewritten every
        # second, so the last second's failures may be missing from it.
        error = str(exception) or type(exception).__name__
        key = (request_type, name, error[:200])
        self.failures[key] = self.failures.get(key, 0) + 1

    def stop(self, environment: Environment, reason: str) -> None:
        """End the run (once): no new requests; in-flight ones get ``--timeout`` to finish."""
        if self.stopped_by is not None:
            return
        self.stopped_by = reason
        runner = environment.runner
        if runner is not None:
            # From a greenlet of its own: quit() stops every user, the caller's included.
            gevent.spawn(runner.quit)

    def take(self, environment: Environment) -> None:
        """One request's worth of budget, or stop this user (and the run) when it is spent."""
        if self.sent >= self.max_requests:
            self.stop(environment, "max-requests")
            raise StopUser
        self.sent += 1


RUN = RunState(max_requests=CONFIG.max_requests)


def _fire(
    environment: Environment,
    request_type: str,
    name: str,
    started: float,
    *,
    length: int = 0,
    exception: BaseException | None = None,
) -> None:
    """Record one measurement in locust's stats; ``started`` is a ``time.monotonic()``."""
    environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=max(0.0, (time.monotonic() - started) * 1000),
        response_length=length,
        exception=exception,
        context={},
    )


def _failure_reason(response: FastResponse) -> str:
    """The kind of a failed response, without ids, so locust groups like failures together."""
    error = getattr(response, "error", None)  # set by locust on connection failures
    if error is not None and not response.status_code:
        return f"{type(error).__name__}: {str(error)[:120]}"
    code = ""
    try:
        body = json.loads(response.text or "")
        if isinstance(body, dict):
            error = body.get("error")
            code = str(error.get("code", "")) if isinstance(error, dict) else ""
            code = code or str(body.get("message", ""))[:80]
    except ValueError:
        pass
    return f"HTTP {response.status_code}" + (f" {code}" if code else "")


def _bearer_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {CONFIG.token}"} if CONFIG.token else {}


class _Sessions:
    """A fresh session id every ``steps_per_session`` steps, so histories stay short."""

    def __init__(self, steps_per_session: int) -> None:
        self._steps_per_session = steps_per_session
        self._steps = 0
        self.session_id = self._new()

    @staticmethod
    def _new() -> str:
        return f"load-{RUN_ID}-{uuid.uuid4().hex[:12]}"

    def next_step(self) -> tuple[str, bool]:
        """(session id, whether it is new) for the next step."""
        fresh = self._steps >= self._steps_per_session
        if fresh:
            self.session_id = self._new()
            self._steps = 0
        self._steps += 1
        return self.session_id, fresh or self._steps == 1


class _Target(FastHttpUser):
    """The HTTP settings every scenario shares: verified TLS, no redirects, bounded waits."""

    abstract = True
    host = GUARD.target.base_url
    wait_time = constant(0)
    network_timeout = CONFIG.timeout_seconds
    connection_timeout = CONFIG.timeout_seconds
    # FastHttpUser skips certificate checks by default; a deployed URL must present a valid one.
    insecure = False
    max_redirects = 0

    def _send(
        self, method: str, url: str, *, name: str, headers: dict[str, str], data: str | None = None
    ) -> ResponseContextManager:
        """One request to the target, judged by the caller (``success()`` / ``failure()``) and
        never redirected: a redirect could lead off the target the guard allows."""
        return self.client.request(
            method,
            url,
            name=name,
            data=data,
            headers=headers,
            catch_response=True,
            allow_redirects=False,
        )


# --- http ---------------------------------------------------------------------------------------


class HttpStepUser(_Target):
    """One agent step per request: ``POST /sessions/{id}/messages``."""

    def on_start(self) -> None:
        self._sessions = _Sessions(CONFIG.steps_per_session)

    @task
    def step(self) -> None:
        RUN.take(self.environment)
        session_id, _ = self._sessions.next_step()
        headers = {"Content-Type": "application/json", **_bearer_headers()}
        with self._send(
            "POST",
            GUARD.url(f"/sessions/{session_id}/messages"),
            name="POST /sessions/{id}/messages",
            data=STEP_BODY,
            headers=headers,
        ) as response:
            if response.status_code == 200:
                response.success()
            else:
                response.failure(_failure_reason(response))


# --- ws -----------------------------------------------------------------------------------------


class WebSocketStepUser(User):
    """One WebSocket per session: send a message, read its frames up to the last one."""

    wait_time = constant(0)
    host = GUARD.target.base_url

    def on_start(self) -> None:
        self._sessions = _Sessions(CONFIG.steps_per_session)
        self._socket: websocket.WebSocket | None = None

    def on_stop(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self._socket.close()
            self._socket = None

    def _connect(self, session_id: str) -> websocket.WebSocket | None:
        RUN.take(self.environment)
        url = GUARD.websocket_url(f"/agent/{session_id}")
        started = time.monotonic()
        try:
            socket_ = websocket.create_connection(
                url,
                header=[f"{k}: {v}" for k, v in _bearer_headers().items()],
                timeout=CONFIG.timeout_seconds,
                suppress_origin=True,
            )
        except (websocket.WebSocketException, OSError) as exc:
            _fire(self.environment, "WS", "connect /agent/{id}", started, exception=exc)
            return None
        _fire(self.environment, "WS", "connect /agent/{id}", started)
        return socket_

    @task
    def step(self) -> None:
        session_id, fresh = self._sessions.next_step()
        if fresh or self._socket is None:
            self._close()
            self._socket = self._connect(session_id)
            if self._socket is None:
                return
        RUN.take(self.environment)
        started = time.monotonic()
        received = 0
        error: BaseException | None = None
        try:
            self._socket.send(STEP_BODY)
            while True:
                frame = json.loads(self._socket.recv())
                received += 1
                if frame.get("type") == "error":
                    error = StepError(f"error frame {frame.get('code', '?')}")
                    break
                if frame.get("type") == "result":
                    break
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            error = exc
            self._close()  # its state is unknown: the next step opens a new one
        RUN.ws_frames += received
        _fire(self.environment, "WS", "step (send -> final frame)", started, exception=error)


# --- webhook ------------------------------------------------------------------------------------


@dataclass
class _Pending:
    accepted_at: float
    done: Event = field(default_factory=Event)
    arrived_at: float | None = None
    status: str | None = None
    error_code: str | None = None
    length: int = 0


class CallbackTracker:
    """Tasks waiting for their callback; a callback may even beat its 202 to the load process."""

    def __init__(self) -> None:
        self.waiting: dict[str, _Pending] = {}
        self._early: dict[str, _Pending] = {}

    def expect(self, task_id: str, accepted_at: float) -> _Pending:
        early = self._early.pop(task_id, None)
        pending = _Pending(accepted_at=accepted_at)
        if early is not None:
            pending.arrived_at, pending.status = accepted_at, early.status
            pending.error_code, pending.length = early.error_code, early.length
            pending.done.set()
        else:
            self.waiting[task_id] = pending
        return pending

    def arrive(self, task_id: str, data: Mapping[str, Any], length: int) -> None:
        # Left in ``waiting``: whoever waits for it (the user, or the run's end) takes it out.
        pending = self.waiting.get(task_id)
        error = data.get("error")
        if pending is None:
            metadata = data.get("metadata") or {}
            if metadata.get("loadtest_run") == RUN_ID and len(self._early) < 10_000:
                pending = _Pending(accepted_at=time.monotonic())
                self._early[task_id] = pending
            else:
                RUN.webhook["callbacks_late_or_unknown"] += 1
                return
        pending.arrived_at = time.monotonic()
        pending.status = str(data.get("status"))
        pending.error_code = str(error.get("code")) if isinstance(error, dict) else None
        pending.length = length
        pending.done.set()


TRACKER = CallbackTracker()


def _outcome_error(pending: _Pending) -> CallbackError | None:
    if pending.status == "succeeded":
        return None
    RUN.webhook["tasks_failed"] += 1
    return CallbackError(f"task {pending.status}: {pending.error_code or 'no error code'}")


def _callback_app(environment: Environment) -> Callable[..., Iterable[bytes]]:
    """The WSGI receiver: verify the signature (Standard Webhooks), then note the arrival."""
    secrets = [CONFIG.webhook.callback_secret or ""]
    replay_guard = signing.ReplayGuard()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            start_response("405 Method Not Allowed", [("Content-Length", "0")])
            return [b""]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            name[5:].replace("_", "-").lower(): str(value)
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        try:
            signing.verify(headers, body, secrets, now=time.time(), replay_guard=replay_guard)
        except signing.ReplayedMessageError:
            # A redelivery (our 204 got lost or came late): the receiver's job is to ignore it.
            RUN.webhook["callbacks_duplicate"] += 1
            start_response("204 No Content", [])
            return [b""]
        except signing.WebhookVerificationError as exc:
            RUN.webhook["callbacks_rejected"] += 1
            _fire(
                environment,
                "CALLBACK",
                "signature",
                time.monotonic(),
                exception=CallbackError(f"callback rejected: {exc}"),
            )
            start_response("401 Unauthorized", [("Content-Length", "0")])
            return [b""]
        RUN.webhook["callbacks_verified"] += 1
        try:
            data = json.loads(body)["data"]
            TRACKER.arrive(str(data["task_id"]), data, len(body))
        except (ValueError, KeyError, TypeError):
            RUN.webhook["callbacks_late_or_unknown"] += 1
        start_response("204 No Content", [])
        return [b""]

    return app


def _api_auth_headers(
    method: str, url: str, body: str, headers: Mapping[str, str]
) -> dict[str, str]:
    """The deployed webhook API's auth: an API key, or SigV4 with the caller's credentials."""
    webhook = CONFIG.webhook
    if webhook.api_auth == "api-key":
        return {"x-api-key": webhook.api_key or ""}
    if webhook.api_auth == "iam":
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body.encode(), headers=dict(headers))
        SigV4Auth(_aws_credentials(), "execute-api", webhook.aws_region or "").add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}
    return {}


_CREDENTIALS: Any = None


def _aws_credentials() -> Any:
    """The default credential chain's credentials, frozen per request (they may refresh)."""
    global _CREDENTIALS
    if _CREDENTIALS is None:
        import botocore.session

        _CREDENTIALS = botocore.session.get_session().get_credentials()
        if _CREDENTIALS is None:
            raise RuntimeError("no AWS credentials for --webhook-auth iam")
    return _CREDENTIALS.get_frozen_credentials()


def _inbound_signature_headers(body: str) -> dict[str, str]:
    """A webhook source's signature over the body, when the deployment checks one."""
    webhook = CONFIG.webhook
    secret = webhook.inbound_secret or ""
    if webhook.inbound_signature == "standard":
        msg_id = f"msg_load_{uuid.uuid4().hex}"
        return signing.signed_headers(msg_id, int(time.time()), body.encode(), [secret])
    if webhook.inbound_signature == "github":
        return {
            signing.GITHUB_SIGNATURE_HEADER: signing.github_signature(body.encode(), secret),
            "X-GitHub-Delivery": str(uuid.uuid4()),
        }
    return {}


class WebhookTaskUser(_Target):
    """Submit a task, then wait for its callback (or poll its status) before the next one."""

    @task
    def submit(self) -> None:
        RUN.take(self.environment)
        webhook = CONFIG.webhook
        payload: dict[str, Any] = {"input": CONFIG.message, "metadata": {"loadtest_run": RUN_ID}}
        if webhook.mode == "callback":
            payload["callback_url"] = webhook.callback_url
        body = json.dumps(payload)
        url = GUARD.url("/webhook")
        headers = {"Content-Type": "application/json", **_inbound_signature_headers(body)}
        if webhook.inbound_signature == "none":
            headers.update(_api_auth_headers("POST", url, body, headers))
        with self._send("POST", url, name="POST /webhook", data=body, headers=headers) as response:
            task_id = self._task_id(response)
            if task_id is None:
                response.failure(
                    _failure_reason(response)
                    if response.status_code != 202
                    else "202 without a task_id"
                )
                return
            accepted_at = time.monotonic()
            response.success()
        RUN.webhook["accepted"] += 1
        if webhook.mode == "callback":
            self._await_callback(task_id, accepted_at)
        else:
            self._poll(task_id, accepted_at)

    @staticmethod
    def _task_id(response: FastResponse) -> str | None:
        if response.status_code != 202:
            return None
        try:
            answer = json.loads(response.text or "")
            return str(answer["task_id"])
        except (ValueError, KeyError, TypeError):
            return None

    def _await_callback(self, task_id: str, accepted_at: float) -> None:
        pending = TRACKER.expect(task_id, accepted_at)
        arrived = pending.done.wait(CONFIG.timeout_seconds)
        TRACKER.waiting.pop(task_id, None)
        if not arrived:
            RUN.webhook["callbacks_missing"] += 1
            _fire(
                self.environment,
                "CALLBACK",
                "202 -> callback",
                accepted_at,
                exception=CallbackError(f"no callback within {CONFIG.timeout_seconds:g} s"),
            )
            return
        _record_arrival(self.environment, pending)

    def _poll(self, task_id: str, accepted_at: float) -> None:
        deadline = accepted_at + CONFIG.timeout_seconds
        while time.monotonic() < deadline:
            gevent.sleep(CONFIG.webhook.poll_interval_seconds)
            if RUN.sent >= RUN.max_requests:
                RUN.webhook["tasks_not_done"] += 1
                _fire(
                    self.environment,
                    "POLL",
                    "202 -> done",
                    accepted_at,
                    exception=CallbackError("the run's request budget ended before the task"),
                )
            RUN.take(self.environment)  # stops the user (and the run) once the budget is spent
            url = GUARD.url(f"/tasks/{task_id}")
            headers = _api_auth_headers("GET", url, "", {})
            with self._send("GET", url, name="GET /tasks/{id}", headers=headers) as response:
                if response.status_code != 200:
                    response.failure(_failure_reason(response))
                    continue
                response.success()
                try:
                    view = json.loads(response.text or "")
                except ValueError:
                    continue
            if view.get("status") in FINISHED_TASK:
                RUN.webhook["tasks_done"] += 1
                error = view.get("error")
                pending = _Pending(
                    accepted_at=accepted_at,
                    arrived_at=time.monotonic(),
                    status=str(view["status"]),
                    error_code=str(error.get("code")) if isinstance(error, dict) else None,
                )
                _fire(
                    self.environment,
                    "POLL",
                    "202 -> done",
                    accepted_at,
                    exception=_outcome_error(pending),
                )
                return
        RUN.webhook["tasks_not_done"] += 1
        _fire(
            self.environment,
            "POLL",
            "202 -> done",
            accepted_at,
            exception=CallbackError(f"not done within {CONFIG.timeout_seconds:g} s"),
        )


def _record_arrival(environment: Environment, pending: _Pending) -> None:
    arrived_at = pending.arrived_at if pending.arrived_at is not None else time.monotonic()
    environment.events.request.fire(
        request_type="CALLBACK",
        name="202 -> callback",
        response_time=max(0.0, (arrived_at - pending.accepted_at) * 1000),
        response_length=pending.length,
        exception=_outcome_error(pending),
        context={},
    )


# --- the run's life cycle -----------------------------------------------------------------------

_receiver: WSGIServer | None = None


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    global _receiver
    if CONFIG.scenario == "webhook" and CONFIG.webhook.mode == "callback":
        # Loopback only: a public --callback-url forwards here (an SSH or ngrok tunnel).
        _receiver = WSGIServer(
            ("127.0.0.1", CONFIG.webhook.receiver_port),
            _callback_app(environment),
            log=None,
        )
        _receiver.start()


@events.request.add_listener
def _on_request(
    request_type: str, name: str, exception: BaseException | None = None, **_kwargs: Any
) -> None:
    if exception is not None:
        RUN.count_failure(request_type, name, exception)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    RUN.started_at = time.time()
    # Timed from here rather than by locust's --run-time, whose clock starts before the users
    # do: on a busy machine their start-up could eat most of a short run. (The CLI still passes
    # a --run-time a little longer, as a backstop.)
    gevent.spawn_later(CONFIG.run_time_seconds, RUN.stop, environment, "run-time")


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_kwargs: Any) -> None:
    RUN.stopped_at = time.time()
    if RUN.stopped_by is None:
        RUN.stopped_by = "run-time"


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kwargs: Any) -> None:
    """Tasks whose user was stopped mid-wait: a last chance for their callback, then errors."""
    deadline = time.monotonic() + CONFIG.timeout_seconds
    while time.monotonic() < deadline and not all(
        pending.done.is_set() for pending in TRACKER.waiting.values()
    ):
        gevent.sleep(0.05)
    for task_id, pending in list(TRACKER.waiting.items()):
        del TRACKER.waiting[task_id]
        if pending.done.is_set():
            _record_arrival(environment, pending)
            continue
        RUN.webhook["callbacks_missing"] += 1
        _fire(
            environment,
            "CALLBACK",
            "202 -> callback",
            pending.accepted_at,
            exception=CallbackError("no callback before the end of the run"),
        )


@events.quit.add_listener
def _on_quit(**_kwargs: Any) -> None:
    if _receiver is not None:
        _receiver.stop(timeout=1)
    extras = {
        "run_id": RUN_ID,
        "started_at": RUN.started_at,
        "stopped_at": RUN.stopped_at,
        "stopped_by": RUN.stopped_by or "run-time",
        "requests_sent": RUN.sent,
        "max_requests": RUN.max_requests,
        "ws_frames": RUN.ws_frames,
        "failures": [
            {"kind": kind, "name": name, "error": error, "occurrences": count}
            for (kind, name, error), count in sorted(RUN.failures.items())
        ],
        "webhook": RUN.webhook_counts(),
    }
    with open(CONFIG.extras_path, "w", encoding="utf-8") as file:  # noqa: PTH123 - a plain write
        json.dump(extras, file, indent=2)
