"""SecretCache against moto's Secrets Manager, and key rotation seen end to end over HTTP."""

from __future__ import annotations

import json

import pytest

from runtime.llm.openai_compat import OpenAICompatibleClient
from runtime.llm.retry import RetryPolicy
from runtime.llm.secrets import SecretCache, SecretUnavailableError
from runtime.llm.types import LLMError, Message
from tests.fakes.openai_server import FakeOpenAIServer, TextReply

# A retry loop that never ends must fail the test, not hang the suite.
pytestmark = pytest.mark.timeout(20)

OLD_KEY = "sk-old-0123456789"
NEW_KEY = "sk-new-9876543210"


def make_secret(secretsmanager, value: str) -> str:
    return str(secretsmanager.create_secret(Name="llm-api-key", SecretString=value)["ARN"])


def test_plain_string_secret_is_the_key(secretsmanager) -> None:
    arn = make_secret(secretsmanager, f"  {OLD_KEY}\n")
    assert SecretCache(arn, client=secretsmanager).get() == OLD_KEY


def test_json_secret_uses_its_api_key_field(secretsmanager) -> None:
    arn = make_secret(secretsmanager, json.dumps({"api_key": OLD_KEY, "org": "acme"}))
    cache = SecretCache(arn, client=secretsmanager)
    assert cache.get() == OLD_KEY
    assert cache() == OLD_KEY


def test_client_is_created_lazily_from_the_environment(secretsmanager) -> None:
    arn = make_secret(secretsmanager, OLD_KEY)
    assert SecretCache(arn).get() == OLD_KEY


def test_value_is_cached_until_the_ttl_then_reread(secretsmanager, clock) -> None:
    arn = make_secret(secretsmanager, OLD_KEY)
    cache = SecretCache(arn, client=secretsmanager, ttl_seconds=300, clock=clock)
    assert cache.get() == OLD_KEY
    secretsmanager.put_secret_value(SecretId=arn, SecretString=NEW_KEY)
    clock.advance(299)
    assert cache.get() == OLD_KEY
    clock.advance(1)
    assert cache.get() == NEW_KEY


def test_invalidate_forces_a_reread_before_the_ttl(secretsmanager, clock) -> None:
    arn = make_secret(secretsmanager, OLD_KEY)
    cache = SecretCache(arn, client=secretsmanager, clock=clock)
    assert cache.get() == OLD_KEY
    secretsmanager.put_secret_value(SecretId=arn, SecretString=NEW_KEY)
    cache.invalidate()
    assert cache.get() == NEW_KEY


def test_missing_secret_names_the_arn_and_the_error_code(secretsmanager) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"
    with pytest.raises(SecretUnavailableError) as info:
        SecretCache(arn, client=secretsmanager).get()
    assert arn in str(info.value)
    assert "ResourceNotFoundException" in str(info.value)
    # Callers that handle LLMError also see a missing key as a failed model call.
    assert isinstance(info.value, LLMError)


@pytest.mark.parametrize(
    "value",
    [
        json.dumps({"key": OLD_KEY}),
        json.dumps({"api_key": ""}),
        json.dumps({"api_key": 12345, "note": OLD_KEY}),
        "{" + OLD_KEY,
        "   ",
    ],
)
def test_unusable_values_fail_without_revealing_the_secret(secretsmanager, value: str) -> None:
    arn = make_secret(secretsmanager, value)
    with pytest.raises(SecretUnavailableError) as info:
        SecretCache(arn, client=secretsmanager).get()
    assert OLD_KEY not in str(info.value)
    assert arn in str(info.value)
    # A chained JSONDecodeError would carry the whole secret into any logged traceback.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_binary_only_secret_is_rejected(secretsmanager) -> None:
    arn = secretsmanager.create_secret(Name="binary", SecretBinary=b"\x00\x01")["ARN"]
    with pytest.raises(SecretUnavailableError, match="no SecretString"):
        SecretCache(arn, client=secretsmanager).get()


def test_rotated_key_reaches_the_provider_after_the_ttl(secretsmanager, clock) -> None:
    arn = make_secret(secretsmanager, json.dumps({"api_key": OLD_KEY}))
    cache = SecretCache(arn, client=secretsmanager, ttl_seconds=300, clock=clock)
    hello = [Message(role="user", content="hello")]
    with FakeOpenAIServer([TextReply("one"), TextReply("two"), TextReply("three")]) as server:
        client = OpenAICompatibleClient(
            base_url=server.base_url,
            model="m",
            api_key=cache,
            policy=RetryPolicy(max_attempts=1, request_timeout_seconds=5),
        )
        assert client.complete(hello).message.content == "one"
        secretsmanager.put_secret_value(SecretId=arn, SecretString=json.dumps({"api_key": NEW_KEY}))
        clock.advance(60)
        assert client.complete(hello).message.content == "two"
        clock.advance(300)
        assert client.complete(hello).message.content == "three"
    assert [r.authorization for r in server.requests] == [
        f"Bearer {OLD_KEY}",
        f"Bearer {OLD_KEY}",
        f"Bearer {NEW_KEY}",
    ]
