"""KeyRotation on a bare stack: least privilege, who may invoke, the schedule, the issuer secret."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Duration, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Match, Template

from config import load_config
from constructs.key_rotation import (
    KeyRotation,
    KeyRotationProps,
    OpenAIAdminIssuerProps,
    StagedIssuerProps,
    key_rotation_props,
    rate_expression,
)
from constructs.secure_defaults import ROTATION_HANDLER
from tests.infra.conftest import cdk_json_context

ADMIN = OpenAIAdminIssuerProps(
    project_id="proj_abc123",
    admin_base_url="https://api.openai.com/v1",
    admin_key_secret_name="test/openai-admin-key",
)


def build(issuer: Any = ADMIN, **overrides: Any) -> Template:
    app = App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Test")
    key = kms.Key(stack, "Key")
    secret = secretsmanager.Secret(stack, "LlmKey", encryption_key=key)
    values: dict[str, Any] = {
        "secret": secret,
        "encryption_key": key,
        "issuer": issuer,
        "llm_base_url": "https://api.openai.com/v1",
        "schedule_hours": 30 * 24,
        "rotate_immediately": False,
        "key_name_prefix": "test-llm",
        "service_name": "test",
        "memory_mb": 256,
        "timeout": Duration.seconds(60),
        "log_retention": logs.RetentionDays.ONE_MONTH,
        "removal_policy": RemovalPolicy.DESTROY,
        "powertools_layer_version": 38,
    }
    KeyRotation(stack, "Rotation", props=KeyRotationProps(**{**values, **overrides}))
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def template() -> Template:
    return build()


def test_schedule_points_at_the_live_alias_and_waits_for_its_permission(template) -> None:
    template.has_resource(
        "AWS::SecretsManager::RotationSchedule",
        {
            "Properties": {
                "SecretId": {"Ref": Match.string_like_regexp("LlmKey")},
                "RotationLambdaARN": {"Ref": Match.string_like_regexp("RotationFunctionLive")},
                "RotationRules": {"ScheduleExpression": "rate(30 days)"},
                "RotateImmediatelyOnUpdate": False,
            },
            "DependsOn": Match.array_with([Match.string_like_regexp("SecretsManagerInvoke")]),
        },
    )


def test_only_secrets_manager_of_this_account_for_this_secret_may_invoke(template) -> None:
    permissions = template.find_resources("AWS::Lambda::Permission")
    assert len(permissions) == 1
    (permission,) = permissions.values()
    assert permission["Properties"]["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["Properties"]["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["Properties"]["SourceArn"]["Ref"].startswith("LlmKey")


def test_the_role_touches_only_its_secrets_and_the_key_through_secrets_manager(template) -> None:
    (policy,) = [
        p
        for p in template.find_resources("AWS::IAM::Policy").values()
        if "Rotation" in str(p["Properties"]["Roles"])
    ]
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    rotate = statements["RotateTheLlmKey"]
    assert sorted(rotate["Action"]) == [
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    ]
    assert rotate["Resource"]["Ref"].startswith("LlmKey")
    assert statements["ReadTheIssuerSecret"]["Action"] == "secretsmanager:GetSecretValue"
    assert statements["ReadTheIssuerSecret"]["Resource"]["Ref"].startswith("RotationAdminKey")
    kms_statement = statements["DataKeyForTheseSecrets"]
    assert sorted(kms_statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    condition = kms_statement["Condition"]["StringEquals"]
    assert "kms:ViaService" in condition
    assert len(condition["kms:EncryptionContext:SecretARN"]) == 2
    # Nothing else: no GetRandomPassword, no wildcard beyond X-Ray's documented one.
    wildcard = [s for s in statements.values() if s["Resource"] == "*"]
    assert [sorted(s["Action"]) for s in wildcard] == [
        ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    ]


def test_the_function_runs_the_rotation_handler_one_at_a_time(template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": ROTATION_HANDLER,
            "ReservedConcurrentExecutions": 1,
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "ROTATION_ISSUER": "openai_admin",
                        "OPENAI_PROJECT_ID": "proj_abc123",
                        "LLM_BASE_URL": "https://api.openai.com/v1",
                        "OPENAI_ADMIN_KEY_SECRET_ARN": {
                            "Ref": Match.string_like_regexp("RotationAdminKey")
                        },
                    }
                )
            },
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "Errors", "Threshold": 1, "TreatMissingData": "notBreaching"},
    )


def test_the_staged_issuer_gets_an_empty_staging_secret() -> None:
    template = build(StagedIssuerProps(staging_secret_name="test/llm-api-key-staged"))
    template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Name": "test/llm-api-key-staged",
            "GenerateSecretString": Match.object_like({"SecretStringTemplate": '{"api_key": ""}'}),
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "ROTATION_ISSUER": "staged",
                        "STAGING_SECRET_ARN": {"Ref": Match.string_like_regexp("RotationStaging")},
                    }
                )
            }
        },
    )


@pytest.mark.parametrize(
    ("hours", "expression"),
    [(4, "rate(4 hours)"), (24, "rate(1 day)"), (36, "rate(36 hours)"), (720, "rate(30 days)")],
)
def test_rate_expressions(hours: int, expression: str) -> None:
    assert rate_expression(hours) == expression


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schedule_hours": 3}, "schedule_hours must be 4-24000"),
        ({"llm_base_url": "http://api.openai.com/v1"}, "llm_base_url must use https"),
    ],
)
def test_props_are_checked_before_anything_is_built(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        build(**overrides)


def test_props_from_the_prod_config() -> None:
    config = load_config("prod")
    app = App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Props")
    key = kms.Key(stack, "Key")
    props = key_rotation_props(
        config,
        secret=secretsmanager.Secret(stack, "S", encryption_key=key),
        encryption_key=key,
        log_retention=logs.RetentionDays.ONE_YEAR,
        removal_policy=RemovalPolicy.RETAIN,
    )
    assert props.schedule_hours == 720
    assert props.key_name_prefix == "agent-prod-llm"
    assert isinstance(props.issuer, OpenAIAdminIssuerProps)
    assert props.issuer.admin_key_secret_name == "agent-prod/openai-admin-key"
    with pytest.raises(ValueError, match=r"has no rotation\.llm_key"):
        key_rotation_props(
            load_config("dev"),
            secret=props.secret,
            encryption_key=key,
            log_retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
