"""The four rotation steps against moto's Secrets Manager and a fake OpenAI platform over HTTP."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from runtime.rotation.protocol import KeyRotator, RotationError, RotationEvent
from tests.fakes.openai_platform import FakeOpenAIPlatform
from tests.rotation.conftest import MANUAL_KEY, BeginRotation

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

pytestmark = pytest.mark.timeout(30)

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def step(rotator: KeyRotator, arn: str, token: str, name: str) -> None:
    rotator.handle(
        RotationEvent.parse({"SecretId": arn, "ClientRequestToken": token, "Step": name})
    )


def rotate(rotator: KeyRotator, arn: str, begin: BeginRotation) -> str:
    token = begin(arn)
    for name in STEPS:
        step(rotator, arn, token, name)
    return token


def stages(sm: SecretsManagerClient, arn: str) -> dict[str, list[str]]:
    return dict(sm.describe_secret(SecretId=arn)["VersionIdsToStages"])


def current(sm: SecretsManagerClient, arn: str) -> dict[str, str]:
    return parse_record(current_string(sm, arn))


def current_string(sm: SecretsManagerClient, arn: str) -> str:
    return sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]


def pending(sm: SecretsManagerClient, arn: str, token: str) -> dict[str, str]:
    value = sm.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
    return parse_record(value["SecretString"])


def parse_record(text: str) -> dict[str, str]:
    record: dict[str, str] = json.loads(text)
    return record


# --- each step alone -----------------------------------------------------------------------------


def test_create_secret_stores_a_new_service_account_key_as_pending(
    sm, llm_secret, admin_rotator, platform: FakeOpenAIPlatform, begin_rotation
) -> None:
    token = begin_rotation(llm_secret)
    step(admin_rotator, llm_secret, token, "createSecret")

    record = pending(sm, llm_secret, token)
    (account_id,) = platform.accounts
    assert record["key_id"] == account_id
    assert record["issuer"] == "openai_admin"
    assert record["api_key"] == platform.accounts[account_id]["key"]
    assert platform.accounts[account_id]["name"] == f"agent-test-llm-{token}"
    # Nothing moved yet: the runtime still reads the old key.
    assert current_string(sm, llm_secret) == MANUAL_KEY


def test_create_secret_twice_issues_one_key(
    sm, llm_secret, admin_rotator, platform, begin_rotation
) -> None:
    token = begin_rotation(llm_secret)
    step(admin_rotator, llm_secret, token, "createSecret")
    first = pending(sm, llm_secret, token)
    step(admin_rotator, llm_secret, token, "createSecret")

    assert pending(sm, llm_secret, token) == first
    assert len(platform.accounts) == 1
    assert [r for r in platform.requests if r[0] == "POST"] == [
        ("POST", "/v1/organization/projects/proj_fake123/service_accounts")
    ]


def test_create_secret_retry_deletes_the_account_an_earlier_attempt_left(
    sm, llm_secret, admin_rotator, platform, begin_rotation
) -> None:
    token = begin_rotation(llm_secret)
    # An earlier attempt created the account, then failed before the put into Secrets Manager.
    orphan = platform.handle(
        "POST",
        "/v1/organization/projects/proj_fake123/service_accounts",
        "Bearer sk-admin-fake-0000",
        {"name": f"agent-test-llm-{token}"},
    )[1]["id"]

    step(admin_rotator, llm_secret, token, "createSecret")

    assert orphan not in platform.accounts
    assert list(platform.accounts) == [pending(sm, llm_secret, token)["key_id"]]


def test_set_secret_needs_the_pending_value(sm, llm_secret, admin_rotator, begin_rotation) -> None:
    token = begin_rotation(llm_secret)
    with pytest.raises(RotationError, match=r"could not read version .* ResourceNotFoundException"):
        step(admin_rotator, llm_secret, token, "setSecret")
    step(admin_rotator, llm_secret, token, "createSecret")
    step(admin_rotator, llm_secret, token, "setSecret")
    step(admin_rotator, llm_secret, token, "setSecret")


def test_test_secret_calls_the_provider_with_the_pending_key(
    sm, llm_secret, admin_rotator, platform, begin_rotation
) -> None:
    token = begin_rotation(llm_secret)
    step(admin_rotator, llm_secret, token, "createSecret")
    step(admin_rotator, llm_secret, token, "testSecret")
    step(admin_rotator, llm_secret, token, "testSecret")
    assert platform.requests.count(("GET", "/v1/models")) == 2


def test_failing_test_secret_leaves_awscurrent_on_the_old_key(
    sm, llm_secret, admin_rotator, platform, begin_rotation
) -> None:
    token = begin_rotation(llm_secret)
    step(admin_rotator, llm_secret, token, "createSecret")
    step(admin_rotator, llm_secret, token, "setSecret")
    platform.revoke_key(pending(sm, llm_secret, token)["api_key"])

    with pytest.raises(RotationError, match=r"rejected the pending key.*HTTP 401") as caught:
        step(admin_rotator, llm_secret, token, "testSecret")

    # The provider echoed the key back; the error must not carry it.
    assert pending(sm, llm_secret, token)["api_key"] not in str(caught.value)
    assert "[redacted]" in str(caught.value)
    assert current_string(sm, llm_secret) == MANUAL_KEY
    assert "AWSCURRENT" not in stages(sm, llm_secret)[token]


def test_finish_secret_moves_awscurrent_and_is_idempotent(
    sm, llm_secret, admin_rotator, begin_rotation
) -> None:
    old_version = next(v for v, s in stages(sm, llm_secret).items() if "AWSCURRENT" in s)
    token = begin_rotation(llm_secret)
    for name in STEPS:
        step(admin_rotator, llm_secret, token, name)
    step(admin_rotator, llm_secret, token, "finishSecret")

    assert "AWSCURRENT" in stages(sm, llm_secret)[token]
    assert stages(sm, llm_secret)[old_version] == ["AWSPREVIOUS"]
    assert current(sm, llm_secret)["key_id"].startswith("svc_acct_")


# --- the checks every step makes -----------------------------------------------------------------


def test_a_token_that_is_not_a_version_is_refused(sm, llm_secret, admin_rotator, begin_rotation):
    begin_rotation(llm_secret)
    with pytest.raises(RotationError, match="has no version not-a-token"):
        step(admin_rotator, llm_secret, "not-a-token", "createSecret")


def test_a_version_that_is_not_pending_is_refused(sm, llm_secret, admin_rotator, begin_rotation):
    token = rotate(admin_rotator, llm_secret, begin_rotation)
    rotate(admin_rotator, llm_secret, begin_rotation)
    # ``token`` is now AWSPREVIOUS: a late step for it must not touch anything.
    with pytest.raises(RotationError, match=r"is not AWSPENDING \(stages: \['AWSPREVIOUS'\]\)"):
        step(admin_rotator, llm_secret, token, "finishSecret")


def test_rotation_must_be_enabled(sm, admin_rotator) -> None:
    arn = sm.create_secret(Name="not-rotated", SecretString="sk-x")["ARN"]
    version = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    with pytest.raises(RotationError, match="is not enabled for rotation"):
        step(admin_rotator, arn, next(iter(version)), "createSecret")


def test_a_step_for_the_current_version_does_nothing(sm, llm_secret, admin_rotator, begin_rotation):
    token = rotate(admin_rotator, llm_secret, begin_rotation)
    before = current(sm, llm_secret)
    for name in STEPS:
        step(admin_rotator, llm_secret, token, name)
    assert current(sm, llm_secret) == before


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"ClientRequestToken": "t", "Step": "createSecret"}, "no SecretId"),
        ({"SecretId": "s", "Step": "createSecret"}, "no ClientRequestToken"),
        (
            {"SecretId": "s", "ClientRequestToken": "t", "Step": "dropSecret"},
            "unknown rotation step",
        ),
    ],
)
def test_malformed_events_are_refused(event, message) -> None:
    with pytest.raises(RotationError, match=message):
        RotationEvent.parse(event)


# --- whole rotations: overlap and revocation -------------------------------------------------


def test_old_key_stays_valid_until_the_next_rotation_revokes_it(
    sm, llm_secret, admin_rotator, platform, begin_rotation
) -> None:
    rotate(admin_rotator, llm_secret, begin_rotation)
    first = current(sm, llm_secret)
    # The hand-put key is not the rotation's to revoke (no key_id): it stays live, with a warning.
    assert MANUAL_KEY in platform.live_keys

    rotate(admin_rotator, llm_secret, begin_rotation)
    second = current(sm, llm_secret)
    # Overlap: the first rotated key is AWSPREVIOUS now and still works at the provider.
    assert {first["api_key"], second["api_key"]} <= platform.live_keys
    previous = sm.get_secret_value(SecretId=llm_secret, VersionStage="AWSPREVIOUS")
    assert json.loads(previous["SecretString"])["api_key"] == first["api_key"]

    rotate(admin_rotator, llm_secret, begin_rotation)
    third = current(sm, llm_secret)
    # The third rotation's finishSecret revoked the key that fell out of AWSPREVIOUS.
    assert first["api_key"] not in platform.live_keys
    assert first["key_id"] not in platform.accounts
    assert {second["api_key"], third["api_key"]} <= platform.live_keys
    assert set(platform.accounts) == {second["key_id"], third["key_id"]}


def test_a_failed_revocation_fails_finish_and_a_retry_completes_it(
    sm, llm_secret, admin_rotator, platform, begin_rotation
) -> None:
    rotate(admin_rotator, llm_secret, begin_rotation)
    first = current(sm, llm_secret)
    rotate(admin_rotator, llm_secret, begin_rotation)
    second = current(sm, llm_secret)
    token = begin_rotation(llm_secret)
    for name in STEPS[:3]:
        step(admin_rotator, llm_secret, token, name)

    platform.fail_next("DELETE", f"/service_accounts/{first['key_id']}", 503)
    with pytest.raises(RotationError, match=r"could not revoke .* HTTP 503.*AWSCURRENT was not"):
        step(admin_rotator, llm_secret, token, "finishSecret")
    assert current(sm, llm_secret) == second

    step(admin_rotator, llm_secret, token, "finishSecret")
    assert "AWSCURRENT" in stages(sm, llm_secret)[token]
    assert first["key_id"] not in platform.accounts


def test_admin_api_refusing_fails_create_without_a_pending_value(
    sm, llm_secret, admin_rotator, platform, begin_rotation
) -> None:
    token = begin_rotation(llm_secret)
    platform.fail_next("POST", "/service_accounts", 403)
    with pytest.raises(RotationError, match=r"createSecret: openai_admin: POST .* HTTP 403"):
        step(admin_rotator, llm_secret, token, "createSecret")
    with pytest.raises(RotationError, match="ResourceNotFoundException"):
        step(admin_rotator, llm_secret, token, "testSecret")


# --- the staged issuer ---------------------------------------------------------------------------


def test_staged_rotation_fails_clearly_when_nothing_is_staged(
    sm, llm_secret, staged_rotator, staging_secret, begin_rotation
) -> None:
    token = begin_rotation(llm_secret)
    with pytest.raises(RotationError, match=r"no usable key is staged .*put-secret-value"):
        step(staged_rotator, llm_secret, token, "createSecret")


def test_staged_rotation_takes_the_staged_key_and_refuses_it_twice(
    sm, llm_secret, staged_rotator, staging_secret, platform, begin_rotation
) -> None:
    platform.add_key("sk-staged-new")
    sm.put_secret_value(SecretId=staging_secret, SecretString='{"api_key": "sk-staged-new"}')

    rotate(staged_rotator, llm_secret, begin_rotation)
    assert current(sm, llm_secret)["api_key"] == "sk-staged-new"
    assert current(sm, llm_secret)["issuer"] == "staged"
    # Revocation stays with the operator: the old key is still live.
    assert MANUAL_KEY in platform.live_keys

    token = begin_rotation(llm_secret)
    with pytest.raises(RotationError, match="already the current key"):
        step(staged_rotator, llm_secret, token, "createSecret")


def test_staged_key_the_provider_rejects_never_becomes_current(
    sm, llm_secret, staged_rotator, staging_secret, begin_rotation
) -> None:
    sm.put_secret_value(SecretId=staging_secret, SecretString="sk-typo")
    token = begin_rotation(llm_secret)
    step(staged_rotator, llm_secret, token, "createSecret")
    with pytest.raises(RotationError, match="HTTP 401"):
        step(staged_rotator, llm_secret, token, "testSecret")
    assert current_string(sm, llm_secret) == MANUAL_KEY
