"""build_llm_client picks and wires the backend the settings name, importing only what it needs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from runtime.llm.bedrock import BedrockConverseClient
from runtime.llm.factory import build_llm_client
from runtime.llm.openai_compat import OpenAICompatibleClient
from runtime.llm.types import LLMTimeoutError, Message
from runtime.settings import RuntimeSettings
from tests.fakes.openai_server import DelayedReply, FakeOpenAIServer, TextReply

# A retry loop that never ends must fail the test, not hang the suite.
pytestmark = pytest.mark.timeout(20)

REPO_ROOT = Path(__file__).resolve().parents[2]


def settings(**overrides: str) -> RuntimeSettings:
    env = {
        "SESSION_TABLE_NAME": "sessions",
        "SESSION_TTL_SECONDS": "3600",
        "LLM_PROVIDER": "bedrock",
        "LLM_MODEL_ID": "test-model",
        "LLM_REQUEST_TIMEOUT_SECONDS": "30",
        "LLM_MAX_ATTEMPTS": "3",
        "AGENT_MAX_ITERATIONS": "5",
        "MAX_MESSAGE_CHARS": "4000",
        "MAX_BODY_BYTES": "8192",
    }
    env.update(overrides)
    return RuntimeSettings.from_env(env)


def test_bedrock_provider_uses_the_injected_client(aws_env) -> None:
    bedrock = boto3.client("bedrock-runtime", region_name="us-east-1")
    client = build_llm_client(settings(), bedrock_client=bedrock)
    assert isinstance(client, BedrockConverseClient)
    with Stubber(bedrock) as stubber:
        stubber.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": 1},
            },
            {"modelId": "test-model", "messages": [{"role": "user", "content": [{"text": "x"}]}]},
        )
        assert client.complete([Message(role="user", content="x")]).message.content == "hi"


def test_openai_provider_reads_the_key_from_the_secret(secretsmanager) -> None:
    arn = secretsmanager.create_secret(Name="k", SecretString=json.dumps({"api_key": "sk-abc"}))[
        "ARN"
    ]
    with FakeOpenAIServer([TextReply("hello")]) as server:
        client = build_llm_client(
            settings(
                LLM_PROVIDER="openai-compatible",
                LLM_BASE_URL=server.base_url,
                LLM_API_KEY_SECRET_ARN=arn,
            ),
            secrets_client=secretsmanager,
        )
        assert isinstance(client, OpenAICompatibleClient)
        assert client.complete([Message(role="user", content="x")]).message.content == "hello"
    assert server.requests[0].authorization == "Bearer sk-abc"
    assert server.requests[0].body["model"] == "test-model"


def test_openai_provider_without_a_secret_sends_no_key() -> None:
    with FakeOpenAIServer([TextReply("hello")]) as server:
        client = build_llm_client(
            settings(LLM_PROVIDER="openai-compatible", LLM_BASE_URL=server.base_url + "/")
        )
        client.complete([Message(role="user", content="x")])
    assert server.requests[0].authorization is None
    assert server.requests[0].path == "/v1/chat/completions"


def test_settings_timeout_and_attempts_reach_the_openai_client() -> None:
    script = [DelayedReply(3.0, TextReply("late"))] * 2
    with FakeOpenAIServer(script) as server:
        client = build_llm_client(
            settings(
                LLM_PROVIDER="openai-compatible",
                LLM_BASE_URL=server.base_url,
                LLM_REQUEST_TIMEOUT_SECONDS="0.2",
                LLM_MAX_ATTEMPTS="2",
            )
        )
        started = time.monotonic()
        with pytest.raises(LLMTimeoutError):
            client.complete([Message(role="user", content="x")])
        assert time.monotonic() - started < 2.0
    assert len(server.requests) == 2


def test_total_budget_bounds_the_openai_call() -> None:
    with FakeOpenAIServer([DelayedReply(3.0, TextReply("late"))] * 3) as server:
        client = build_llm_client(
            settings(LLM_PROVIDER="openai-compatible", LLM_BASE_URL=server.base_url),
            total_budget_seconds=0.3,
        )
        started = time.monotonic()
        with pytest.raises(LLMTimeoutError):
            client.complete([Message(role="user", content="x")])
        assert time.monotonic() - started < 1.5
    assert len(server.requests) == 1


def test_importing_the_factory_loads_neither_httpx_nor_boto3() -> None:
    probe = (
        "import sys, runtime.llm.factory; "
        "print(sorted(m for m in ('httpx', 'boto3', 'botocore') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
