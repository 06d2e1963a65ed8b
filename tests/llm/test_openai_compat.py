"""OpenAICompatibleClient against a real HTTP fake server: wire format, retries, errors."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from runtime.llm.openai_compat import OpenAICompatibleClient
from runtime.llm.retry import RetryPolicy
from runtime.llm.secrets import SecretCache
from runtime.llm.types import (
    LLMRateLimitedError,
    LLMTimeoutError,
    LLMUpstreamError,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)
from tests.fakes.openai_server import (
    DelayedReply,
    ErrorReply,
    FakeOpenAIServer,
    Reply,
    TextReply,
    ToolCallReply,
    ToolCallsReply,
)

# A retry loop that never ends must fail the test, not hang the suite.
pytestmark = pytest.mark.timeout(20)

KEY = "sk-test-SECRET-4242"
HELLO = [Message(role="user", content="hello")]
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


class Sleeper:
    """Records every backoff and really sleeps it (the delays in these tests are tiny)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(seconds)


def make_client(
    server: FakeOpenAIServer,
    *,
    api_key: Any = lambda: KEY,
    sleep: Sleeper | None = None,
    **policy: Any,
) -> OpenAICompatibleClient:
    settings: dict[str, Any] = {
        "max_attempts": 3,
        "base_delay_seconds": 0.01,
        "max_delay_seconds": 1.0,
        "request_timeout_seconds": 2.0,
    }
    settings.update(policy)
    return OpenAICompatibleClient(
        base_url=server.base_url,
        model="test-model",
        api_key=api_key,
        policy=RetryPolicy(**settings),
        sleep=sleep or Sleeper(),
    )


def test_text_reply_and_request_body() -> None:
    with FakeOpenAIServer([TextReply("Hi there", prompt_tokens=7, completion_tokens=3)]) as server:
        response = make_client(server).complete(HELLO, system="Be brief.")
    assert response.message == Message(role="assistant", content="Hi there")
    assert response.stop_reason == "end_turn"
    assert response.usage == Usage(input_tokens=7, output_tokens=3)
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.authorization == f"Bearer {KEY}"
    assert request.body == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
        ],
    }


def test_no_key_means_no_authorization_header() -> None:
    with FakeOpenAIServer([TextReply("ok")]) as server:
        make_client(server, api_key=None).complete(HELLO)
    assert server.requests[0].authorization is None


def test_length_finish_reason_maps_to_max_tokens() -> None:
    with FakeOpenAIServer([TextReply("cut off", finish_reason="length")]) as server:
        response = make_client(server).complete(HELLO)
    assert response.stop_reason == "max_tokens"


def test_tool_call_round_trip_in_openai_wire_format() -> None:
    conversation = [
        Message(role="user", content="Weather in Paris, then Lyon?"),
        Message(
            role="assistant",
            tool_calls=(ToolCall(id="call_a", name="get_weather", arguments={"city": "Paris"}),),
        ),
        Message(role="tool", content="18C and sunny", tool_call_id="call_a"),
    ]
    reply = ToolCallReply("get_weather", {"city": "Lyon"}, call_id="call_b")
    with FakeOpenAIServer([reply]) as server:
        response = make_client(server).complete(conversation, tools=[WEATHER])

    assert response.stop_reason == "tool_use"
    assert response.message.tool_calls == (
        ToolCall(id="call_b", name="get_weather", arguments={"city": "Lyon"}),
    )
    body = server.requests[0].body
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    user, assistant, tool = body["messages"]
    assert user == {"role": "user", "content": "Weather in Paris, then Lyon?"}
    assert assistant["role"] == "assistant"
    assert assistant["content"] is None
    [call] = assistant["tool_calls"]
    assert call["id"] == "call_a"
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    # OpenAI wants the arguments as a JSON *string*, not an object.
    assert isinstance(call["function"]["arguments"], str)
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert tool == {"role": "tool", "tool_call_id": "call_a", "content": "18C and sunny"}


def test_parallel_tool_calls_are_all_returned() -> None:
    reply = ToolCallsReply(
        (
            ToolCallReply("get_weather", {"city": "Paris"}, call_id="c1"),
            ToolCallReply("get_weather", {"city": "Rome"}, call_id="c2"),
        )
    )
    with FakeOpenAIServer([reply]) as server:
        response = make_client(server).complete(HELLO, tools=[WEATHER])
    assert [(c.id, dict(c.arguments)) for c in response.message.tool_calls] == [
        ("c1", {"city": "Paris"}),
        ("c2", {"city": "Rome"}),
    ]


def test_tool_calls_under_finish_reason_stop_still_mean_tool_use() -> None:
    # Some vLLM/Ollama builds answer like this; the calls must not be dropped as a final answer.
    call = {"id": "c9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    body = {
        "choices": [
            {
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                "finish_reason": "stop",
            }
        ]
    }
    with FakeOpenAIServer([ErrorReply(200, body=body)]) as server:
        response = make_client(server).complete(HELLO, tools=[WEATHER])
    assert response.stop_reason == "tool_use"
    assert response.message.tool_calls == (ToolCall(id="c9", name="get_weather", arguments={}),)
    assert response.usage == Usage()


def test_malformed_tool_arguments_are_an_upstream_error() -> None:
    reply = ToolCallReply("get_weather", '{"city": "Par', call_id="call_x")
    with FakeOpenAIServer([reply]) as server, pytest.raises(LLMUpstreamError) as info:
        make_client(server).complete(HELLO, tools=[WEATHER])
    message = str(info.value)
    assert "get_weather" in message
    assert "call_x" in message
    assert "not valid JSON" in message
    assert len(server.requests) == 1


def test_a_200_that_is_not_json_is_an_upstream_error() -> None:
    with (
        FakeOpenAIServer([ErrorReply(200, body="<html>gateway</html>")]) as server,
        pytest.raises(LLMUpstreamError, match="not JSON"),
    ):
        make_client(server).complete(HELLO)


def test_429_then_success_honours_retry_after() -> None:
    sleeper = Sleeper()
    script: list[Reply] = [ErrorReply(429, retry_after=0.3), TextReply("finally")]
    with FakeOpenAIServer(script) as server:
        response = make_client(server, sleep=sleeper, base_delay_seconds=0.01).complete(HELLO)
    assert response.message.content == "finally"
    assert sleeper.delays == [0.3]
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.3


def test_503_is_retried_with_jittered_backoff() -> None:
    sleeper = Sleeper()
    script: list[Reply] = [ErrorReply(503), ErrorReply(503), TextReply("up again")]
    with FakeOpenAIServer(script) as server:
        response = make_client(server, sleep=sleeper, base_delay_seconds=0.05).complete(HELLO)
    assert response.message.content == "up again"
    assert len(server.requests) == 3
    assert len(sleeper.delays) == 2
    # Full jitter: each wait is drawn from [0, base * 2**retry].
    assert 0 <= sleeper.delays[0] <= 0.05
    assert 0 <= sleeper.delays[1] <= 0.1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_gateway_errors_are_retried(status: int) -> None:
    with FakeOpenAIServer([ErrorReply(status), TextReply("ok")]) as server:
        assert make_client(server).complete(HELLO).message.content == "ok"
    assert len(server.requests) == 2


def test_400_is_not_retried_and_keeps_the_provider_message() -> None:
    script: list[Reply] = [
        ErrorReply(400, body={"error": {"message": "messages: too long"}}),
        TextReply("x"),
    ]
    with FakeOpenAIServer(script) as server, pytest.raises(LLMUpstreamError) as info:
        make_client(server).complete(HELLO)
    assert info.value.status == 400
    assert "messages: too long" in str(info.value)
    assert len(server.requests) == 1
    assert server.pending == 1


def test_an_echoed_key_is_scrubbed_from_the_error() -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    with (
        FakeOpenAIServer([ErrorReply(403, body=body)]) as server,
        pytest.raises(LLMUpstreamError) as info,
    ):
        make_client(server).complete(HELLO)
    assert KEY not in str(info.value)
    assert "[redacted]" in str(info.value)


def test_slow_reply_times_out_within_a_bounded_time() -> None:
    script: list[Reply] = [
        DelayedReply(3.0, TextReply("too late")),
        DelayedReply(3.0, TextReply("too late")),
    ]
    with FakeOpenAIServer(script) as server:
        client = make_client(server, max_attempts=2, request_timeout_seconds=0.2)
        started = time.monotonic()
        with pytest.raises(LLMTimeoutError) as info:
            client.complete(HELLO)
        elapsed = time.monotonic() - started
    assert elapsed < 1.5
    assert len(server.requests) == 2
    assert "0.2s" in str(info.value)
    assert KEY not in str(info.value)


def test_a_timeout_is_retried_and_the_next_attempt_can_succeed() -> None:
    script: list[Reply] = [DelayedReply(3.0, TextReply("too late")), TextReply("fast")]
    with FakeOpenAIServer(script) as server:
        client = make_client(server, max_attempts=2, request_timeout_seconds=0.2)
        assert client.complete(HELLO).message.content == "fast"


def test_exhausted_429s_raise_rate_limited() -> None:
    with (
        FakeOpenAIServer([ErrorReply(429)] * 3) as server,
        pytest.raises(LLMRateLimitedError) as info,
    ):
        make_client(server, max_attempts=3).complete(HELLO)
    assert len(server.requests) == 3
    assert "after 3 attempt(s), attempts exhausted" in str(info.value)
    assert KEY not in str(info.value)


def test_exhausted_5xx_raise_upstream_with_the_last_status() -> None:
    with (
        FakeOpenAIServer([ErrorReply(500), ErrorReply(503)]) as server,
        pytest.raises(LLMUpstreamError) as info,
    ):
        make_client(server, max_attempts=2).complete(HELLO)
    assert info.value.status == 503
    assert len(server.requests) == 2
    assert KEY not in str(info.value)


def test_budget_stops_retrying_instead_of_sleeping_past_it() -> None:
    sleeper = Sleeper()
    script: list[Reply] = [ErrorReply(429, retry_after=5), TextReply("never reached")]
    with FakeOpenAIServer(script) as server:
        client = make_client(
            server, sleep=sleeper, max_delay_seconds=10.0, total_budget_seconds=1.0
        )
        with pytest.raises(LLMRateLimitedError, match="time budget spent"):
            client.complete(HELLO)
    assert sleeper.delays == []
    assert len(server.requests) == 1


def test_unreachable_provider_is_an_upstream_error() -> None:
    with FakeOpenAIServer() as server:
        client = make_client(server, max_attempts=2)
    # The server is stopped: its port now refuses connections.
    with pytest.raises(LLMUpstreamError, match="could not reach"):
        client.complete(HELLO)


def test_empty_script_fails_loudly() -> None:
    with FakeOpenAIServer() as server, pytest.raises(LLMUpstreamError) as info:
        make_client(server, max_attempts=1).complete(HELLO)
    assert info.value.status == 500
    assert "no scripted reply left" in str(info.value)


def test_401_invalidates_the_cached_key_and_retries_with_the_new_one(secretsmanager) -> None:
    arn = secretsmanager.create_secret(Name="k", SecretString="sk-rotated-out-111")["ARN"]
    cache = SecretCache(arn, client=secretsmanager)
    assert cache.get() == "sk-rotated-out-111"
    secretsmanager.put_secret_value(SecretId=arn, SecretString="sk-current-222")
    sleeper = Sleeper()
    with FakeOpenAIServer([TextReply("authorised")], expected_api_key="sk-current-222") as server:
        response = make_client(server, api_key=cache, sleep=sleeper).complete(HELLO)
    assert response.message.content == "authorised"
    assert [r.authorization for r in server.requests] == [
        "Bearer sk-rotated-out-111",
        "Bearer sk-current-222",
    ]
    assert sleeper.delays == []


def test_401_with_a_plain_callable_asks_it_again() -> None:
    keys = iter(["stale", "fresh"])
    with FakeOpenAIServer([TextReply("ok")], expected_api_key="fresh") as server:
        make_client(server, api_key=lambda: next(keys)).complete(HELLO)
    assert [r.authorization for r in server.requests] == ["Bearer stale", "Bearer fresh"]


def test_a_still_wrong_key_after_refresh_is_a_401_error(secretsmanager) -> None:
    arn = secretsmanager.create_secret(Name="k", SecretString=KEY)["ARN"]
    with (
        FakeOpenAIServer([TextReply("never")], expected_api_key="another") as server,
        pytest.raises(LLMUpstreamError) as info,
    ):
        make_client(server, api_key=SecretCache(arn, client=secretsmanager)).complete(HELLO)
    assert info.value.status == 401
    assert len(server.requests) == 2
    assert server.pending == 1
    assert KEY not in str(info.value)


def test_401_without_a_key_is_not_retried() -> None:
    with (
        FakeOpenAIServer([TextReply("never")], expected_api_key="needed") as server,
        pytest.raises(LLMUpstreamError) as info,
    ):
        make_client(server, api_key=None).complete(HELLO)
    assert info.value.status == 401
    assert len(server.requests) == 1
