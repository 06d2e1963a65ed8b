"""The synthesized app: which deployments rotate their LLM key, and how."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import Synthesized


def resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def test_prod_rotates_the_llm_key_every_30_days_through_openais_admin_api(
    synth: Synthesized,
) -> None:
    template = synth.template("agent-prod", "serverless")
    (schedule,) = resources(template, "AWS::SecretsManager::RotationSchedule")
    assert schedule["Properties"]["RotationRules"] == {"ScheduleExpression": "rate(30 days)"}
    assert schedule["Properties"]["SecretId"]["Ref"].startswith("LlmApiKey")
    functions = [
        f
        for f in resources(template, "AWS::Lambda::Function")
        if f["Properties"]["Handler"] == "runtime.rotation.handler.lambda_handler"
    ]
    assert len(functions) == 1
    variables = functions[0]["Properties"]["Environment"]["Variables"]
    assert variables["ROTATION_ISSUER"] == "openai_admin"
    assert variables["LLM_BASE_URL"] == "https://api.openai.com/v1"
    names = {
        s["Properties"].get("Name") for s in resources(template, "AWS::SecretsManager::Secret")
    }
    assert "agent-prod/openai-admin-key" in names


def test_hybrid_rotates_from_a_staging_secret(synth: Synthesized) -> None:
    template = synth.template("agent-hybrid", "serverless")
    assert len(resources(template, "AWS::SecretsManager::RotationSchedule")) == 1
    names = {
        s["Properties"].get("Name") for s in resources(template, "AWS::SecretsManager::Secret")
    }
    assert "agent-hybrid/llm-api-key-staged" in names


def test_dev_and_the_dr_standby_do_not_rotate(synth: Synthesized) -> None:
    assert not resources(synth.template("agent-dev"), "AWS::SecretsManager::RotationSchedule")
    # The standby region reads a replica; Secrets Manager replicates each rotated version to it.
    for name, template in synth.templates.items():
        if name.endswith("-serverless-us-west-2"):
            assert not resources(template, "AWS::SecretsManager::RotationSchedule")
