"""The Lambda handler, a whole rotation started by RotateSecret, and the runtime picking it up."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
from moto.awslambda.models import LambdaBackend

from runtime.llm.openai_compat import OpenAICompatibleClient
from runtime.llm.retry import RetryPolicy
from runtime.llm.secrets import DEFAULT_TTL_SECONDS, SecretCache
from runtime.llm.types import Message
from runtime.rotation import handler
from runtime.rotation.protocol import KeyRotator, RotationEvent
from runtime.rotation.settings import RotationSettings, build_rotator
from runtime.settings import SettingsError
from tests.fakes.clock import FakeClock
from tests.fakes.openai_platform import FakeOpenAIPlatform
from tests.rotation.conftest import MANUAL_KEY, BeginRotation, admin_settings
from tests.runtime.conftest import FakeLambdaContext

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_secretsmanager import SecretsManagerClient

pytestmark = pytest.mark.timeout(30)

ROTATION_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:llm-key-rotation"


def _context(**fields: Any) -> LambdaContext:
    # The handler is typed for Powertools' LambdaContext; the fake has the fields it reads.
    return cast("LambdaContext", FakeLambdaContext(**fields))


def current_key(sm: SecretsManagerClient, arn: str) -> str:
    value = sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
    return str(json.loads(value)["api_key"]) if value.startswith("{") else value


@pytest.fixture
def rotation_function(
    monkeypatch: pytest.MonkeyPatch, admin_rotator: KeyRotator
) -> list[tuple[str, Exception | None]]:
    """moto's RotateSecret invokes this in-process instead of a Docker Lambda."""
    calls: list[tuple[str, Exception | None]] = []

    def invoke(self: Any, function_name: str, qualifier: Any, body: str, **_: Any) -> bytes:
        event = json.loads(body)
        error: Exception | None = None
        handler.set_rotator(admin_rotator)
        try:
            handler.lambda_handler(event, _context(function_name="llm-key-rotation"))
        except Exception as exc:  # a failed step is reported by Lambda, not raised into moto
            error = exc
        finally:
            handler.set_rotator(None)
        calls.append((event["Step"], error))
        return b"null"

    monkeypatch.setattr(LambdaBackend, "get_function", lambda self, *a, **k: object())
    monkeypatch.setattr(LambdaBackend, "invoke", invoke)
    return calls


def test_rotate_secret_runs_the_four_steps_through_the_handler(
    sm, llm_secret, platform: FakeOpenAIPlatform, rotation_function
) -> None:
    sm.rotate_secret(
        SecretId=llm_secret,
        RotationLambdaARN=ROTATION_FUNCTION_ARN,
        RotationRules={"AutomaticallyAfterDays": 30},
    )

    assert rotation_function == [
        ("createSecret", None),
        ("setSecret", None),
        ("testSecret", None),
        ("finishSecret", None),
    ]
    new_key = current_key(sm, llm_secret)
    assert new_key != MANUAL_KEY
    assert {new_key, MANUAL_KEY} <= platform.live_keys


def test_handler_refuses_a_malformed_event() -> None:
    with pytest.raises(Exception, match="unknown rotation step"):
        handler.lambda_handler(
            {"SecretId": "s", "ClientRequestToken": "t", "Step": "nope"}, _context()
        )


def test_handler_builds_its_rotator_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, sm, admin_secret
) -> None:
    monkeypatch.setenv("ROTATION_ISSUER", "openai_admin")
    monkeypatch.setenv("LLM_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_ADMIN_BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_abc123")
    monkeypatch.setenv("OPENAI_ADMIN_KEY_SECRET_ARN", admin_secret)
    handler.set_rotator(None)
    try:
        assert isinstance(handler.rotator(), KeyRotator)
    finally:
        handler.set_rotator(None)


def test_plain_http_provider_is_refused_outside_tests(platform, admin_secret, sm) -> None:
    with httpx.Client() as http, pytest.raises(ValueError, match="must use https"):
        build_rotator(admin_settings(platform, admin_secret), secrets=sm, http=http)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ROTATION_ISSUER": "openai_admin", "LLM_BASE_URL": "https://x.example/v1"},
         "openai_admin needs OPENAI_ADMIN_BASE_URL, OPENAI_PROJECT_ID, OPENAI_ADMIN_KEY_SECRET"),
        ({"ROTATION_ISSUER": "staged", "LLM_BASE_URL": "https://x.example/v1"},
         "staged needs STAGING_SECRET_ARN"),
        ({"ROTATION_ISSUER": "manual", "LLM_BASE_URL": "https://x.example/v1"}, "ROTATION_ISSUER"),
    ],
)  # fmt: skip
def test_settings_name_what_is_missing(environ, message) -> None:
    with pytest.raises(SettingsError, match=message):
        RotationSettings.from_env(environ)


# --- the runtime sees the new key without a redeploy ---------------------------------------------


def test_short_ttl_cache_moves_to_the_rotated_key_without_a_restart(
    sm, llm_secret, admin_rotator, platform, begin_rotation: BeginRotation
) -> None:
    clock = FakeClock()
    cache = SecretCache(llm_secret, client=sm, ttl_seconds=DEFAULT_TTL_SECONDS, clock=clock)
    assert cache.get() == MANUAL_KEY

    token = begin_rotation(llm_secret)
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        admin_rotator.handle(
            RotationEvent.parse({"SecretId": llm_secret, "ClientRequestToken": token, "Step": step})
        )
    new_key = current_key(sm, llm_secret)

    # Inside the TTL the old key is still served, and it still works: that is the overlap.
    assert cache.get() == MANUAL_KEY
    assert MANUAL_KEY in platform.live_keys
    clock.advance(DEFAULT_TTL_SECONDS)
    assert cache.get() == new_key


def test_a_401_refreshes_the_cached_key_once_and_retries(
    sm, llm_secret, admin_rotator, platform, begin_rotation: BeginRotation
) -> None:
    cache = SecretCache(llm_secret, client=sm, ttl_seconds=3600)
    assert cache.get() == MANUAL_KEY
    token = begin_rotation(llm_secret)
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        admin_rotator.handle(
            RotationEvent.parse({"SecretId": llm_secret, "ClientRequestToken": token, "Step": step})
        )
    # The old key was revoked early (by hand, at the provider) while the cache still holds it.
    platform.revoke_key(MANUAL_KEY)

    with httpx.Client() as http:
        client = OpenAICompatibleClient(
            base_url=platform.base_url,
            model="m",
            api_key=cache,
            policy=RetryPolicy(max_attempts=1),
            http_client=http,
        )
        reply = client.complete([Message(role="user", content="hi")])

    assert reply.message.content == "rotated ok"
    chats = [r for r in platform.requests if r == ("POST", "/v1/chat/completions")]
    assert len(chats) == 2  # the 401 with the old key, then the retry with the new one
    assert cache.get() == current_key(sm, llm_secret)


@pytest.mark.parametrize("injected", ["json", "plain"])
def test_a_key_ecs_injects_is_read_in_either_format(
    injected: str, aws_env: None, monkeypatch: pytest.MonkeyPatch, platform: FakeOpenAIPlatform
) -> None:
    """ECS injects the whole secret at task start: after a rotation that is the JSON record."""
    from runtime.settings import RuntimeSettings
    from runtime.wiring import build_dependencies

    platform.add_key("sk-injected")
    value = (
        json.dumps({"api_key": "sk-injected", "issuer": "openai_admin", "key_id": "svc_acct_9"})
        if injected == "json"
        else "sk-injected\n"
    )
    monkeypatch.delenv("MEMORY_STORE", raising=False)
    settings = RuntimeSettings.from_env(
        {
            "SESSION_TABLE_NAME": "sessions",
            "SESSION_TTL_SECONDS": "3600",
            "LLM_PROVIDER": "openai-compatible",
            "LLM_BASE_URL": platform.base_url,
            "LLM_API_KEY": value,
            "LLM_MODEL_ID": "m",
            "LLM_REQUEST_TIMEOUT_SECONDS": "5",
            "LLM_MAX_ATTEMPTS": "1",
            "AGENT_MAX_ITERATIONS": "2",
            "MAX_MESSAGE_CHARS": "1000",
            "MAX_BODY_BYTES": "65536",
        }
    )
    reply = (
        build_dependencies(settings).llm_factory(5.0).complete([Message(role="user", content="x")])
    )
    assert reply.message.content == "rotated ok"
