"""The API Gateway Lambda handler, driven with real REST proxy events and a Lambda context.

DynamoDB is moto; the model is a ScriptedLLM injected through ``set_dependencies``. The handler
module is imported inside the fixture, after the environment is set, because Powertools' Metrics
reads its namespace when the module is imported.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from runtime.dynamodb_store import DynamoDBSessionStore
from runtime.llm.types import LLMRateLimitedError, LLMTimeoutError, LLMUpstreamError
from runtime.settings import RuntimeSettings
from runtime.tools import default_registry
from runtime.wiring import Dependencies
from tests.runtime.conftest import (
    TABLE_NAME,
    TTL_SECONDS,
    FakeLambdaContext,
    ScriptedLLM,
    api_event,
    get_session_event,
    post_message_event,
    response_header,
    response_json,
    text,
    tool_use,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from runtime.llm.types import LLMClient
    from runtime.session_store import SessionStore

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Api:
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    install: Callable[..., None]
    llm: ScriptedLLM
    store: DynamoDBSessionStore
    dynamodb: DynamoDBClient
    budgets: list[float] = field(default_factory=list)
    context: FakeLambdaContext = field(default_factory=FakeLambdaContext)

    def post(self, session_id: str, body: Any, *, base64_body: bool = False) -> dict[str, Any]:
        event = post_message_event(session_id, body, base64_body=base64_body)
        return self.handler(event, self.context)

    def get(self, session_id: str) -> dict[str, Any]:
        return self.handler(get_session_event(session_id), self.context)


@pytest.fixture
def api(handler_env: dict[str, str], dynamodb: DynamoDBClient) -> Iterator[Api]:
    from runtime.handlers import serverless_api

    llm = ScriptedLLM()
    store = DynamoDBSessionStore(TABLE_NAME, ttl_seconds=TTL_SECONDS, client=dynamodb)
    harness = Api(
        handler=serverless_api.lambda_handler,
        install=lambda **_: None,
        llm=llm,
        store=store,
        dynamodb=dynamodb,
    )

    def factory(budget_seconds: float) -> LLMClient:
        harness.budgets.append(budget_seconds)
        return llm

    def install(*, store: SessionStore = store) -> None:
        serverless_api.set_dependencies(
            Dependencies(
                settings=RuntimeSettings.from_env(os.environ),
                store=store,
                llm_factory=factory,
                tools=default_registry(),
            )
        )

    harness.install = install
    install()
    yield harness
    serverless_api.set_dependencies(None)


@pytest.fixture
def logs(api: Api, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[dict[str, Any]]]:
    """The handler's structured log lines (its handler holds the stdout it saw at import)."""
    from runtime.handlers import serverless_api

    buffer = io.StringIO()
    monkeypatch.setattr(serverless_api.logger.registered_handler, "stream", buffer)
    return lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line]


def error_of(response: Mapping[str, Any]) -> dict[str, str]:
    body = response_json(response)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return dict(body["error"])


def test_step_and_get_round_trip_restore_state(api: Api, handler_env: dict[str, str]) -> None:
    api.llm.script += [
        text("Hello Ada.", input_tokens=11, output_tokens=3),
        text("You are Ada.", input_tokens=21, output_tokens=4),
    ]

    first = api.post("chat-1", {"message": "I am Ada."})
    second = api.post("chat-1", {"message": "Who am I?", "expected_version": 1})

    assert first["statusCode"] == 200
    assert response_json(first) == {
        "session_id": "chat-1",
        "output": "Hello Ada.",
        "version": 1,
        "iterations": 1,
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 11, "output_tokens": 3},
    }
    assert second["statusCode"] == 200
    assert response_json(second)["version"] == 2
    # The second invocation restored the first turn from DynamoDB before calling the model.
    sent = [(m.role, m.content) for m in api.llm.calls[1].messages]
    assert sent == [
        ("user", "I am Ada."),
        ("assistant", "Hello Ada."),
        ("user", "Who am I?"),
    ]
    assert api.llm.calls[1].system == handler_env["AGENT_SYSTEM_PROMPT"]

    got = api.get("chat-1")
    assert got["statusCode"] == 200
    session = response_json(got)
    assert session["session_id"] == "chat-1"
    assert session["version"] == 2
    assert session["messages"] == [
        {"role": "user", "content": "I am Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "Who am I?"},
        {"role": "assistant", "content": "You are Ada."},
    ]
    assert session["created_at"] <= session["updated_at"] <= time.time()
    assert session["expires_at"] == session["updated_at"] + TTL_SECONDS


def test_tool_calls_run_inside_the_invocation(api: Api) -> None:
    api.llm.script += [tool_use("calculator", {"expression": "6 * 7"}), text("42.")]

    response = api.post("calc", {"message": "6 x 7?"})

    assert response["statusCode"] == 200
    assert response_json(response)["iterations"] == 2
    messages = response_json(api.get("calc"))["messages"]
    assert {"role": "tool", "content": "42", "tool_call_id": "call_1"} in messages


def test_llm_budget_is_the_remaining_time_minus_a_margin(api: Api) -> None:
    from runtime.wiring import LLM_SAFETY_MARGIN_SECONDS

    api.context.remaining_millis = 20_000
    api.llm.script += [text("ok")]

    assert api.post("budget", {"message": "hi"})["statusCode"] == 200
    assert api.budgets == [pytest.approx(20.0 - LLM_SAFETY_MARGIN_SECONDS)]


def test_no_time_left_is_a_504_without_calling_the_model(api: Api) -> None:
    api.context.remaining_millis = 1_000
    api.llm.script += [text("never")]

    response = api.post("late", {"message": "hi"})

    assert response["statusCode"] == 504
    assert error_of(response)["code"] == "llm_timeout"
    assert api.llm.calls == []
    assert api.get("late")["statusCode"] == 404


def test_invalid_json_is_400(api: Api) -> None:
    response = api.post("s", '{"message": "unterminated')

    assert response["statusCode"] == 400
    assert error_of(response)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({}, "message"),
        ({"message": 5}, "message"),
        ({"message": ""}, "message"),
        ({"message": "x" * 201}, "message"),
        ({"message": "hi", "expected_version": "1"}, "expected_version"),
        ({"message": "hi", "expected_version": True}, "expected_version"),
        ({"message": "hi", "expected_version": -1}, "expected_version"),
        ({"message": "hi", "role": "system"}, "role"),
        ([{"message": "hi"}], "body"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(api: Api, body: Any, field_name: str) -> None:
    response = api.post("s", json.dumps(body))

    assert response["statusCode"] == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert error["message"].startswith(f"{field_name}:")
    assert api.llm.calls == []


def test_oversized_body_is_413_measured_in_bytes(api: Api) -> None:
    # 600 characters but 1200 UTF-8 bytes: over MAX_BODY_BYTES=1024.
    response = api.post("s", json.dumps({"message": "é" * 600}, ensure_ascii=False))

    assert response["statusCode"] == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert api.llm.calls == []


def test_base64_bodies_are_measured_after_decoding(api: Api) -> None:
    api.llm.script += [text("ok")]
    payload = json.dumps({"message": "m" * 190}).encode()
    # Trailing whitespace keeps the JSON valid; base64 makes the event's text 4/3 as long.
    fits = payload.ljust(1000)
    too_big = payload.ljust(1100)

    accepted = api.post("b64", fits, base64_body=True)
    rejected = api.post("b64", too_big, base64_body=True)
    garbage = api.handler(
        {**post_message_event("b64", None), "body": "%%%not-base64", "isBase64Encoded": True},
        api.context,
    )

    assert accepted["statusCode"] == 200
    assert api.llm.calls[0].messages[-1].content == "m" * 190
    assert rejected["statusCode"] == 413
    assert garbage["statusCode"] == 400
    assert error_of(garbage)["code"] == "invalid_body"


@pytest.mark.parametrize("session_id", ["-leading-dash", "a" * 129, "has%20space", "semi;colon"])
def test_bad_session_ids_are_400(api: Api, session_id: str) -> None:
    posted = api.post(session_id, {"message": "hi"})
    got = api.get(session_id)

    for response in (posted, got):
        assert response["statusCode"] == 400
        assert error_of(response)["code"] == "invalid_session_id"


def test_unknown_session_is_404(api: Api) -> None:
    response = api.get("nobody-here")

    assert response["statusCode"] == 404
    assert error_of(response)["code"] == "not_found"


def test_expired_session_is_404(api: Api) -> None:
    now = int(time.time())
    api.dynamodb.put_item(
        TableName=TABLE_NAME,
        Item={
            "session_id": {"S": "old"},
            "messages": {"S": "[]"},
            "version": {"N": "3"},
            "created_at": {"N": str(now - 7200)},
            "updated_at": {"N": str(now - 3700)},
            "expires_at": {"N": str(now - 100)},
        },
    )

    assert api.get("old")["statusCode"] == 404


def test_unknown_route_is_a_json_404(api: Api) -> None:
    event = api_event("DELETE", "/sessions/{session_id}", {"session_id": "x"})
    response = api.handler(event, api.context)

    assert response["statusCode"] == 404
    assert error_of(response)["code"] == "not_found"


def test_the_front_doors_http_api_event_reaches_the_same_routes(api: Api) -> None:
    # The hybrid front door: an HTTP API route ANY /v1/sessions/{proxy+} with payload format
    # 1.0 (stacks/front_door_stack.py); the path keeps /v1, the path parameter is the proxy.
    api.llm.script += [text("hello from the front door")]
    event = post_message_event("front-door", {"message": "hi"})
    event |= {
        "resource": "/v1/sessions/{proxy+}",
        "path": "/v1/sessions/front-door/messages",
        "pathParameters": {"proxy": "front-door/messages"},
    }
    response = api.handler(event, api.context)
    assert response["statusCode"] == 200, response
    assert response_json(response)["output"] == "hello from the front door"
    get = get_session_event("front-door") | {
        "resource": "/v1/sessions/{proxy+}",
        "path": "/v1/sessions/front-door",
        "pathParameters": {"proxy": "front-door"},
    }
    assert api.handler(get, api.context)["statusCode"] == 200


def test_expected_version_mismatch_is_409(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    api.llm.script += [text("first")]
    api.post("v", {"message": "one"})
    capsys.readouterr()

    response = api.post("v", {"message": "two", "expected_version": 0})

    assert response["statusCode"] == 409
    assert error_of(response)["code"] == "conflict"
    assert len(api.llm.calls) == 1
    assert '"SessionConflicts"' in capsys.readouterr().out


def test_llm_timeout_is_504_and_leaves_the_session_unchanged(api: Api) -> None:
    api.llm.script += [text("hello"), LLMTimeoutError("no reply within 5s")]
    api.post("t", {"message": "one"})
    before = response_json(api.get("t"))

    response = api.post("t", {"message": "two"})

    assert response["statusCode"] == 504
    assert error_of(response)["code"] == "llm_timeout"
    assert response_json(api.get("t")) == before


def test_llm_upstream_error_is_502(api: Api) -> None:
    api.llm.script += [LLMUpstreamError("HTTP 400: bad request", status=400)]

    response = api.post("u", {"message": "hi"})

    assert response["statusCode"] == 502
    assert error_of(response)["code"] == "llm_error"
    assert api.get("u")["statusCode"] == 404


def test_llm_rate_limit_is_503_with_retry_after(api: Api) -> None:
    api.llm.script += [LLMRateLimitedError("429 after 3 attempts")]

    response = api.post("r", {"message": "hi"})

    assert response["statusCode"] == 503
    assert error_of(response)["code"] == "llm_rate_limited"
    assert int(response_header(response, "Retry-After")) > 0


def test_session_too_large_is_a_clear_409(api: Api) -> None:
    small_store = DynamoDBSessionStore(
        TABLE_NAME, ttl_seconds=TTL_SECONDS, client=api.dynamodb, max_item_bytes=300
    )
    api.install(store=small_store)
    api.llm.script += [text("y" * 400)]

    response = api.post("big", {"message": "hi"})

    assert response["statusCode"] == 409
    assert error_of(response)["code"] == "session_too_large"


class ExplodingStore:
    def get(self, session_id: str) -> None:
        raise RuntimeError("database exploded: password=hunter2")

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not reached")


def test_unexpected_error_is_500_without_details(
    api: Api, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    api.install(store=ExplodingStore())

    response = api.post("boom", {"message": "hi"})

    assert response["statusCode"] == 500
    assert error_of(response) == {"code": "internal_error", "message": "internal error"}
    assert "Traceback" not in response["body"]
    assert "hunter2" not in response["body"]
    assert "RuntimeError" not in response["body"]
    [logged] = [line for line in logs() if line["level"] == "ERROR"]
    assert logged["message"] == "unhandled error"
    assert "database exploded" in logged["exception"]
    assert "Traceback" in logged["exception"]


def test_invalid_environment_is_a_logged_500(
    api: Api, monkeypatch: pytest.MonkeyPatch, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    from runtime.handlers import serverless_api

    serverless_api.set_dependencies(None)
    monkeypatch.delenv("LLM_MODEL_ID")

    response = api.post("env", {"message": "hi"})

    assert response["statusCode"] == 500
    assert error_of(response)["code"] == "internal_error"
    [logged] = [line for line in logs() if line["level"] == "ERROR"]
    assert "LLM_MODEL_ID" in logged["exception"]


def test_step_metrics_and_correlation_id_are_logged(
    api: Api,
    capsys: pytest.CaptureFixture[str],
    logs: Callable[[], list[dict[str, Any]]],
    handler_env: dict[str, str],
) -> None:
    api.llm.script += [text("ok", input_tokens=7, output_tokens=2)]
    event = post_message_event("m", {"message": "hi"})

    assert api.handler(event, api.context)["statusCode"] == 200

    # Metrics are printed to the current stdout; logs go through the logger's handler.
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    emf = [line for line in lines if "_aws" in line]
    step_metrics = next(m for m in emf if "AgentSteps" in m)
    assert (
        step_metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"]
        == (handler_env["POWERTOOLS_METRICS_NAMESPACE"])
    )
    assert (step_metrics["LLMInputTokens"], step_metrics["LLMOutputTokens"]) == ([7.0], [2.0])
    step_log = next(line for line in logs() if line.get("message") == "agent step done")
    assert step_log["correlation_id"] == event["requestContext"]["requestId"]
    assert step_log["session_id"] == "m"


def test_importing_the_handler_loads_no_sdk_or_store() -> None:
    code = (
        "import sys, runtime.handlers.serverless_api; "
        "print([m for m in ('boto3', 'httpx', 'runtime.dynamodb_store', 'runtime.llm.factory') "
        "if m in sys.modules])"
    )
    env = {
        **os.environ,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "x",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == "[]"
