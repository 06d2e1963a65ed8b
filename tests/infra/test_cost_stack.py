"""The cost stack, asserted directly: the budget, its two notifications, the anomaly alerts and the
encrypted topic they publish to, all from each config's ``operations`` section."""

from __future__ import annotations

import json
from typing import Any

import pytest

from config.model import DeploymentConfig, OperationsConfig
from constructs.secure_defaults import ALERT_TOPIC_PUBLISHERS
from tests.infra.cfn import of_type, one
from tests.infra.conftest import Synthesized, all_configs

CONFIGS = {c.name: c for c in all_configs()}
WITH_OPERATIONS = sorted(name for name, c in CONFIGS.items() if c.operations is not None)


def _operations(config: DeploymentConfig) -> OperationsConfig:
    assert config.operations is not None
    return config.operations


def _topic_ref(template: dict[str, Any]) -> dict[str, str]:
    [topic_id] = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    return {"Ref": topic_id}


def test_every_committed_config_gets_cost_alerts() -> None:
    assert {"agent-dev", "agent-prod", "agent-hybrid", "agent-variant"} <= set(WITH_OPERATIONS)


@pytest.mark.parametrize("config_name", WITH_OPERATIONS)
def test_budget_is_monthly_cost_with_the_config_limit(synth: Synthesized, config_name: str) -> None:
    config = CONFIGS[config_name]
    budget = one(synth.template(config_name, "cost"), "AWS::Budgets::Budget")["Properties"]
    data = budget["Budget"]
    assert (data["BudgetType"], data["TimeUnit"]) == ("COST", "MONTHLY")
    assert data["BudgetLimit"] == {"Amount": _operations(config).monthly_budget_usd, "Unit": "USD"}
    if config.cost_filter is None:
        assert "CostFilters" not in data
    else:
        key, value = config.cost_filter
        assert data["CostFilters"] == {"TagKeyValue": [f"user:{key}${value}"]}


def test_committed_configs_filter_by_their_environment_tag(synth: Synthesized) -> None:
    data = one(synth.template("agent-prod", "cost"), "AWS::Budgets::Budget")["Properties"]
    assert data["Budget"]["CostFilters"] == {"TagKeyValue": ["user:environment$prod"]}


@pytest.mark.parametrize("config_name", WITH_OPERATIONS)
def test_budget_warns_on_forecast_and_alerts_on_actual(
    synth: Synthesized, config_name: str
) -> None:
    template = synth.template(config_name, "cost")
    budget = one(template, "AWS::Budgets::Budget")["Properties"]
    notifications = {
        n["Notification"]["NotificationType"]: n for n in budget["NotificationsWithSubscribers"]
    }
    assert set(notifications) == {"FORECASTED", "ACTUAL"}
    for kind, threshold in (("FORECASTED", 80), ("ACTUAL", 100)):
        assert notifications[kind]["Notification"] == {
            "NotificationType": kind,
            "ComparisonOperator": "GREATER_THAN",
            "Threshold": threshold,
            "ThresholdType": "PERCENTAGE",
        }
        assert {"Address": _topic_ref(template), "SubscriptionType": "SNS"} in notifications[kind][
            "Subscribers"
        ]


@pytest.mark.parametrize("config_name", WITH_OPERATIONS)
def test_anomaly_subscription_publishes_immediately_above_the_threshold(
    synth: Synthesized, config_name: str
) -> None:
    config = CONFIGS[config_name]
    template = synth.template(config_name, "cost")
    subscription = one(template, "AWS::CE::AnomalySubscription")["Properties"]
    assert subscription["Frequency"] == "IMMEDIATE"
    assert subscription["Subscribers"] == [{"Address": _topic_ref(template), "Type": "SNS"}]
    expression = json.loads(subscription["ThresholdExpression"])
    dimension = expression["Dimensions"]
    assert dimension["Key"] == "ANOMALY_TOTAL_IMPACT_ABSOLUTE"
    assert dimension["MatchOptions"] == ["GREATER_THAN_OR_EQUAL"]
    [value] = dimension["Values"]
    assert float(value) == _operations(config).anomaly_threshold_usd
    [monitor_id] = [
        k for k, r in template["Resources"].items() if r["Type"] == "AWS::CE::AnomalyMonitor"
    ]
    assert subscription["MonitorArnList"] == [{"Fn::GetAtt": [monitor_id, "MonitorArn"]}]


@pytest.mark.parametrize("config_name", WITH_OPERATIONS)
def test_anomaly_monitor_watches_what_the_budget_counts(
    synth: Synthesized, config_name: str
) -> None:
    config = CONFIGS[config_name]
    monitor = one(synth.template(config_name, "cost"), "AWS::CE::AnomalyMonitor")["Properties"]
    if config.cost_filter is None:
        assert (monitor["MonitorType"], monitor["MonitorDimension"]) == ("DIMENSIONAL", "SERVICE")
    else:
        key, value = config.cost_filter
        assert monitor["MonitorType"] == "CUSTOM"
        assert json.loads(monitor["MonitorSpecification"]) == {
            "Tags": {"Key": key, "Values": [value], "MatchOptions": ["EQUALS"]}
        }


def _service_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s
        for s in document["Statement"]
        if s["Effect"] == "Allow" and isinstance(s["Principal"], dict)
        and "Service" in s["Principal"]
    ]  # fmt: skip


@pytest.mark.parametrize("config_name", WITH_OPERATIONS)
def test_topic_is_encrypted_and_only_cost_services_of_this_account_publish(
    synth: Synthesized, config_name: str
) -> None:
    template = synth.template(config_name, "cost")
    [key_id] = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::KMS::Key"]
    key = template["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    topic = one(template, "AWS::SNS::Topic")["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    this_account = {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}

    [key_grant] = _service_statements(key["KeyPolicy"])
    assert sorted(key_grant["Principal"]["Service"]) == sorted(ALERT_TOPIC_PUBLISHERS)
    assert sorted(key_grant["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert key_grant["Condition"] == this_account

    statements = one(template, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
    [publish] = _service_statements({"Statement": statements})
    assert sorted(publish["Principal"]["Service"]) == sorted(ALERT_TOPIC_PUBLISHERS)
    assert publish["Action"] == "sns:Publish"
    assert publish["Resource"] == _topic_ref(template)
    assert publish["Condition"] == this_account
    # enforce_ssl: publishing without TLS is denied to everyone.
    assert {
        "Action": "sns:Publish",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": "*",
        "Resource": _topic_ref(template),
        "Sid": "AllowPublishThroughSSLOnly",
    } in statements


@pytest.mark.parametrize("config_name", WITH_OPERATIONS)
def test_email_subscriptions_equal_the_config(synth: Synthesized, config_name: str) -> None:
    template = synth.template(config_name, "cost")
    subscriptions = of_type(template, "AWS::SNS::Subscription")
    assert {s["Properties"]["Protocol"] for s in subscriptions} == {"email"}
    assert sorted(s["Properties"]["Endpoint"] for s in subscriptions) == sorted(
        _operations(CONFIGS[config_name]).alert_emails
    )
    for subscription in subscriptions:
        assert subscription["Properties"]["TopicArn"] == _topic_ref(template)


@pytest.mark.parametrize("config_name", WITH_OPERATIONS)
def test_budget_and_anomaly_alerts_wait_for_the_topic_policy(
    synth: Synthesized, config_name: str
) -> None:
    # Both services check at creation that they may publish to the topic.
    template = synth.template(config_name, "cost")
    [policy_id] = [
        k for k, r in template["Resources"].items() if r["Type"] == "AWS::SNS::TopicPolicy"
    ]
    for resource_type in ("AWS::Budgets::Budget", "AWS::CE::AnomalySubscription"):
        assert policy_id in one(template, resource_type)["DependsOn"]
