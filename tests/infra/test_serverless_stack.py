"""What matters in the serverless stack for security and reliability, asserted directly."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from config.model import API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS
from tests.infra.cfn import (
    TABLE_TYPES,
    as_list,
    of_type,
    one,
    one_table,
    policy_statements,
    table_properties,
)
from tests.infra.conftest import REPO_ROOT, Synthesized, all_configs

CONFIGS = {c.name: c for c in all_configs()}
NAMES = sorted(CONFIGS)
AGENT_HANDLER = "runtime.handlers.serverless_api.lambda_handler"


def _without_rotation(template: dict[str, Any]) -> dict[str, Any]:
    """The stack without config rotation's function and its parts (tests/rotation covers them)."""
    resources = {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if "LlmKeyRotation" not in logical_id
    }
    return {**template, "Resources": resources}


@pytest.mark.parametrize("name", NAMES)
def test_session_table_ttl_pitr_encryption(synth: Synthesized, name: str) -> None:
    # A Table, or with config dr a GlobalTable (its replicas: tests/infra/test_dr.py).
    props = table_properties(one_table(synth.template(name)))
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert props["KeySchema"] == [{"AttributeName": "session_id", "KeyType": "HASH"}]


@pytest.mark.parametrize("name", NAMES)
def test_stateful_resources_follow_the_removal_policy(synth: Synthesized, name: str) -> None:
    template = synth.template(name)
    retain = CONFIGS[name].removal_policy == "retain"
    expected = "Retain" if retain else "Delete"
    stateful = [*TABLE_TYPES, "AWS::KMS::Key", "AWS::Logs::LogGroup"]
    if CONFIGS[name].llm.api_key_secret_name:
        stateful.append("AWS::SecretsManager::Secret")
    for resource_type in stateful:
        for resource in of_type(template, resource_type):
            assert resource["DeletionPolicy"] == expected, resource_type
            assert resource["UpdateReplacePolicy"] == expected, resource_type
    table = table_properties(one_table(template))
    assert table.get("DeletionProtectionEnabled", False) is retain


def test_prod_retains_and_dev_destroys(synth: Synthesized) -> None:
    assert one_table(synth.template("agent-prod"))["DeletionPolicy"] == "Retain"
    assert one_table(synth.template("agent-dev"))["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("name", NAMES)
def test_function_shape(synth: Synthesized, name: str) -> None:
    config = CONFIGS[name]
    fn = one(_without_rotation(synth.template(name)), "AWS::Lambda::Function")["Properties"]
    assert fn["Runtime"] == "python3.14"
    assert fn["Architectures"] == ["arm64"]
    assert fn["Timeout"] == config.lambda_.timeout_seconds
    assert fn["Timeout"] < API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS
    assert fn["MemorySize"] == config.lambda_.memory_mb
    assert fn["ReservedConcurrentExecutions"] == config.lambda_.reserved_concurrency
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert fn["LoggingConfig"]["LogFormat"] == "JSON"
    assert "KmsKeyArn" in fn
    assert fn["Handler"] == "runtime.handlers.serverless_api.lambda_handler"


@pytest.mark.parametrize("name", NAMES)
def test_log_groups_have_retention_and_encryption(synth: Synthesized, name: str) -> None:
    groups = of_type(_without_rotation(synth.template(name)), "AWS::Logs::LogGroup")
    assert len(groups) == 2  # function logs and API access logs
    for group in groups:
        assert group["Properties"]["RetentionInDays"] == CONFIGS[name].logs.retention_days
        assert "KmsKeyId" in group["Properties"]


@pytest.mark.parametrize("name", NAMES)
def test_provisioned_concurrency_on_the_live_alias(synth: Synthesized, name: str) -> None:
    alias = one(_without_rotation(synth.template(name)), "AWS::Lambda::Alias")["Properties"]
    assert alias["Name"] == "live"
    wanted = CONFIGS[name].lambda_.provisioned_concurrency
    got = alias.get("ProvisionedConcurrencyConfig", {}).get("ProvisionedConcurrentExecutions")
    assert got == wanted


@pytest.mark.parametrize("name", NAMES)
def test_api_stage_throttling_logging_tracing(synth: Synthesized, name: str) -> None:
    config = CONFIGS[name]
    stage = one(synth.template(name), "AWS::ApiGateway::Stage")["Properties"]
    assert stage["TracingEnabled"] is True
    assert "DestinationArn" in stage["AccessLogSetting"]
    assert json.loads(stage["AccessLogSetting"]["Format"])["requestId"] == "$context.requestId"
    [settings] = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == config.api.throttle_rate_limit
    assert settings["ThrottlingBurstLimit"] == config.api.throttle_burst_limit
    assert settings["LoggingLevel"] == "INFO"
    assert settings["DataTraceEnabled"] is False  # would log full bodies: user messages


@pytest.mark.parametrize("name", NAMES)
def test_every_method_is_authorized_and_validated(synth: Synthesized, name: str) -> None:
    template = synth.template(name)
    api_keys = CONFIGS[name].api.auth == "api_key"
    # Without the mock GET /healthz of config dr.domain (Route 53's; tests/infra/test_dr.py).
    methods = [
        m
        for m in of_type(template, "AWS::ApiGateway::Method")
        if m["Properties"]["Integration"]["Type"] != "MOCK"
    ]
    assert {m["Properties"]["HttpMethod"] for m in methods} == {"GET", "POST"}
    for method in methods:
        props = method["Properties"]
        if api_keys:
            assert props["ApiKeyRequired"] is True
        else:
            assert props["AuthorizationType"] == "AWS_IAM"
        assert "RequestValidatorId" in props
        assert props["Integration"]["Type"] == "AWS_PROXY"
        # The integration invokes the live alias, never $LATEST.
        assert "AgentLive" in json.dumps(props["Integration"]["Uri"])
    validator = one(template, "AWS::ApiGateway::RequestValidator")["Properties"]
    assert validator["ValidateRequestBody"] is True
    assert validator["ValidateRequestParameters"] is True
    schema = one(template, "AWS::ApiGateway::Model")["Properties"]["Schema"]
    assert schema["required"] == ["message"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["message"]["maxLength"] == CONFIGS[name].agent.max_message_chars


def test_api_keys_come_with_a_usage_plan(synth: Synthesized) -> None:
    template = synth.template("agent-variant")
    plan = one(template, "AWS::ApiGateway::UsagePlan")["Properties"]
    assert plan["Quota"] == {"Limit": 1000, "Period": "DAY"}
    assert plan["Throttle"] == {"BurstLimit": 4, "RateLimit": 2}
    assert len(of_type(template, "AWS::ApiGateway::ApiKey")) == 1
    assert of_type(synth.template("agent-dev"), "AWS::ApiGateway::UsagePlan") == []


@pytest.mark.parametrize("name", NAMES)
def test_no_secret_value_anywhere_in_the_template(synth: Synthesized, name: str) -> None:
    template = synth.template(name)
    text = json.dumps(template)
    assert '"SecretString"' not in text  # a literal value; GenerateSecretString is fine
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", text)  # the shape of an OpenAI-style key
    for fn in of_type(template, "AWS::Lambda::Function"):
        variables = fn["Properties"].get("Environment", {}).get("Variables", {})
        # Keys travel as secret ARNs; ROTATION_KEY_NAME_PREFIX names the keys it issues.
        named = [k for k in variables if "KEY" in k and not k.endswith("_SECRET_ARN")]
        assert named in ([], ["ROTATION_KEY_NAME_PREFIX"]), named
    template = _without_rotation(template)
    env = one(template, "AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    if CONFIGS[name].llm.api_key_secret_name:
        secret = one(template, "AWS::SecretsManager::Secret")["Properties"]
        assert "GenerateSecretString" in secret  # a placeholder, never a literal value
        assert env["LLM_API_KEY_SECRET_ARN"] == {"Ref": next(
            k for k, r in template["Resources"].items()
            if r["Type"] == "AWS::SecretsManager::Secret"
        )}  # fmt: skip
    else:
        assert of_type(template, "AWS::SecretsManager::Secret") == []
        assert "LLM_API_KEY_SECRET_ARN" not in env


@pytest.mark.parametrize("name", NAMES)
def test_iam_actions_are_scoped(synth: Synthesized, name: str) -> None:
    template = synth.template(name)
    statements = policy_statements(template)
    for statement in statements:
        actions = as_list(statement["Action"])
        resources = as_list(statement["Resource"])
        assert not any(a == "*" or a.endswith(":*") for a in actions), actions
        if resources == ["*"]:
            # Only X-Ray, which has no resource-level permissions, may use Resource "*".
            assert all(a.startswith("xray:") for a in actions), actions
    bedrock = [s for s in statements if any(a.startswith("bedrock:") for a in as_list(s["Action"]))]
    if CONFIGS[name].llm.provider == "bedrock":
        [statement] = bedrock
        text = json.dumps(statement["Resource"])
        assert CONFIGS[name].llm.model_id.split(".", 1)[1] in text
        assert "foundation-model/*" not in text
    else:
        assert bedrock == []
    dynamo_actions = {
        a for s in statements for a in as_list(s["Action"]) if a.startswith("dynamodb:")
    }
    assert "dynamodb:DeleteTable" not in dynamo_actions
    assert {"dynamodb:GetItem", "dynamodb:PutItem"} <= dynamo_actions


@pytest.mark.parametrize("name", NAMES)
def test_function_role_has_no_managed_policies(synth: Synthesized, name: str) -> None:
    roles = [
        r for r in of_type(_without_rotation(synth.template(name)), "AWS::IAM::Role")
        if "lambda.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]  # fmt: skip
    [role] = roles
    assert "ManagedPolicyArns" not in role["Properties"]


@pytest.mark.parametrize("name", NAMES)
def test_alarms_from_config(synth: Synthesized, name: str) -> None:
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in of_type(synth.template(name), "AWS::CloudWatch::Alarm")
        # config dr's replication alarm follows the RPO instead (tests/infra/test_dr.py).
        if a["Properties"]["MetricName"] != "ReplicationLatency"
    }
    config = CONFIGS[name].alarms
    assert alarms["Errors"]["Threshold"] == config.errors_per_period
    assert alarms["Throttles"]["Threshold"] == config.throttles_per_period
    assert alarms["Duration"]["Threshold"] == config.p99_duration_ms
    assert alarms["Duration"]["ExtendedStatistic"] == "p99"
    for alarm in alarms.values():
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["Period"] == config.period_minutes * 60


@pytest.mark.parametrize("name", NAMES)
def test_outputs_and_tags(synth: Synthesized, name: str) -> None:
    template = synth.template(name)
    assert {"ApiUrl", "SessionTableName"} <= set(template["Outputs"])
    table = table_properties(one_table(template))
    tags = {t["Key"]: t["Value"] for t in table["Tags"]}
    assert tags == CONFIGS[name].tags


def test_dev_and_prod_differ_only_through_config_values(synth: Synthesized) -> None:
    dev, prod = synth.template("agent-dev"), synth.template("agent-prod")

    def shape(template: dict[str, Any], name: str) -> set[tuple[str, str]]:
        # Logical ids embed the stack's name and end in hashes of paths or values.
        shapes = set()
        for logical_id, resource in template["Resources"].items():
            generic = logical_id.replace(name.replace("-", ""), "<name>")
            generic = re.sub(r"(Deployment|CurrentVersion)[0-9A-Fa-f]+$", r"\1", generic)
            # config dr (prod): the same table, global, and its replication alarm.
            if "ReplicationLatencyAlarm" in generic:
                continue
            # config observability.dashboards, waf and rotation (prod): the pattern's
            # dashboard, the web ACL's association, the key rotation function and its parts.
            if resource["Type"] in ("AWS::CloudWatch::Dashboard", "AWS::WAFv2::WebACLAssociation"):
                continue
            if "LlmKeyRotation" in generic:
                continue
            kind = resource["Type"].replace("::GlobalTable", "::Table")
            shapes.add((re.sub(r"[0-9A-F]{8}", "", generic), kind))
        return shapes

    assert shape(dev, "agent-dev") == shape(prod, "agent-prod")
    # And the code never branches on an environment's name.
    for folder in ("stacks", "constructs"):
        for source in (REPO_ROOT / folder).glob("*.py"):
            text = source.read_text()
            assert not re.search(r"""["'](dev|prod|production|staging)["']""", text), source
