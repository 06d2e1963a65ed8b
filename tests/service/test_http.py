"""The service's HTTP side over a real socket: the Lambda API's rules, errors, health and docs.

The model is the fake OpenAI-compatible server behind the real client, so a failure travels the
whole way: HTTP answer -> client exception -> the status and code the API promises.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from runtime.service.app import create_app
from runtime.session_store import SessionStoreUnavailableError
from tests.fakes.memory_store import InMemorySessionStore
from tests.fakes.openai_server import (
    DelayedReply,
    ErrorReply,
    FakeOpenAIServer,
    TextReply,
    ToolCallReply,
)
from tests.runtime.conftest import ScriptedLLM, text
from tests.service.conftest import (
    openai_dependencies,
    running_service,
    scripted_dependencies,
    serve,
    service_settings,
)


@dataclass(frozen=True)
class SharedApi:
    client: httpx.Client
    model: FakeOpenAIServer
    store: InMemorySessionStore


@pytest.fixture(scope="module")
def api() -> Iterator[SharedApi]:
    """One service for the tests that only send requests: a server start per test adds up.

    Each test uses its own session ids, and consumes every reply it scripts.
    """
    store = InMemorySessionStore()
    with FakeOpenAIServer(expected_api_key="test") as model:
        deps, _ = openai_dependencies(model.base_url, store, LLM_REQUEST_TIMEOUT_SECONDS="0.5")
        with serve(deps) as service, service.http() as client:
            yield SharedApi(client, model, store)


def test_a_step_through_the_real_model_client(
    fake_openai: FakeOpenAIServer, store: InMemorySessionStore
) -> None:
    fake_openai.add(
        ToolCallReply("calculator", {"expression": "6 * 7"}, call_id="call_42"),
        TextReply("6 times 7 is 42.", prompt_tokens=30, completion_tokens=8),
    )
    deps, budgets = openai_dependencies(fake_openai.base_url, store)

    with serve(deps) as service, service.http() as client:
        response = client.post("/sessions/http-1/messages", json={"message": "What is 6 times 7?"})
        stored = client.get("/sessions/http-1")

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "session_id": "http-1",
        "output": "6 times 7 is 42.",
        "version": 1,
        "iterations": 2,
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 40, "output_tokens": 13},
    }
    assert fake_openai.requests[1].body["messages"][-1] == {
        "role": "tool",
        "content": "42",
        "tool_call_id": "call_42",
    }
    assert stored.status_code == 200
    assert stored.json()["version"] == 1
    assert [message["role"] for message in stored.json()["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    # An HTTP step's model calls end before the load balancer's idle timeout (60 s) gives up on
    # the client, less the margin kept for the save and the answer.
    assert budgets and all(55.0 < budget <= 57.0 for budget in budgets)


@pytest.mark.parametrize(
    ("reply", "status", "code"),
    [
        (DelayedReply(2.0, TextReply("too late")), 504, "llm_timeout"),
        (ErrorReply(500), 502, "llm_error"),
        (ErrorReply(429, retry_after=0), 503, "llm_rate_limited"),
    ],
    ids=["timeout", "provider-error", "rate-limited"],
)
def test_model_failures_map_like_the_lambda_api(
    api: SharedApi, reply: DelayedReply | ErrorReply, status: int, code: str
) -> None:
    api.model.add(reply)

    response = api.client.post(f"/sessions/fails-{code}/messages", json={"message": "hello"})

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    if code == "llm_rate_limited":
        assert response.headers["retry-after"] == "10"
    assert api.store.get(f"fails-{code}") is None  # nothing saved
    assert api.model.pending == 0


def test_a_stale_expected_version_is_a_conflict_before_any_model_call(api: SharedApi) -> None:
    model_calls = len(api.model.requests)

    response = api.client.post(
        "/sessions/conflict-1/messages", json={"message": "hi", "expected_version": 3}
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert len(api.model.requests) == model_calls


def test_a_session_with_no_room_left_is_a_409() -> None:
    llm = ScriptedLLM([text("a long answer " * 20)])
    store = InMemorySessionStore(max_session_bytes=100)

    with serve(scripted_dependencies(llm, store)) as service, service.http() as client:
        response = client.post("/sessions/big-1/messages", json={"message": "hi"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "session_too_large"


def test_a_store_outage_is_a_503_to_retry_and_its_detail_stays_in_the_logs() -> None:
    store = InMemorySessionStore()
    store.outage = SessionStoreUnavailableError("Redis is unreachable at 10.0.3.7:6379")

    with serve(scripted_dependencies(ScriptedLLM(), store)) as service, service.http() as client:
        step = client.post("/sessions/down-1/messages", json={"message": "hi"})
        read = client.get("/sessions/down-1")

    for response in (step, read):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json() == {
            "error": {
                "code": "store_unavailable",
                "message": "the session store is unavailable; retry later",
            }
        }


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/sessions/-bad/messages", b'{"message": "hi"}', 400, "invalid_session_id"),
        ("/sessions/s-1/messages", b"{not json", 400, "invalid_json"),
        ("/sessions/s-1/messages", b'["hi"]', 400, "validation_error"),
        ("/sessions/s-1/messages", b'{"message": "hi", "expected_version": "3"}', 400,
         "validation_error"),
        ("/sessions/s-1/messages", b'{"message": "hi", "extra": 1}', 400, "validation_error"),
        ("/sessions/s-1/messages", b'{"message": "' + b"x" * 2001 + b'"}', 400,
         "validation_error"),
        ("/sessions/s-1/messages", b'{"message": "' + b"x" * 9000 + b'"}', 413,
         "payload_too_large"),
    ],
    ids=["session-id", "json", "not-object", "strict-version", "extra-field", "too-long",
         "too-big"],
)  # fmt: skip
def test_invalid_requests_are_refused_before_the_model(
    api: SharedApi, path: str, body: bytes, status: int, code: str
) -> None:
    model_calls = len(api.model.requests)

    response = api.client.post(path, content=body, headers={"content-type": "application/json"})

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert len(api.model.requests) == model_calls


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(api: SharedApi) -> None:
    # No Content-Length: the limit is enforced while the body streams in.
    def chunks() -> Iterator[bytes]:
        yield b'{"message": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    response = api.client.post("/sessions/s-1/messages", content=chunks())

    assert response.status_code == 413
    assert response.json() == {
        "error": {
            "code": "payload_too_large",
            "message": "the body is over the limit of 8192 bytes",
        }
    }


def test_unknown_sessions_routes_and_methods_use_the_error_shape(api: SharedApi) -> None:
    missing = api.client.get("/sessions/never-seen")
    no_route = api.client.get("/nowhere")
    wrong_method = api.client.delete("/sessions/never-seen")

    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert no_route.status_code == 404
    assert no_route.json() == {"error": {"code": "not_found", "message": "no such route"}}
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_health_and_readiness(api: SharedApi) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_not_ready_while_the_store_is_down_and_ready_once_it_is_back() -> None:
    store = InMemorySessionStore()
    store.outage = ConnectionError("connection refused")
    deps = scripted_dependencies(ScriptedLLM(), store)

    with serve(deps) as service, service.http() as client:
        down = client.get("/readyz")
        store.outage = None
        back = client.get("/readyz")
        alive = client.get("/healthz")

    assert down.status_code == 503
    assert down.json() == {
        "error": {
            "code": "not_ready",
            "message": "the session store is unreachable (ConnectionError)",
        }
    }
    assert back.status_code == 200
    # Liveness never depends on the store: an outage must not get processes restarted.
    assert alive.status_code == 200


def test_a_ready_check_replaces_the_store_probe() -> None:
    calls: list[str] = []

    def table_missing() -> None:
        calls.append("checked")
        raise LookupError("table not found")

    settings = service_settings()
    app = create_app(
        deps=scripted_dependencies(ScriptedLLM(), InMemorySessionStore()),
        settings=settings,
        ready_check=table_missing,
    )
    with running_service(app, settings) as service, service.http() as client:
        response = client.get("/readyz")

    assert response.status_code == 503
    assert "LookupError" in response.json()["error"]["message"]
    assert calls == ["checked"]


def test_openapi_documents_the_api(api: SharedApi) -> None:
    spec = api.client.get("/openapi.json").json()

    assert set(spec["paths"]) >= {
        "/sessions/{session_id}/messages",
        "/sessions/{session_id}",
        "/healthz",
        "/readyz",
    }
    post = spec["paths"]["/sessions/{session_id}/messages"]["post"]
    body_schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["required"] == ["message"]
    assert body_schema["additionalProperties"] is False
    assert {"200", "400", "409", "413", "502", "503", "504"} <= set(post["responses"])
    # The WebSocket protocol, which OpenAPI cannot describe, is in the description.
    assert "WS   /agent/{session_id}" in spec["info"]["description"]
    assert api.client.get("/docs").status_code == 200
