"""End to end through the real dependencies: nothing injected into the handler.

The handler builds its own store and LLM client from the environment, exactly as in Lambda:
DynamoDB and Secrets Manager are moto, the model is a real HTTP server speaking the
OpenAI-compatible protocol on 127.0.0.1, and the API key travels from the secret to the
``Authorization`` header.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.fakes.openai_server import DelayedReply, FakeOpenAIServer, TextReply, ToolCallReply
from tests.runtime.conftest import (
    REGION,
    FakeLambdaContext,
    create_session_table,
    get_session_event,
    post_message_event,
    response_json,
)

API_KEY = "sk-e2e-secret"


@pytest.fixture
def server(handler_env: dict[str, str], mocked_aws: None) -> Iterator[FakeOpenAIServer]:
    from runtime.handlers import serverless_api

    create_session_table(boto3.client("dynamodb", region_name=REGION))
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="serverless-agent/llm-api-key", SecretString=f'{{"api_key": "{API_KEY}"}}'
    )
    with FakeOpenAIServer(expected_api_key=API_KEY) as fake, pytest.MonkeyPatch.context() as env:
        env.setenv("LLM_BASE_URL", fake.base_url)
        env.setenv("LLM_API_KEY_SECRET_ARN", secret["ARN"])
        env.setenv("LLM_REQUEST_TIMEOUT_SECONDS", "10")
        env.setenv("LLM_MAX_ATTEMPTS", "1")
        # The real dependencies, built from this environment on the first invocation.
        serverless_api.set_dependencies(None)
        try:
            yield fake
        finally:
            serverless_api.set_dependencies(None)


def invoke(event: dict[str, Any], context: FakeLambdaContext | None = None) -> dict[str, Any]:
    from runtime.handlers.serverless_api import lambda_handler

    response: dict[str, Any] = lambda_handler(event, context or FakeLambdaContext())
    return response


def test_tool_call_then_answer_through_real_dependencies(
    server: FakeOpenAIServer, handler_env: dict[str, str]
) -> None:
    server.add(
        ToolCallReply("calculator", {"expression": "6 * 7"}, call_id="call_42"),
        TextReply("6 times 7 is 42.", prompt_tokens=30, completion_tokens=8),
    )

    response = invoke(post_message_event("e2e-1", {"message": "What is 6 times 7?"}))

    assert response["statusCode"] == 200, response["body"]
    assert response_json(response) == {
        "session_id": "e2e-1",
        "output": "6 times 7 is 42.",
        "version": 1,
        "iterations": 2,
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 40, "output_tokens": 13},
    }
    first, second = server.requests
    assert first.authorization == second.authorization == f"Bearer {API_KEY}"
    assert first.body["model"] == handler_env["LLM_MODEL_ID"]
    assert first.body["messages"][0] == {
        "role": "system",
        "content": handler_env["AGENT_SYSTEM_PROMPT"],
    }
    assert "calculator" in [tool["function"]["name"] for tool in first.body["tools"]]
    tool_message = second.body["messages"][-1]
    assert (tool_message["role"], tool_message["tool_call_id"]) == ("tool", "call_42")
    assert tool_message["content"] == "42"

    stored = response_json(invoke(get_session_event("e2e-1")))
    assert stored["version"] == 1
    assert stored["messages"] == [
        {"role": "user", "content": "What is 6 times 7?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_42", "name": "calculator", "arguments": {"expression": "6 * 7"}}
            ],
        },
        {"role": "tool", "content": "42", "tool_call_id": "call_42"},
        {"role": "assistant", "content": "6 times 7 is 42."},
    ]


def test_next_turn_sends_the_stored_tool_history(server: FakeOpenAIServer) -> None:
    server.add(
        ToolCallReply("calculator", {"expression": "2 ** 5"}, call_id="call_a"),
        TextReply("32."),
        TextReply("You asked about 2 to the 5th."),
    )
    invoke(post_message_event("e2e-2", {"message": "2 to the 5th?"}))

    response = invoke(
        post_message_event("e2e-2", {"message": "What did I ask?", "expected_version": 1})
    )

    assert response["statusCode"] == 200, response["body"]
    assert response_json(response)["version"] == 2
    roles = [message["role"] for message in server.requests[2].body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]


def test_slow_model_is_a_504_within_the_lambda_time_and_saves_nothing(
    server: FakeOpenAIServer,
) -> None:
    from runtime.wiring import LLM_SAFETY_MARGIN_SECONDS

    server.add(TextReply("first"), DelayedReply(5.0, TextReply("too late")))
    invoke(post_message_event("e2e-3", {"message": "one"}))
    before = response_json(invoke(get_session_event("e2e-3")))
    # 0.5 s of model budget left: the client must give up long before the server answers.
    context = FakeLambdaContext(remaining_millis=int((LLM_SAFETY_MARGIN_SECONDS + 0.5) * 1000))

    response = invoke(post_message_event("e2e-3", {"message": "two"}), context)

    assert response["statusCode"] == 504
    assert response_json(response)["error"]["code"] == "llm_timeout"
    assert response_json(invoke(get_session_event("e2e-3"))) == before


def test_the_key_is_fetched_once_per_container_not_per_model_call(
    server: FakeOpenAIServer,
) -> None:
    # Three model calls over two invocations. A changed secret is not seen inside the cache's TTL:
    # every call still carries the first key, so the secret was read once, not once per call.
    server.add(
        ToolCallReply("calculator", {"expression": "1 + 1"}, call_id="call_k"),
        TextReply("2."),
        TextReply("still 2."),
    )
    assert invoke(post_message_event("e2e-4", {"message": "1 + 1?"}))["statusCode"] == 200
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId="serverless-agent/llm-api-key", SecretString='{"api_key": "sk-rotated"}'
    )

    response = invoke(post_message_event("e2e-4", {"message": "and again?"}))

    assert response["statusCode"] == 200, response["body"]
    assert [r.authorization for r in server.requests] == [f"Bearer {API_KEY}"] * 3
