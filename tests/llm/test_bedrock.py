"""BedrockConverseClient on a real bedrock-runtime client, stubbed with botocore's Stubber.

moto does not implement ``converse``; Stubber still validates every request against the service
model, so a mapping Bedrock would reject fails here too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

from runtime.llm.bedrock import (
    BedrockConverseClient,
    build_converse_request,
    make_bedrock_runtime_client,
)
from runtime.llm.types import (
    LLMRateLimitedError,
    LLMTimeoutError,
    LLMUpstreamError,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
WEATHER_CONFIG = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "inputSchema": {
                    "json": {"type": "object", "properties": {"city": {"type": "string"}}}
                },
            }
        }
    ]
}


def converse_reply(
    content: list[dict[str, Any]], stop_reason: str, tokens: tuple[int, int] = (10, 5)
) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {
            "inputTokens": tokens[0],
            "outputTokens": tokens[1],
            "totalTokens": sum(tokens),
        },
        "metrics": {"latencyMs": 42},
    }


@pytest.fixture
def stubbed(aws_env: None) -> Iterator[tuple[BedrockConverseClient, Stubber]]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield BedrockConverseClient(model_id=MODEL, client=client), stubber
        stubber.assert_no_pending_responses()


def test_text_reply(stubbed) -> None:
    llm, stubber = stubbed
    stubber.add_response(
        "converse",
        converse_reply([{"text": "Hello!"}], "end_turn", (12, 3)),
        expected_params={
            "modelId": MODEL,
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "system": [{"text": "Be nice."}],
        },
    )
    response = llm.complete([Message(role="user", content="hi")], system="Be nice.")
    assert response.message == Message(role="assistant", content="Hello!")
    assert response.stop_reason == "end_turn"
    assert response.usage == Usage(input_tokens=12, output_tokens=3)


def test_tool_use_round_trip(stubbed) -> None:
    llm, stubber = stubbed
    question = Message(role="user", content="Weather in Paris?")
    stubber.add_response(
        "converse",
        converse_reply(
            [
                {"text": "Let me check."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
            ],
            "tool_use",
        ),
        expected_params={
            "modelId": MODEL,
            "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
            "toolConfig": WEATHER_CONFIG,
        },
    )
    first = llm.complete([question], tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    assert first.message.content == "Let me check."
    assert first.message.tool_calls == (
        ToolCall(id="tooluse_1", name="get_weather", arguments={"city": "Paris"}),
    )

    result = Message(role="tool", content="18C", tool_call_id="tooluse_1")
    stubber.add_response(
        "converse",
        converse_reply([{"text": "It is 18C in Paris."}], "end_turn"),
        expected_params={
            "modelId": MODEL,
            "messages": [
                {"role": "user", "content": [{"text": "Weather in Paris?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"text": "Let me check."},
                        {
                            "toolUse": {
                                "toolUseId": "tooluse_1",
                                "name": "get_weather",
                                "input": {"city": "Paris"},
                            }
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}}
                    ],
                },
            ],
            "toolConfig": WEATHER_CONFIG,
        },
    )
    second = llm.complete([question, first.message, result], tools=[WEATHER])
    assert second.message.content == "It is 18C in Paris."
    assert second.stop_reason == "end_turn"


def test_multi_turn_mapping_merges_consecutive_user_side_messages(stubbed) -> None:
    llm, stubber = stubbed
    conversation = [
        Message(role="user", content="Paris and Rome?"),
        Message(
            role="assistant",
            tool_calls=(
                ToolCall(id="t1", name="get_weather", arguments={"city": "Paris"}),
                ToolCall(id="t2", name="get_weather", arguments={"city": "Rome"}),
            ),
        ),
        Message(role="tool", content="18C", tool_call_id="t1"),
        Message(role="tool", content="", tool_call_id="t2"),
        Message(role="user", content="And tomorrow?"),
        Message(role="system", content="Answer in Celsius."),
    ]
    expected_messages = [
        {"role": "user", "content": [{"text": "Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "t2", "name": "get_weather", "input": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": "18C"}]}},
                {"toolResult": {"toolUseId": "t2", "content": [{"text": "(no output)"}]}},
                {"text": "And tomorrow?"},
            ],
        },
    ]
    assert build_converse_request(MODEL, conversation, system="Be brief.") == {
        "modelId": MODEL,
        "messages": expected_messages,
        "system": [{"text": "Be brief."}, {"text": "Answer in Celsius."}],
    }
    stubber.add_response(
        "converse",
        converse_reply([{"text": "Unknown."}], "max_tokens"),
        expected_params={
            "modelId": MODEL,
            "messages": expected_messages,
            "system": [{"text": "Be brief."}, {"text": "Answer in Celsius."}],
            "toolConfig": WEATHER_CONFIG,
        },
    )
    response = llm.complete(conversation, tools=[WEATHER], system="Be brief.")
    assert response.stop_reason == "max_tokens"


def test_max_tokens_goes_into_inference_config(aws_env: None) -> None:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    llm = BedrockConverseClient(model_id=MODEL, client=client, max_tokens=256)
    with Stubber(client) as stubber:
        stubber.add_response(
            "converse",
            converse_reply([{"text": "ok"}], "stop_sequence"),
            expected_params={
                "modelId": MODEL,
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "inferenceConfig": {"maxTokens": 256},
            },
        )
        response = llm.complete([Message(role="user", content="hi")])
    assert response.stop_reason == "end_turn"


def test_throttling_maps_to_rate_limited(stubbed) -> None:
    llm, stubber = stubbed
    stubber.add_client_error(
        "converse",
        service_error_code="ThrottlingException",
        service_message="Too many requests, please wait before trying again.",
        http_status_code=429,
    )
    with pytest.raises(LLMRateLimitedError, match="ThrottlingException"):
        llm.complete([Message(role="user", content="hi")])


def test_validation_error_maps_to_upstream_with_status(stubbed) -> None:
    llm, stubber = stubbed
    stubber.add_client_error(
        "converse",
        service_error_code="ValidationException",
        service_message="The model returned the following errors: prompt is too long",
        http_status_code=400,
    )
    with pytest.raises(LLMUpstreamError) as info:
        llm.complete([Message(role="user", content="hi")])
    assert info.value.status == 400
    assert "prompt is too long" in str(info.value)


def test_model_timeout_maps_to_timeout(stubbed) -> None:
    llm, stubber = stubbed
    stubber.add_client_error(
        "converse", service_error_code="ModelTimeoutException", http_status_code=408
    )
    with pytest.raises(LLMTimeoutError):
        llm.complete([Message(role="user", content="hi")])


def test_client_config_and_read_timeout_mapping(aws_env: None) -> None:
    client = make_bedrock_runtime_client(
        request_timeout_seconds=12.5, max_attempts=2, region_name="us-east-1"
    )
    # botocore-stubs does not declare Config's attributes.
    config: Any = client.meta.config
    assert config.read_timeout == 12.5
    assert config.connect_timeout == 5.0
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}

    sends: list[str] = []

    def time_out(request: Any, **_: Any) -> None:
        sends.append(request.url)
        raise ReadTimeoutError(endpoint_url=request.url)

    # Raised where the HTTP send would happen, so botocore's own retry logic sees it.
    client.meta.events.register("before-send.bedrock-runtime.Converse", time_out)
    llm = BedrockConverseClient(model_id=MODEL, client=client)
    with pytest.raises(LLMTimeoutError, match="ReadTimeoutError"):
        llm.complete([Message(role="user", content="hi")])
    assert len(sends) == 2
