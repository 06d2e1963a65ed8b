"""The rotation section: the committed profiles, and bad values failing with field and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config import load_config
from config.loader import load_config_file
from config.model import LLM_KEY_CACHE_SECONDS, ROTATION_MIN_HOURS, OpenAIAdminIssuerConfig
from runtime.llm.secrets import DEFAULT_TTL_SECONDS
from tests.unit.test_config import assert_one_problem_naming, base, merged, write

ADMIN = {
    "kind": "openai_admin",
    "project_id": "proj_abc123",
    "admin_key_secret_name": "agent-dev/openai-admin-key",
}


def rotation(**llm_key: Any) -> dict[str, Any]:
    return {"rotation": {"llm_key": {"issuer": ADMIN, **llm_key}}}


def test_prod_rotates_its_key_through_openais_admin_api_and_dev_does_not() -> None:
    prod = load_config("prod").rotation.llm_key
    assert prod is not None
    assert isinstance(prod.issuer, OpenAIAdminIssuerConfig)
    assert prod.schedule_hours == 30 * 24
    assert load_config("dev").rotation.llm_key is None


def test_hybrid_uses_the_staged_issuer_with_a_derived_staging_secret() -> None:
    config = load_config("hybrid")
    assert config.rotation.llm_key is not None
    assert config.llm_staging_secret_name == "agent-hybrid/llm-api-key-staged"


def test_the_runtime_cache_is_far_shorter_than_any_overlap() -> None:
    # The old key stays valid for a whole period (at least ROTATION_MIN_HOURS); every cache
    # must have re-read the secret long before it is revoked.
    assert DEFAULT_TTL_SECONDS == LLM_KEY_CACHE_SECONDS
    assert LLM_KEY_CACHE_SECONDS * 10 <= ROTATION_MIN_HOURS * 3600


@pytest.mark.parametrize(
    ("schedule", "hours"),
    [
        ("rate(4 hours)", 4),
        ("rate(1 day)", 24),
        ("rate(30 days)", 720),
        ("rate(1000 days)", 24_000),
    ],
)
def test_schedules_within_secrets_managers_limits(tmp_path: Path, schedule, hours) -> None:
    config = load_config_file(write(tmp_path, merged(base(), rotation(schedule=schedule))))
    assert config.rotation.llm_key is not None
    assert config.rotation.llm_key.schedule_hours == hours


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("rate(3 hours)", "outside Secrets Manager's limits: rotate at most every 4 hours"),
        ("rate(1001 days)", "at least every 1000 days"),
        ("cron(0 4 1 * ? *)", "must be a rate expression such as 'rate(30 days)'"),
        ("rate(0 days)", "must be a rate expression"),
    ],
)
def test_schedules_outside_the_limits_are_refused(tmp_path: Path, schedule, expected) -> None:
    assert_one_problem_naming(tmp_path, rotation(schedule=schedule), expected)


def test_openai_admin_needs_its_fields(tmp_path: Path) -> None:
    change = {"rotation": {"llm_key": {"issuer": {"kind": "openai_admin"}}}}
    data = merged(base(), change)
    with pytest.raises(
        Exception, match=r"issuer.openai_admin.project_id: required setting is missing"
    ):
        load_config_file(write(tmp_path, data))


def test_unknown_issuer_kind_is_refused(tmp_path: Path) -> None:
    data = merged(base(), {"rotation": {"llm_key": {"issuer": {"kind": "manual"}}}})
    with pytest.raises(Exception, match="openai_admin', 'staged'"):
        load_config_file(write(tmp_path, data))


def test_admin_api_must_be_the_llm_providers_host(tmp_path: Path) -> None:
    issuer = {**ADMIN, "admin_base_url": "https://admin.example.com/v1"}
    assert_one_problem_naming(
        tmp_path,
        {"rotation": {"llm_key": {"issuer": issuer}}},
        "rotation.llm_key.issuer.admin_base_url is on admin.example.com but llm.base_url is on "
        "api.openai.com",
    )


def test_admin_api_must_use_https(tmp_path: Path) -> None:
    issuer = {**ADMIN, "admin_base_url": "http://api.openai.com/v1"}
    assert_one_problem_naming(
        tmp_path, {"rotation": {"llm_key": {"issuer": issuer}}}, "admin_base_url must use https"
    )


def test_the_issuer_secret_cannot_be_the_llm_key_secret(tmp_path: Path) -> None:
    issuer = {**ADMIN, "admin_key_secret_name": "agent-dev/llm-api-key"}
    assert_one_problem_naming(
        tmp_path,
        {"rotation": {"llm_key": {"issuer": issuer}}},
        "rotation.llm_key.issuer.admin_key_secret_name and llm.api_key_secret_name are both",
    )
    staged = {"kind": "staged", "staging_secret_name": "agent-dev/webhook-signing-secret"}
    assert_one_problem_naming(
        tmp_path,
        {"rotation": {"llm_key": {"issuer": staged}}},
        "staging_secret_name and webhook.callback.signing_secret_name are both",
    )


def test_bedrock_has_no_key_to_rotate(tmp_path: Path) -> None:
    change = {
        "llm": {
            "provider": "bedrock",
            "model_id": "anthropic.claude-3-5-haiku-20241022-v1:0",
            "base_url": None,
            "api_key_secret_name": None,
        },
        **rotation(),
    }
    data = merged(base(), change)
    data.get("hybrid", {}).get("memory", {}).pop("embedder", None)
    with pytest.raises(
        Exception, match=r"llm.provider is bedrock \(Bedrock uses IAM, there is no key\): remove"
    ):
        load_config_file(write(tmp_path, data))
