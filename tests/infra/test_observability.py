"""Observability, asserted on the synthesized templates: every alarm notifies the deployment's
encrypted alert topic, one dashboard per pattern stack where configured, and the cost alarm
watches exactly the metric the runtime writes."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Stack, Token

from config.model import DeploymentConfig
from runtime.observability import usage
from tests.infra.cfn import ids_of_type, of_type, one
from tests.infra.conftest import Synthesized, all_configs

CONFIGS = {c.name: c for c in all_configs()}
WITH_OPERATIONS = sorted(name for name, c in CONFIGS.items() if c.operations is not None)
WITH_DASHBOARDS = sorted(name for name, c in CONFIGS.items() if c.observability.dashboards)
WITH_COST_ALARM = sorted(
    name for name, c in CONFIGS.items() if c.observability.cost_per_hour_alarm_usd is not None
)


def _stacks(synth: Synthesized, config_name: str) -> list[Stack]:
    return [
        child
        for child in synth.app.node.children
        if isinstance(child, Stack) and child.stack_name.startswith(f"{config_name}-")
    ]


def _same_region(a: Stack, b: Stack) -> bool:
    if Token.is_unresolved(a.region) or Token.is_unresolved(b.region):
        return Token.is_unresolved(a.region) and Token.is_unresolved(b.region)
    return a.region == b.region


def _topic_id(cost: dict[str, Any]) -> str:
    [topic_id] = ids_of_type(cost, "AWS::SNS::Topic")
    return topic_id


def _is_alert_topic(action: Any, *, in_cost_stack: bool, cost: dict[str, Any], name: str) -> bool:
    """Whether an alarm action names the cost stack's topic: a Ref in that stack, a cross-stack
    reference (GetStackOutput or ImportValue of an output that is the topic's Ref) elsewhere."""
    topic_ref = {"Ref": _topic_id(cost)}
    if in_cost_stack:
        return bool(action == topic_ref)
    outputs = cost.get("Outputs", {})
    if isinstance(action, dict) and "Fn::GetStackOutput" in action:
        reference = action["Fn::GetStackOutput"]
        return bool(
            reference["StackName"] == f"{name}-cost"
            and outputs.get(reference["OutputName"], {}).get("Value") == topic_ref
        )
    if isinstance(action, dict) and "Fn::ImportValue" in action:
        return any(
            output.get("Export", {}).get("Name") == action["Fn::ImportValue"]
            and output["Value"] == topic_ref
            for output in outputs.values()
        )
    return False


@pytest.mark.parametrize("config_name", WITH_OPERATIONS)
def test_every_alarm_notifies_the_alert_topic(synth: Synthesized, config_name: str) -> None:
    cost_template = synth.template(config_name, "cost")
    stacks = _stacks(synth, config_name)
    [cost_stack] = [s for s in stacks if s.stack_name == f"{config_name}-cost"]
    checked = 0
    for stack in stacks:
        if not _same_region(stack, cost_stack):
            # CloudWatch cannot notify a topic in another region; such stacks are left alone.
            continue
        template = synth.templates[stack.stack_name]
        for alarm_id in ids_of_type(template, "AWS::CloudWatch::Alarm"):
            props = template["Resources"][alarm_id]["Properties"]
            actions = props.get("AlarmActions", [])
            where = f"{stack.stack_name}/{alarm_id}"
            # The one kind of alarm kept off the topic drives a scaling policy, nothing else.
            if actions and all(
                isinstance(a, dict)
                and template["Resources"].get(a.get("Ref", ""), {}).get("Type")
                == "AWS::ApplicationAutoScaling::ScalingPolicy"
                for a in actions
            ):
                assert "OKActions" not in props, where
                continue
            checked += 1
            in_cost = stack is cost_stack
            for kind in ("AlarmActions", "OKActions"):
                listed = props.get(kind, [])
                assert len(listed) == 1, f"{where}: {kind} must be exactly the alert topic"
                assert _is_alert_topic(
                    listed[0], in_cost_stack=in_cost, cost=cost_template, name=config_name
                ), f"{where}: {kind} {listed[0]} is not the alert topic"
    # The function, queue and cost alarms at least: the walk found them.
    assert checked >= 7


def test_an_exempt_alarm_still_has_an_action(synth: Synthesized) -> None:
    """Exemption is for automation alarms: the worker's scale-from-zero alarm keeps its step."""
    template = synth.template("agent-prod", "container")
    scaling = [
        a["Properties"]
        for a in of_type(template, "AWS::CloudWatch::Alarm")
        if "OKActions" not in a["Properties"]
    ]
    assert scaling, "expected the worker's start-from-zero alarm"
    for props in scaling:
        [action] = props["AlarmActions"]
        assert template["Resources"][action["Ref"]]["Type"] == (
            "AWS::ApplicationAutoScaling::ScalingPolicy"
        )


@pytest.mark.parametrize("config_name", WITH_OPERATIONS)
def test_the_topic_key_admits_cloudwatch_of_this_account(
    synth: Synthesized, config_name: str
) -> None:
    template = synth.template(config_name, "cost")
    [key_id] = ids_of_type(template, "AWS::KMS::Key")
    topic = one(template, "AWS::SNS::Topic")["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    this_account = {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    key_policy = template["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    [encrypt] = [
        s
        for s in key_policy
        if "cloudwatch.amazonaws.com" in str(s.get("Principal", {}).get("Service", ""))
    ]
    assert sorted(encrypt["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert encrypt["Condition"] == this_account
    topic_policy = one(template, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]
    [publish] = [
        s
        for s in topic_policy["Statement"]
        if s["Effect"] == "Allow"
        and "cloudwatch.amazonaws.com" in str(s.get("Principal", {}).get("Service", ""))
    ]
    assert publish["Action"] == "sns:Publish"
    assert publish["Condition"] == this_account
    # TLS only, for everyone.
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in topic_policy["Statement"]
    )
    emails = sorted(
        s["Properties"]["Endpoint"]
        for s in of_type(template, "AWS::SNS::Subscription")
        if s["Properties"]["Protocol"] == "email"
    )
    operations = CONFIGS[config_name].operations
    assert operations is not None
    assert emails == sorted(operations.alert_emails)


def test_prod_has_dashboards_and_a_cost_alarm() -> None:
    assert "agent-prod" in WITH_DASHBOARDS
    assert "agent-prod" in WITH_COST_ALARM


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_one_dashboard_per_pattern_stack_when_configured(
    synth: Synthesized, config_name: str
) -> None:
    config = CONFIGS[config_name]
    patterns = ["serverless", "async"] + (["container"] if config.container.enabled else [])
    # A pattern stack: <name>-<pattern>, or its disaster-recovery standby <name>-<pattern>-<region>.
    pattern_stacks = {
        name
        for name in synth.templates
        for pattern in patterns
        if name == f"{config_name}-{pattern}" or name.startswith(f"{config_name}-{pattern}-")
    }
    assert {f"{config_name}-{pattern}" for pattern in patterns} <= pattern_stacks
    expected = 1 if config.observability.dashboards else 0
    for name, template in synth.templates.items():
        if not name.startswith(f"{config_name}-"):
            continue
        dashboards = of_type(template, "AWS::CloudWatch::Dashboard")
        assert len(dashboards) == (expected if name in pattern_stacks else 0), name
        for dashboard in dashboards:
            # Named after its stack: unique per region, and says where to look.
            assert dashboard["Properties"]["DashboardName"] == name


def _dashboard_text(synth: Synthesized, config_name: str, pattern: str) -> str:
    import json

    [dashboard] = of_type(synth.template(config_name, pattern), "AWS::CloudWatch::Dashboard")
    return json.dumps(dashboard["Properties"]["DashboardBody"])


@pytest.mark.parametrize("config_name", WITH_DASHBOARDS)
def test_dashboards_show_what_the_issue_asks_for(synth: Synthesized, config_name: str) -> None:
    config = CONFIGS[config_name]
    model = config.llm.model_id
    token_metric = f'[\\"{config_name}\\",\\"{usage.INPUT_TOKENS}\\",\\"Model\\",\\"{model}\\"'
    serverless = _dashboard_text(synth, config_name, "serverless")
    for metric in ("Latency", "4XXError", "5XXError", "Throttles", "Duration", "Errors"):
        assert f'\\"{metric}\\"' in serverless, metric
    assert "AWS/DynamoDB" in serverless
    assert f"{config_name}-serverless-Api" in serverless  # the API's unique name (ApiName)
    async_ = _dashboard_text(synth, config_name, "async")
    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        assert metric in async_
    assert async_.count("AWS/Lambda") >= 3
    for text in (serverless, async_):
        assert token_metric in text.replace(" ", "")
        assert usage.ESTIMATED_COST in text
    if config.container.enabled:
        container = _dashboard_text(synth, config_name, "container")
        for metric in ("CPUUtilization", "MemoryUtilization", "TargetResponseTime"):
            assert metric in container
        assert "HTTPCode_Target_5XX_Count" in container
        assert "AWS/ElastiCache" in container


def _cost_alarm(synth: Synthesized, config: DeploymentConfig) -> dict[str, Any]:
    template = synth.template(config.name, "cost")
    [alarm] = [
        a["Properties"]
        for a in of_type(template, "AWS::CloudWatch::Alarm")
        if a["Properties"].get("MetricName") == usage.ESTIMATED_COST
    ]
    found: dict[str, Any] = alarm
    return found


@pytest.mark.parametrize("config_name", WITH_COST_ALARM)
def test_the_cost_alarm_watches_what_the_runtime_writes(
    synth: Synthesized, config_name: str
) -> None:
    config = CONFIGS[config_name]
    alarm = _cost_alarm(synth, config)
    # The runtime's constants and its environment (the stacks set both from one function).
    environment = _agent_environment(synth, config_name)
    assert alarm["Namespace"] == environment["USAGE_METRICS_NAMESPACE"]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert tuple(sorted(dimensions)) == tuple(sorted(usage.DIMENSIONS))
    assert dimensions[usage.SERVICE_DIMENSION] == environment["USAGE_METRICS_SERVICE"]
    assert dimensions[usage.MODEL_DIMENSION] == environment["LLM_MODEL_ID"]
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 3600, 1)
    assert alarm["Threshold"] == config.observability.cost_per_hour_alarm_usd
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    # Prices for the cost metric reach the runtime.
    assert float(environment["LLM_INPUT_PRICE_USD_PER_MILLION"]) > 0
    assert float(environment["LLM_OUTPUT_PRICE_USD_PER_MILLION"]) > 0


def _agent_environment(synth: Synthesized, config_name: str) -> dict[str, Any]:
    template = synth.template(config_name, "serverless")
    [fn] = [
        f["Properties"]
        for f in of_type(template, "AWS::Lambda::Function")
        if "LLM_MODEL_ID" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    variables: dict[str, Any] = fn["Environment"]["Variables"]
    return variables


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_every_model_caller_gets_the_usage_environment(
    synth: Synthesized, config_name: str
) -> None:
    config = CONFIGS[config_name]
    wanted = {"USAGE_METRICS_NAMESPACE": config_name, "USAGE_METRICS_SERVICE": config_name}
    callers = []
    for pattern in ("serverless", "async"):
        for fn in of_type(synth.template(config_name, pattern), "AWS::Lambda::Function"):
            variables = fn["Properties"].get("Environment", {}).get("Variables", {})
            if "LLM_MODEL_ID" in variables:
                callers.append(variables)
    if config.container.enabled:
        for task in of_type(synth.template(config_name, "container"), "AWS::ECS::TaskDefinition"):
            for container in task["Properties"]["ContainerDefinitions"]:
                variables = {e["Name"]: e["Value"] for e in container.get("Environment", [])}
                if "LLM_MODEL_ID" in variables:
                    callers.append(variables)
    assert len(callers) >= 2
    for variables in callers:
        assert {k: variables.get(k) for k in wanted} == wanted


def test_rest_apis_have_unique_names(synth: Synthesized) -> None:
    """API Gateway keys its metrics by API name: CDK's default ("Api") would merge every API's
    graphs in the account."""
    names = [
        api["Properties"]["Name"]
        for template in synth.templates.values()
        for api in of_type(template, "AWS::ApiGateway::RestApi")
    ]
    assert names and len(set(names)) == len(names)


# --- construct level: the topic and the aspect on bare stacks (fast) ---------------------------


def _bare_alarm(stack: Stack, alarm_id: str) -> Any:
    from aws_cdk import Duration
    from aws_cdk import aws_cloudwatch as cloudwatch

    metric = cloudwatch.Metric(namespace="Test", metric_name=alarm_id, period=Duration.minutes(1))
    return metric.create_alarm(stack, alarm_id, threshold=1, evaluation_periods=1)


def test_the_aspect_covers_same_region_stacks_and_spares_exempt_alarms() -> None:
    from aws_cdk import App, Environment, RemovalPolicy
    from aws_cdk.assertions import Template

    from constructs.alarm_topic import AlertTopic, add_alarm_notifications, exempt_from_alerts

    app = App(context={"aws:cdk:bundling-stacks": []})
    alerts_stack = Stack(app, "Alerts")
    alerts = AlertTopic(
        alerts_stack, "Alerts", emails=("ops@example.com",), removal_policy=RemovalPolicy.DESTROY
    )
    workload = Stack(app, "Workload")
    _bare_alarm(workload, "Paged")
    exempt_from_alerts(_bare_alarm(workload, "Scaling"), "drives a scaling step, not a person")
    elsewhere = Stack(app, "Elsewhere", env=Environment(region="us-east-1"))
    _bare_alarm(elsewhere, "OtherRegion")

    covered = add_alarm_notifications([alerts_stack, workload, elsewhere], alerts.topic)

    assert covered == [alerts_stack, workload]
    alarms = Template.from_stack(workload).find_resources("AWS::CloudWatch::Alarm")
    by_name = {props["Properties"]["MetricName"]: props["Properties"] for props in alarms.values()}
    assert len(by_name["Paged"]["AlarmActions"]) == 1
    assert by_name["Paged"]["AlarmActions"] == by_name["Paged"]["OKActions"]
    assert "AlarmActions" not in by_name["Scaling"]
    other = Template.from_stack(elsewhere).find_resources("AWS::CloudWatch::Alarm")
    assert all("AlarmActions" not in a["Properties"] for a in other.values())


def test_allow_service_admits_one_more_publisher() -> None:
    from aws_cdk import App, RemovalPolicy
    from aws_cdk.assertions import Template

    from constructs.alarm_topic import AlertTopic

    stack = Stack(App(), "Alerts")
    alerts = AlertTopic(stack, "Alerts", emails=(), removal_policy=RemovalPolicy.DESTROY)
    alerts.allow_service("backup.amazonaws.com")
    template = dict(Template.from_stack(stack).to_json())
    [policy] = of_type(template, "AWS::SNS::TopicPolicy")
    [backup] = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "BackupPublish"
    ]
    assert backup["Principal"] == {"Service": "backup.amazonaws.com"}


def test_an_exemption_needs_a_reason() -> None:
    from aws_cdk import App

    from constructs.alarm_topic import exempt_from_alerts

    alarm = _bare_alarm(Stack(App(), "S"), "A")
    with pytest.raises(ValueError, match="give a specific reason"):
        exempt_from_alerts(alarm, "scaling")


def test_without_operations_alarms_have_no_actions_and_nothing_breaks() -> None:
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from config import load_config
    from stacks.composition import build_deployment

    dev = load_config("dev")
    config = dev.model_copy(
        update={
            "operations": None,
            "observability": dev.observability.model_copy(update={"cost_per_hour_alarm_usd": None}),
        }
    )
    app = App(context={"aws:cdk:bundling-stacks": []})
    stacks = build_deployment(app, config)
    assert not any(s.stack_name.endswith("-cost") for s in stacks)
    serverless = next(s for s in stacks if s.stack_name == "agent-dev-serverless")
    alarms = Template.from_stack(serverless).find_resources("AWS::CloudWatch::Alarm")
    assert alarms
    assert all("AlarmActions" not in a["Properties"] for a in alarms.values())


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_xray_traces_the_rest_apis_and_the_agent_functions(
    synth: Synthesized, config_name: str
) -> None:
    stages = functions = 0
    # The X-Ray SDK only where the config asks for it (runtime/handlers/tracing.py).
    wanted = CONFIGS[config_name].observability.xray_sdk_subsegments
    sdk = {"AGENT_XRAY_SDK": "true"} if wanted else {}
    for pattern in ("serverless", "async"):
        template = synth.template(config_name, pattern)
        for stage in of_type(template, "AWS::ApiGateway::Stage"):
            stages += 1
            assert stage["Properties"]["TracingEnabled"] is True
        for fn in of_type(template, "AWS::Lambda::Function"):
            variables = fn["Properties"].get("Environment", {}).get("Variables", {})
            if "POWERTOOLS_SERVICE_NAME" in variables:
                functions += 1
                assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}
                assert {k: v for k, v in variables.items() if k == "AGENT_XRAY_SDK"} == sdk
    # Two REST APIs; the agent, ingress, worker and callback functions at least.
    assert stages == 2
    assert functions >= 4


@pytest.mark.parametrize("config_name", WITH_OPERATIONS)
def test_the_stacks_with_alarms_deploy_after_the_alert_topic(
    synth: Synthesized, config_name: str
) -> None:
    import json

    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    for pattern in ("serverless", "async"):
        dependencies = manifest["artifacts"][f"{config_name}-{pattern}"].get("dependencies", [])
        assert f"{config_name}-cost" in dependencies, pattern
    # The cost stack itself references nothing of the others: it can be deployed first.
    cost_dependencies = manifest["artifacts"][f"{config_name}-cost"].get("dependencies", [])
    assert not [
        d
        for d in cost_dependencies
        if d.startswith(f"{config_name}-") and not d.endswith(".assets")
    ]


def test_a_synthesized_config_turns_the_xray_sdk_on() -> None:
    # Otherwise the environment check above only ever sees the default.
    turned_on = [n for n, c in CONFIGS.items() if c.observability.xray_sdk_subsegments]
    assert turned_on == ["agent-variant"]
