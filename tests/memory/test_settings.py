"""MEMORY_* settings and build_memory_tools: what the environment must say, and what it builds.

The built tools run against the real PostgreSQL; the remote embedders against local fakes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from runtime.llm.types import ToolCall
from runtime.memory.context import bind_session
from runtime.memory.factory import build_memory_tools
from runtime.memory.settings import MemorySettings
from runtime.settings import SettingsError
from runtime.tools import Tool, ToolRegistry, default_registry
from tests.fakes.postgres_server import PostgresServer

BASE = {"SESSION_TTL_SECONDS": "3600"}


@pytest.fixture
def memory_env(postgres_server: PostgresServer) -> Iterator[dict[str, str]]:
    """A pgvector environment on the test server; the tools' default table is dropped after."""
    yield {
        **BASE,
        "MEMORY_STORE": "pgvector",
        "MEMORY_DATABASE_URL": postgres_server.url,
        "MEMORY_DATABASE_USER": postgres_server.user,
        "MEMORY_DATABASE_PASSWORD": postgres_server.password,
        "MEMORY_EMBEDDER": "hashing",
    }
    with postgres_server.connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS agent_memories")


def run(tools: list[Tool], name: str, **arguments: object) -> str:
    registry: ToolRegistry = default_registry(extra=tools)
    with bind_session("s-settings"):
        result = registry.execute(ToolCall(id="c", name=name, arguments=arguments))
    assert not result.is_error, result.output
    return result.output


def test_memory_is_off_by_default() -> None:
    assert build_memory_tools({}) == []
    assert build_memory_tools({"MEMORY_STORE": "none", "MEMORY_EMBEDDER": "hashing"}) == []


def test_hashing_tools_on_the_real_database(memory_env: dict[str, str]) -> None:
    tools = build_memory_tools(memory_env)

    assert [tool.name for tool in tools] == ["remember", "recall"]
    run(tools, "remember", content="The build server is called Hopper.")
    assert "Hopper" in run(tools, "recall", query="build server")


def test_openai_compatible_embeddings_use_the_llm_endpoint_and_key(
    memory_env: dict[str, str],
) -> None:
    requests: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        count = len(json.loads(request.content)["input"])
        data = [{"index": i, "embedding": [1.0, 0.5, 0.25, 0.125]} for i in range(count)]
        return httpx.Response(200, json={"data": data})

    env = {
        **memory_env,
        "MEMORY_EMBEDDER": "openai-compatible",
        "MEMORY_EMBEDDING_MODEL": "nomic-embed-text",
        "MEMORY_EMBEDDING_DIMENSIONS": "4",
        "LLM_BASE_URL": "http://127.0.0.1:9/v1",
    }
    tools = build_memory_tools(
        env,
        llm_api_key=lambda: "llm-key",
        http_client=httpx.Client(transport=httpx.MockTransport(reply)),
    )

    run(tools, "remember", content="A fact.")
    assert "A fact." in run(tools, "recall", query="fact")
    assert [str(request.url) for request in requests] == ["http://127.0.0.1:9/v1/embeddings"] * 2
    assert requests[0].headers["authorization"] == "Bearer llm-key"
    assert json.loads(requests[0].content)["model"] == "nomic-embed-text"


def test_bedrock_embeddings_default_to_titan_v2(memory_env: dict[str, str], aws_env: None) -> None:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    raw = json.dumps({"embedding": [0.03125] * 1024}).encode()
    env = {**memory_env, "MEMORY_EMBEDDER": "bedrock"}
    with Stubber(client) as stubber:
        stubber.add_response(
            "invoke_model",
            {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"},
            {
                "modelId": "amazon.titan-embed-text-v2:0",
                "body": ANY,
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
        tools = build_memory_tools(env, bedrock_client=client)
        run(tools, "remember", content="A fact for Titan.")
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"MEMORY_DATABASE_URL": None}, "MEMORY_DATABASE_URL is required"),
        (
            {"MEMORY_DATABASE_URL": "postgresql://u:hunter2@db:5432/app"},
            "put it in MEMORY_DATABASE_PASSWORD",
        ),
        ({"MEMORY_DATABASE_USER": None}, "set MEMORY_DATABASE_USER"),
        ({"SESSION_TTL_SECONDS": None}, "SESSION_TTL_SECONDS is required"),
        ({"SESSION_TTL_SECONDS": "10"}, "SESSION_TTL_SECONDS: Input should be greater than"),
        ({"MEMORY_STORE": "redis"}, "MEMORY_STORE: Input should be 'none' or 'pgvector'"),
        ({"MEMORY_SCOPE": "global"}, "MEMORY_SCOPE: Input should be"),
        ({"MEMORY_EMBEDDER": "bedrock", "MEMORY_EMBEDDING_DIMENSIONS": "768"}, "256, 512, 1024"),
        ({"MEMORY_EMBEDDING_DIMENSIONS": "4096"}, "less than or equal to 2000"),
        ({"MEMORY_EMBEDDER": "openai-compatible"}, "sends embeddings to LLM_BASE_URL"),
        (
            {"MEMORY_EMBEDDER": "openai-compatible", "LLM_BASE_URL": "http://h/v1"},
            "MEMORY_EMBEDDING_MODEL is required",
        ),
        (
            {
                "MEMORY_EMBEDDER": "openai-compatible",
                "LLM_BASE_URL": "http://h/v1",
                "MEMORY_EMBEDDING_MODEL": "m",
            },
            "MEMORY_EMBEDDING_DIMENSIONS is required",
        ),
    ],
)
def test_bad_environments_are_refused(overrides: dict[str, str | None], message: str) -> None:
    env: dict[str, Any] = {
        **BASE,
        "MEMORY_STORE": "pgvector",
        "MEMORY_DATABASE_URL": "postgresql://db.internal:5432/memory",
        "MEMORY_DATABASE_USER": "memory_admin",
        "MEMORY_DATABASE_PASSWORD": "hunter2",
        "MEMORY_EMBEDDER": "hashing",
        **overrides,
    }
    env = {name: value for name, value in env.items() if value is not None}

    with pytest.raises(SettingsError, match="invalid memory environment") as raised:
        build_memory_tools(env)

    assert message in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_defaults_per_embedder() -> None:
    env = {**BASE, "MEMORY_STORE": "pgvector", "MEMORY_DATABASE_URL": "postgresql://u@h/db"}
    bedrock = MemorySettings.from_env(env)
    hashing = MemorySettings.from_env({**env, "MEMORY_EMBEDDER": "hashing"})

    assert (bedrock.embedding_model, bedrock.embedding_dimensions) == (
        "amazon.titan-embed-text-v2:0",
        1024,
    )
    assert hashing.embedding_dimensions == 256
    assert bedrock.memory_scope == "session"
    assert "hunter2" not in repr(
        MemorySettings.from_env({**env, "MEMORY_DATABASE_PASSWORD": "hunter2"})
    )
