"""Fixtures for the agent runtime tests: moto DynamoDB, a scripted model, API Gateway events.

Nothing here talks to AWS: credentials are fake and every boto3 call goes to moto.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import redis
from moto import mock_aws

from runtime.dynamodb_store import DynamoDBSessionStore
from runtime.llm.types import LLMResponse, Message, ToolCall, ToolSpec, Usage
from tests.fakes.clock import FakeClock
from tests.fakes.redis_server import RedisServer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

REGION = "us-east-1"
TABLE_NAME = "agent-sessions-test"
TTL_SECONDS = 3600


@pytest.fixture
def mocked_aws(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


def create_ttl_table(client: DynamoDBClient, name: str, partition_key: str) -> str:
    """A table as the stacks define theirs: on-demand, one string key, TTL on ``expires_at``."""
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": partition_key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": partition_key, "KeyType": "HASH"}],
    )
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
    return name


def create_session_table(client: DynamoDBClient, name: str = TABLE_NAME) -> str:
    return create_ttl_table(client, name, "session_id")


@cache
def boto_session() -> boto3.Session:
    """One session for every test: a fresh one re-reads the service models (~0.1 s per client).

    Its credentials are explicit fakes, and moto intercepts its clients like any other.
    """
    return boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        region_name=REGION,
    )


@pytest.fixture
def dynamodb(mocked_aws: None) -> DynamoDBClient:
    client = boto_session().client("dynamodb")
    create_session_table(client)
    return client


@pytest.fixture
def store(dynamodb: DynamoDBClient, clock: FakeClock) -> DynamoDBSessionStore:
    return DynamoDBSessionStore(TABLE_NAME, ttl_seconds=TTL_SECONDS, client=dynamodb, clock=clock)


# --- a scripted model --------------------------------------------------------------------------


def text(content: str, *, input_tokens: int = 10, output_tokens: int = 5) -> LLMResponse:
    return LLMResponse(
        message=Message(role="assistant", content=content),
        stop_reason="end_turn",
        usage=Usage(input_tokens, output_tokens),
    )


def tool_use(
    name: str,
    arguments: Mapping[str, Any],
    *,
    call_id: str = "call_1",
    content: str = "",
    input_tokens: int = 10,
    output_tokens: int = 5,
) -> LLMResponse:
    return LLMResponse(
        message=Message(
            role="assistant",
            content=content,
            tool_calls=(ToolCall(id=call_id, name=name, arguments=dict(arguments)),),
        ),
        stop_reason="tool_use",
        usage=Usage(input_tokens, output_tokens),
    )


ScriptStep = LLMResponse | BaseException | Callable[[Sequence[Message]], LLMResponse]


@dataclass(frozen=True)
class RecordedCall:
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    system: str | None


@dataclass
class ScriptedLLM:
    """An in-process ``LLMClient``: answers from a FIFO script and records what it was sent.

    A step is a response, an exception to raise, or a callable given the messages (to block on a
    barrier, or to build an answer from them). Running out of script fails the test loudly.
    """

    script: list[ScriptStep] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        system: str | None = None,
    ) -> LLMResponse:
        self.calls.append(RecordedCall(tuple(messages), tuple(tools), system))
        if not self.script:
            raise AssertionError(f"unexpected model call #{len(self.calls)}: the script is empty")
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, LLMResponse):
            return step
        return step(messages)


def barrier_then(barrier: threading.Barrier, response: LLMResponse) -> ScriptStep:
    """A script step that waits until every party has reached the model, then answers."""

    def step(_: Sequence[Message]) -> LLMResponse:
        barrier.wait()
        return response

    return step


# --- API Gateway REST (v1 proxy) events and a Lambda context -----------------------------------


@dataclass
class FakeLambdaContext:
    """The attributes Powertools and the handler read from the real ``LambdaContext``."""

    remaining_millis: int = 28_000
    function_name: str = "serverless-agent-api"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:serverless-agent-api"
    )
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/serverless-agent-api"
    log_stream_name: str = "2024/01/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


def api_event(
    method: str,
    resource: str,
    path_parameters: Mapping[str, str],
    *,
    body: str | bytes | Mapping[str, Any] | None = None,
    base64_body: bool = False,
    headers: Mapping[str, str] | None = None,
    stage: str = "prod",
) -> dict[str, Any]:
    """A complete API Gateway REST API proxy-integration event (payload format 1.0)."""
    path = resource
    for name, value in path_parameters.items():
        path = path.replace("{" + name + "}", value)
    if isinstance(body, Mapping):
        body = json.dumps(body)
    if base64_body and body is not None:
        raw = body if isinstance(body, bytes) else body.encode()
        body = base64.b64encode(raw).decode("ascii")
    elif isinstance(body, bytes):
        body = body.decode()
    all_headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "pytest",
        "X-Amzn-Trace-Id": "Root=1-5e1b4151-5ac6c58f3375aa3c7c6b88c9",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    request_id = str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": dict(path_parameters),
        "stageVariables": None,
        "requestContext": {
            "resourceId": "a1b2c3",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": "XyZ1aBcDeFgHiJk=",
            "requestTime": "01/Jan/2024:00:00:00 +0000",
            "path": f"/{stage}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1704067200000,
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": "203.0.113.7",
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": "pytest",
                "user": None,
            },
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123",
        },
        "body": body,
        "isBase64Encoded": base64_body,
    }


def post_message_event(
    session_id: str,
    body: str | bytes | Mapping[str, Any] | None,
    *,
    base64_body: bool = False,
) -> dict[str, Any]:
    return api_event(
        "POST",
        "/sessions/{session_id}/messages",
        {"session_id": session_id},
        body=body,
        base64_body=base64_body,
    )


def get_session_event(session_id: str) -> dict[str, Any]:
    return api_event("GET", "/sessions/{session_id}", {"session_id": session_id})


def response_json(response: Mapping[str, Any]) -> Any:
    assert "application/json" in response_header(response, "Content-Type")
    return json.loads(response["body"])


def response_header(response: Mapping[str, Any], name: str) -> str:
    """A header of a proxy response, whichever of the two header maps Powertools filled."""
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return str(values[0])
    raise AssertionError(f"no {name} header in {response!r}")


HANDLER_ENV = {
    "POWERTOOLS_SERVICE_NAME": "serverless-agent",
    "POWERTOOLS_METRICS_NAMESPACE": "AgentRuntimeTests",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "SESSION_TABLE_NAME": TABLE_NAME,
    "SESSION_TTL_SECONDS": str(TTL_SECONDS),
    "LLM_PROVIDER": "openai-compatible",
    "LLM_MODEL_ID": "test-model",
    "LLM_BASE_URL": "http://127.0.0.1:9/v1",
    "LLM_REQUEST_TIMEOUT_SECONDS": "5",
    "LLM_MAX_ATTEMPTS": "2",
    "AGENT_MAX_ITERATIONS": "4",
    "AGENT_SYSTEM_PROMPT": "You are a careful test assistant.",
    "MAX_MESSAGE_CHARS": "200",
    "MAX_BODY_BYTES": "1024",
}


# Powertools reads these when a handler module is imported, which for some test modules is at
# collection time: set them before any test module in this folder is imported.
for _name in ("POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_TRACE_DISABLED"):
    os.environ.setdefault(_name, HANDLER_ENV[_name])


@pytest.fixture
def handler_env(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> dict[str, str]:
    """The Lambda's environment; set before the handler module is imported (Metrics reads it)."""
    for name, value in HANDLER_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LLM_API_KEY_SECRET_ARN", raising=False)
    return dict(HANDLER_ENV)


# --- Redis (the session's real redis-server, tests/conftest.py) ----------------------------------


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client, to look at the keys the code under test wrote."""
    client = redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password
    )
    yield client
    client.close()


@pytest.fixture
def redis_queue(raw: redis.Redis) -> Iterator[str]:
    """A Redis queue's list name per test on the shared server, its keys removed afterwards."""
    name = f"test-queue-{uuid.uuid4().hex}"
    yield name
    for key in raw.scan_iter(match=name + "*"):
        raw.delete(key)


@pytest.fixture
def redis_queue_url(redis_server: RedisServer, redis_queue: str) -> str:
    return f"{redis_server.url}#{redis_queue}"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what a worker's ``configure_logging`` did to the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
