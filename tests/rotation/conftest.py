"""Rotation test fixtures: moto Secrets Manager and a fake OpenAI platform on 127.0.0.1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.secretsmanager.models import FakeSecret, secretsmanager_backends

from runtime.rotation.protocol import KeyRotator
from runtime.rotation.settings import RotationSettings, build_rotator
from tests.conftest import AWS_TEST_REGION
from tests.fakes.openai_platform import ADMIN_KEY, PROJECT_ID, FakeOpenAIPlatform

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

MANUAL_KEY = "sk-manual-put-after-deploy"

BeginRotation = Callable[[str], str]


@pytest.fixture
def sm(aws_env: None) -> Iterator[SecretsManagerClient]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=AWS_TEST_REGION)


@pytest.fixture
def platform() -> Iterator[FakeOpenAIPlatform]:
    with FakeOpenAIPlatform() as fake:
        yield fake


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def llm_secret(sm: SecretsManagerClient, platform: FakeOpenAIPlatform) -> str:
    """The LLM key secret as an operator leaves it after deploy: a plain key put in by hand."""
    platform.add_key(MANUAL_KEY)
    return sm.create_secret(Name="agent-test/llm-api-key", SecretString=MANUAL_KEY)["ARN"]


@pytest.fixture
def admin_secret(sm: SecretsManagerClient) -> str:
    return sm.create_secret(Name="agent-test/openai-admin-key", SecretString=ADMIN_KEY)["ARN"]


@pytest.fixture
def staging_secret(sm: SecretsManagerClient) -> str:
    # As constructs/key_rotation.py creates it: an empty api_key until an operator stages one.
    return sm.create_secret(
        Name="agent-test/llm-api-key-staged", SecretString='{"api_key": "", "unused": "x"}'
    )["ARN"]


def admin_settings(platform: FakeOpenAIPlatform, admin_secret: str) -> RotationSettings:
    return RotationSettings.from_env(
        {
            "ROTATION_ISSUER": "openai_admin",
            "LLM_BASE_URL": platform.base_url,
            "OPENAI_ADMIN_BASE_URL": platform.base_url,
            "OPENAI_PROJECT_ID": PROJECT_ID,
            "OPENAI_ADMIN_KEY_SECRET_ARN": admin_secret,
            "ROTATION_KEY_NAME_PREFIX": "agent-test-llm",
        }
    )


@pytest.fixture
def admin_rotator(
    sm: SecretsManagerClient, platform: FakeOpenAIPlatform, admin_secret: str, http: httpx.Client
) -> KeyRotator:
    return build_rotator(
        admin_settings(platform, admin_secret), secrets=sm, http=http, allow_loopback_http=True
    )


@pytest.fixture
def staged_rotator(
    sm: SecretsManagerClient, platform: FakeOpenAIPlatform, staging_secret: str, http: httpx.Client
) -> KeyRotator:
    settings = RotationSettings.from_env(
        {
            "ROTATION_ISSUER": "staged",
            "LLM_BASE_URL": platform.base_url,
            "STAGING_SECRET_ARN": staging_secret,
        }
    )
    return build_rotator(settings, secrets=sm, http=http, allow_loopback_http=True)


@pytest.fixture
def begin_rotation(sm: SecretsManagerClient) -> BeginRotation:
    """What RotateSecret does before it invokes the function: rotation on, a valueless AWSPENDING.

    moto's own rotate_secret does the same but then moves AWSCURRENT by itself whatever the
    function did, so the step tests set the stage up here and drive the steps one by one.
    """

    def begin(arn: str) -> str:
        secret = secretsmanager_backends[DEFAULT_ACCOUNT_ID][AWS_TEST_REGION].secrets[arn]
        assert isinstance(secret, FakeSecret)
        secret.rotation_requested = True
        secret.rotation_enabled = True
        secret.auto_rotate_after_days = 30
        secret.remove_version_stages_from_old_versions(["AWSPENDING"])
        token = str(uuid.uuid4())
        secret.versions[token] = {
            "createdate": int(time.time()),
            "version_id": token,
            "version_stages": ["AWSPENDING"],
        }
        return token

    return begin
