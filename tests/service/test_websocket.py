"""The WebSocket protocol against a real uvicorn, driven by the ``websockets`` client.

Frame order, errors that leave the connection usable, parallel sessions, the heartbeat, and the
session limit shared with HTTP (503 / close 1013).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Sequence

import pytest
from websockets.exceptions import ConnectionClosed

from runtime.llm.types import LLMResponse, Message, ToolSpec
from runtime.session_store import SessionStoreUnavailableError
from tests.fakes.memory_store import InMemorySessionStore
from tests.fakes.openai_server import ErrorReply, FakeOpenAIServer, TextReply, ToolCallReply
from tests.runtime.conftest import text, tool_use
from tests.service.conftest import (
    WAIT_SECONDS,
    Gate,
    PingRecordingConnection,
    openai_dependencies,
    receive,
    receive_step,
    script,
    scripted_dependencies,
    send,
    serve,
    service_settings,
    wait_until,
    ws_connect,
)


def test_a_tool_using_step_streams_thinking_action_result(
    fake_openai: FakeOpenAIServer, store: InMemorySessionStore
) -> None:
    fake_openai.add(
        ToolCallReply(
            "calculator", {"expression": "6 * 7"}, call_id="call_42", text="Let me compute."
        ),
        TextReply("6 times 7 is 42.", prompt_tokens=30, completion_tokens=8),
        TextReply("You asked about 6 times 7."),
    )
    deps, _ = openai_dependencies(fake_openai.base_url, store)

    with serve(deps) as service, ws_connect(service.ws_url("ws-1")) as ws:
        send(ws, {"message": "What is 6 times 7?"})
        first = receive_step(ws)
        send(ws, {"message": "What did I ask?", "expected_version": 1})
        second = receive_step(ws)

    assert first == [
        {"type": "thinking", "content": "Let me compute."},
        {
            "type": "action",
            "content": {
                "id": "call_42",
                "tool": "calculator",
                "arguments": {"expression": "6 * 7"},
                "output": "42",
                "is_error": False,
            },
        },
        {
            "type": "result",
            "content": "6 times 7 is 42.",
            "session_id": "ws-1",
            "version": 1,
            "iterations": 2,
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 40, "output_tokens": 13},
        },
    ]
    assert [frame["type"] for frame in second] == ["result"]
    assert (second[0]["content"], second[0]["version"]) == ("You asked about 6 times 7.", 2)


def test_a_model_failure_is_one_error_frame_and_the_connection_stays_usable(
    fake_openai: FakeOpenAIServer, store: InMemorySessionStore
) -> None:
    fake_openai.add(ErrorReply(500), TextReply("Hello again."))
    deps, _ = openai_dependencies(fake_openai.base_url, store)

    with serve(deps) as service, ws_connect(service.ws_url("ws-2")) as ws:
        send(ws, {"message": "hello"})
        failed = receive_step(ws)
        send(ws, {"message": "hello"})
        retried = receive_step(ws)

    assert failed == [
        {
            "type": "error",
            "content": "the model provider failed; the session is unchanged",
            "code": "llm_error",
        }
    ]
    # Nothing of the failed step was saved: the retry creates the session at version 1.
    assert [(frame["type"], frame["version"]) for frame in retried] == [("result", 1)]


def test_a_conflicting_version_is_an_error_frame(store: InMemorySessionStore) -> None:
    with (
        serve(scripted_dependencies(script(), store)) as service,
        ws_connect(service.ws_url("ws-3")) as ws,
    ):
        send(ws, {"message": "hi", "expected_version": 2})
        frame = receive(ws)

    assert frame["type"] == "error"
    assert frame["code"] == "conflict"


def test_a_store_outage_is_an_error_frame_with_a_retry_hint(store: InMemorySessionStore) -> None:
    store.outage = SessionStoreUnavailableError("Redis is unreachable")
    with (
        serve(scripted_dependencies(script(), store)) as service,
        ws_connect(service.ws_url("ws-down")) as ws,
    ):
        send(ws, {"message": "hi"})
        frame = receive(ws)

    assert frame == {
        "type": "error",
        "content": "the session store is unavailable; retry later",
        "code": "store_unavailable",
        "retry_after": 5,
    }


def test_parallel_sessions_each_get_their_own_frames(store: InMemorySessionStore) -> None:
    sessions = ["par-a", "par-b", "par-c"]
    # Every model call waits until all three are in flight: the steps really run in parallel.
    all_in_flight = threading.Barrier(len(sessions), timeout=WAIT_SECONDS)

    class EchoLLM:
        def complete(
            self,
            messages: Sequence[Message],
            *,
            tools: Sequence[ToolSpec] = (),
            system: str | None = None,
        ) -> LLMResponse:
            all_in_flight.wait()
            return text(f"echo: {messages[-1].content}")

    results: dict[str, list[dict[str, object]]] = {}

    with serve(scripted_dependencies(EchoLLM(), store)) as service:

        def converse(session_id: str) -> None:
            with ws_connect(service.ws_url(session_id)) as ws:
                send(ws, {"message": f"I am {session_id}"})
                results[session_id] = receive_step(ws)

        threads = [threading.Thread(target=converse, args=(sid,)) for sid in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_SECONDS)

    for session_id in sessions:
        (frame,) = results[session_id]
        assert frame["type"] == "result"
        assert frame["content"] == f"echo: I am {session_id}"
        assert frame["session_id"] == session_id
        assert store.get(session_id) is not None


def test_heartbeat_pings_arrive_within_the_interval_even_during_a_long_step(
    store: InMemorySessionStore,
) -> None:
    interval = 0.2
    # Scheduling noise on a busy machine; far below uvicorn's own default interval (20 s).
    slack = 0.25
    gate = Gate(text("finally"))
    settings = service_settings(SERVICE_WS_HEARTBEAT_SECONDS=str(interval))

    with (
        serve(scripted_dependencies(script(gate), store), settings) as service,
        ws_connect(service.ws_url("beat-1"), create_connection=PingRecordingConnection) as ws,
    ):
        assert isinstance(ws, PingRecordingConnection)
        opened = time.monotonic()
        send(ws, {"message": "take your time"})
        gate.wait_entered()
        # A frame mid-step makes uvicorn pause reading until the app takes it; the app must keep
        # reading, or the pongs to the pings below would never be seen (close 1011).
        send(ws, {"message": "are you still there?"})
        busy = receive(ws)
        time.sleep(5 * interval)
        gate.released.set()
        (frame,) = receive_step(ws)
        pings = list(ws.pings)

    assert busy["code"] == "busy"
    assert frame["type"] == "result"
    assert len(pings) >= 3
    assert pings[0] - opened < interval + slack
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert all(gap < interval + slack for gap in gaps), gaps


def test_oversized_and_malformed_frames_get_error_frames_and_the_socket_stays_usable(
    store: InMemorySessionStore,
) -> None:
    llm = script(text("still here"))
    # MAX_BODY_BYTES (8192 in these tests) is below SERVICE_MAX_FRAME_BYTES: it is the limit.
    with (
        serve(scripted_dependencies(llm, store)) as service,
        ws_connect(service.ws_url("frames-1")) as ws,
    ):
        replies = {}
        for name, frame in {
            "oversized": json.dumps({"message": "x" * 9000}),
            "not-json": "{nope",
            "not-an-object": "[1, 2]",
            "unknown-field": json.dumps({"message": "hi", "mood": "happy"}),
            "empty-message": json.dumps({"message": ""}),
        }.items():
            send(ws, frame)
            replies[name] = receive(ws)
        ws.send(b'{"message": "binary"}')
        replies["binary"] = receive(ws)
        send(ws, {"message": "are you there?"})
        (result,) = receive_step(ws)

    assert replies["oversized"] == {
        "type": "error",
        "content": "the frame is 9015 bytes; the limit is 8192",
        "code": "frame_too_large",
    }
    assert replies["not-json"] == {
        "type": "error",
        "content": "the frame is not valid JSON",
        "code": "invalid_json",
    }
    assert replies["not-an-object"]["code"] == "validation_error"
    assert replies["not-an-object"]["content"] == "frame: must be a JSON object"
    assert replies["unknown-field"]["code"] == "validation_error"
    assert "mood" in replies["unknown-field"]["content"]
    assert replies["empty-message"]["code"] == "validation_error"
    assert replies["binary"]["code"] == "invalid_frame"
    assert (result["type"], result["content"]) == ("result", "still here")


def test_a_frame_over_the_hard_cap_closes_with_1009(store: InMemorySessionStore) -> None:
    with (
        serve(scripted_dependencies(script(), store)) as service,
        ws_connect(service.ws_url("huge-1")) as ws,
    ):
        send(ws, {"message": "x" * (4 * 8192)})
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_SECONDS)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def test_a_message_during_a_step_is_refused_as_busy(store: InMemorySessionStore) -> None:
    gate = Gate(text("first answer"))
    with (
        serve(scripted_dependencies(script(gate), store)) as service,
        ws_connect(service.ws_url("busy-1")) as ws,
    ):
        send(ws, {"message": "first"})
        gate.wait_entered()
        send(ws, {"message": "second"})
        busy = receive(ws)
        gate.released.set()
        (result,) = receive_step(ws)

    assert busy["type"] == "error"
    assert busy["code"] == "busy"
    assert result["content"] == "first answer"


def test_an_invalid_session_id_gets_an_error_frame_and_close_1008(
    store: InMemorySessionStore,
) -> None:
    with (
        serve(scripted_dependencies(script(), store)) as service,
        ws_connect(service.ws_url("-bad")) as ws,
    ):
        frame = receive(ws)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_SECONDS)

    assert frame["code"] == "invalid_session_id"
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


def test_over_the_session_limit_websockets_get_1013_and_http_gets_503(
    store: InMemorySessionStore,
) -> None:
    gate = Gate(text("done"))
    settings = service_settings(
        SERVICE_MAX_CONCURRENT_SESSIONS="1", SERVICE_RETRY_AFTER_SECONDS="7"
    )
    with (
        serve(scripted_dependencies(script(gate, text("later")), store), settings) as service,
        service.http() as client,
    ):
        with ws_connect(service.ws_url("busy-a")) as first:
            send(first, {"message": "keep the model busy"})
            gate.wait_entered()

            with (
                ws_connect(service.ws_url("busy-b")) as second,
                pytest.raises(ConnectionClosed) as refused,
            ):
                second.recv(timeout=WAIT_SECONDS)
            overloaded = client.post("/sessions/busy-c/messages", json={"message": "hi"})

            gate.released.set()
            (done,) = receive_step(first)

        # The slot comes back once the socket has closed and its step has finished.
        wait_until(lambda: service.state.limiter.in_use == 0)
        accepted = client.post("/sessions/busy-c/messages", json={"message": "hi"})

    assert refused.value.rcvd is not None
    assert (refused.value.rcvd.code, refused.value.rcvd.reason) == (
        1013,
        "at capacity; retry in 7 s",
    )
    assert overloaded.status_code == 503
    assert overloaded.headers["retry-after"] == "7"
    assert overloaded.json()["error"]["code"] == "overloaded"
    assert done["type"] == "result"
    assert accepted.status_code == 200, accepted.text


def test_a_busy_http_step_takes_the_slot_from_websockets(store: InMemorySessionStore) -> None:
    gate = Gate(text("slow answer"))
    settings = service_settings(SERVICE_MAX_CONCURRENT_SESSIONS="1")
    with serve(scripted_dependencies(script(gate), store), settings) as service:
        answers: list[int] = []

        def post() -> None:
            with service.http() as client:
                answers.append(
                    client.post("/sessions/h-1/messages", json={"message": "hi"}).status_code
                )

        poster = threading.Thread(target=post)
        poster.start()
        gate.wait_entered()
        with ws_connect(service.ws_url("w-1")) as ws, pytest.raises(ConnectionClosed) as refused:
            ws.recv(timeout=WAIT_SECONDS)
        gate.released.set()
        poster.join(WAIT_SECONDS)

    assert refused.value.rcvd is not None
    assert refused.value.rcvd.code == 1013
    assert answers == [200]


def test_a_client_leaving_mid_step_does_not_lose_the_turn(store: InMemorySessionStore) -> None:
    gate = Gate(text("saved anyway"))
    llm = script(tool_use("calculator", {"expression": "1 + 1"}), gate)
    with serve(scripted_dependencies(llm, store)) as service:
        with ws_connect(service.ws_url("gone-1")) as ws:
            send(ws, {"message": "compute, then answer"})
            assert receive(ws)["type"] == "action"
            gate.wait_entered()
        # The client has gone; its step still holds its slot until the thread is done.
        time.sleep(0.1)
        assert service.state.limiter.in_use == 1
        gate.released.set()
        assert service.state.steps.wait_idle(WAIT_SECONDS)
        wait_until(lambda: service.state.limiter.in_use == 0)

    saved = store.get("gone-1")
    assert saved is not None
    assert (saved.version, saved.messages[-1].content) == (1, "saved anyway")
