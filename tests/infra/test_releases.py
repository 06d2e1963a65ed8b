"""Safe releases: every ``live`` alias behind a CodeDeploy deployment group that rolls back on the
alias's own alarms; the container service blue/green (prod) or rolling, both with rollback; the
Kubernetes Deployments keep capacity while they roll."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.cfn import ids_of_type, of_type, refers_to
from tests.infra.conftest import REPO_ROOT, Synthesized, all_configs

CONFIGS = {c.name: c for c in all_configs()}
NAMES = sorted(CONFIGS)
# The configs that build the container stack (dev leaves it off: container.enabled false).
CONTAINER_NAMES = sorted(n for n, c in CONFIGS.items() if c.container.enabled)
# CodeDeploy's names for the config's choices, written out here rather than derived, so a wrong
# mapping in constructs/canary_release.py fails.
CODEDEPLOY_NAMES = {
    "all_at_once": "CodeDeployDefault.LambdaAllAtOnce",
    "canary_10_percent_5_minutes": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
    "canary_10_percent_10_minutes": "CodeDeployDefault.LambdaCanary10Percent10Minutes",
    "canary_10_percent_15_minutes": "CodeDeployDefault.LambdaCanary10Percent15Minutes",
    "canary_10_percent_30_minutes": "CodeDeployDefault.LambdaCanary10Percent30Minutes",
    "linear_10_percent_every_1_minute": "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
    "linear_10_percent_every_2_minutes": "CodeDeployDefault.LambdaLinear10PercentEvery2Minutes",
    "linear_10_percent_every_3_minutes": "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes",
    "linear_10_percent_every_10_minutes": "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes",
}


def _stacks_of(synth: Synthesized, name: str) -> dict[str, dict[str, Any]]:
    return {
        stack: template
        for stack, template in synth.templates.items()
        if stack.startswith(f"{name}-")
    }


def _live_aliases(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        alias_id: template["Resources"][alias_id]
        for alias_id in ids_of_type(template, "AWS::Lambda::Alias")
        if template["Resources"][alias_id]["Properties"]["Name"] == "live"
    }


def _is_alias_metric(alarm: dict[str, Any], function_ref: dict[str, Any]) -> bool:
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    return dimensions == {
        "FunctionName": function_ref,
        "Resource": {"Fn::Join": ["", [function_ref, ":live"]]},
    }


@pytest.mark.parametrize("name", NAMES)
def test_every_live_alias_has_a_deployment_group_that_rolls_back_on_its_alarms(
    synth: Synthesized, name: str
) -> None:
    config = CONFIGS[name]
    checked = 0
    for stack, template in _stacks_of(synth, name).items():
        resources = template["Resources"]
        groups = ids_of_type(template, "AWS::CodeDeploy::DeploymentGroup")
        aliases = _live_aliases(template)
        # One group per alias, none shared, none left over.
        assert len(groups) == len(aliases), stack
        used: set[str] = set()
        for alias_id, alias in aliases.items():
            update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
            group_id = update["DeploymentGroupName"]["Ref"]
            assert group_id in groups and group_id not in used, (stack, alias_id)
            used.add(group_id)
            group = resources[group_id]["Properties"]
            assert refers_to(update["ApplicationName"], group["ApplicationName"]["Ref"])
            assert (
                group["DeploymentConfigName"] == CODEDEPLOY_NAMES[config.releases.lambda_deployment]
            )
            assert group["DeploymentStyle"] == {
                "DeploymentOption": "WITH_TRAFFIC_CONTROL",
                "DeploymentType": "BLUE_GREEN",
            }
            rollback = group["AutoRollbackConfiguration"]
            assert rollback["Enabled"] is True
            assert set(rollback["Events"]) >= {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"}
            assert group["AlarmConfiguration"]["Enabled"] is True
            alarms = [
                resources[a["Name"]["Ref"]]["Properties"]
                for a in group["AlarmConfiguration"]["Alarms"]
            ]
            function_ref = alias["Properties"]["FunctionName"]
            # The alias's own traffic (Resource <fn>:live), not the function's.
            assert all(_is_alias_metric(alarm, function_ref) for alarm in alarms), stack
            by_metric = {alarm["MetricName"]: alarm for alarm in alarms}
            assert set(by_metric) == {"Errors", "Duration"}
            errors, duration = by_metric["Errors"], by_metric["Duration"]
            assert (errors["Statistic"], errors["Threshold"]) == (
                "Sum",
                config.alarms.errors_per_period,
            )
            assert (duration["ExtendedStatistic"], duration["Threshold"]) == (
                "p99",
                config.alarms.p99_duration_ms,
            )
            for alarm in alarms:
                assert alarm["Period"] == config.alarms.period_minutes * 60
                # One period: the rollback decides inside the canary window.
                assert alarm["EvaluationPeriods"] == 1
                assert alarm["TreatMissingData"] == "notBreaching"
            checked += 1
    # The serverless agent and the async stack's ingress, worker and callback worker.
    assert checked >= 4


@pytest.mark.parametrize("name", NAMES)
def test_codedeploy_may_move_only_its_aliases_and_read_only_its_alarms(
    synth: Synthesized, name: str
) -> None:
    for stack, template in _stacks_of(synth, name).items():
        groups = of_type(template, "AWS::CodeDeploy::DeploymentGroup")
        if not groups:
            continue
        role_ids = {g["Properties"]["ServiceRoleArn"]["Fn::GetAtt"][0] for g in groups}
        assert len(role_ids) == 1, stack
        [role_id] = role_ids
        role = template["Resources"][role_id]["Properties"]
        # No AWS-managed policy (AWSCodeDeployRoleForLambdaLimited updates any alias).
        assert not role.get("ManagedPolicyArns"), stack
        statements = [
            statement
            for policy in of_type(template, "AWS::IAM::Policy")
            if any(refers_to(r, role_id) for r in policy["Properties"]["Roles"])
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
        aliases = _live_aliases(template)
        for statement in statements:
            assert statement["Resource"] != "*", stack
            actions = set(
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            assert actions <= {
                "lambda:GetAlias",
                "lambda:UpdateAlias",
                "lambda:GetProvisionedConcurrencyConfig",
                "cloudwatch:DescribeAlarms",
            }, stack
        # Each alias by its ARN (function ARN + ":live"), and nothing else.
        alias_arns = [
            {
                "Fn::Join": [
                    "",
                    [{"Fn::GetAtt": [a["Properties"]["FunctionName"]["Ref"], "Arn"]}, ":live"],
                ]
            }
            for a in aliases.values()
        ]
        lambda_resources = [
            r for s in statements if "lambda:UpdateAlias" in s["Action"] for r in s["Resource"]
        ]
        assert all(arn in lambda_resources for arn in alias_arns), stack
        assert len(lambda_resources) == 2 * len(aliases), stack


def _container(synth: Synthesized, name: str) -> dict[str, Any]:
    return synth.template(name, "container")


def _agent_service(template: dict[str, Any]) -> dict[str, Any]:
    """The ECS service behind the load balancer (the worker has none)."""
    services: list[dict[str, Any]] = [
        s["Properties"]
        for s in of_type(template, "AWS::ECS::Service")
        if s["Properties"].get("LoadBalancers")
    ]
    [service] = services
    return service


def _alarm_names(template: dict[str, Any], deployment: dict[str, Any]) -> list[dict[str, Any]]:
    # Literal names (a Ref to the alarm would be a possible dependency cycle, CDK warns).
    by_name = {a["Properties"].get("AlarmName"): a["Properties"] for a in of_type(
        template, "AWS::CloudWatch::Alarm"
    )}  # fmt: skip
    return [by_name[name] for name in deployment["Alarms"]["AlarmNames"]]


@pytest.mark.parametrize("name", CONTAINER_NAMES)
def test_the_container_service_rolls_back_on_5xx_and_latency(synth: Synthesized, name: str) -> None:
    template = _container(synth, name)
    config = CONFIGS[name]
    service = _agent_service(template)
    deployment = service["DeploymentConfiguration"]
    # The circuit breaker stays on in both modes (ECS applies it to blue/green too).
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert deployment["Alarms"]["Enable"] is True
    assert deployment["Alarms"]["Rollback"] is True
    alarms = _alarm_names(template, deployment)
    assert len(alarms) == 2
    latency = [a for a in alarms if a.get("MetricName") == "TargetResponseTime"]
    errors = [a for a in alarms if "Metrics" in a]
    assert len(latency) == len(errors) == 1
    assert latency[0]["ExtendedStatistic"] == "p99"
    assert latency[0]["Threshold"] == config.alarms.p99_duration_ms / 1000
    assert errors[0]["Threshold"] == config.alarms.errors_per_period
    used = {
        m["MetricStat"]["Metric"]["MetricName"] for m in errors[0]["Metrics"] if "MetricStat" in m
    }
    assert used == {"HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count"}
    for alarm in alarms:
        assert alarm["EvaluationPeriods"] == 1
        assert alarm["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("name", CONTAINER_NAMES)
def test_blue_green_or_rolling_as_the_config_says(synth: Synthesized, name: str) -> None:
    template = _container(synth, name)
    releases = CONFIGS[name].releases
    service = _agent_service(template)
    deployment = service["DeploymentConfiguration"]
    [target] = service["LoadBalancers"]
    groups = ids_of_type(template, "AWS::ElasticLoadBalancingV2::TargetGroup")
    if releases.ecs_deployment == "rolling":
        assert deployment.get("Strategy", "ROLLING") == "ROLLING"
        assert "AdvancedConfiguration" not in target
        assert len(groups) == 1
        return
    assert deployment["Strategy"] == "BLUE_GREEN"
    assert deployment["BakeTimeInMinutes"] == releases.ecs_bake_minutes
    assert len(groups) == 2
    blue = target["TargetGroupArn"]["Ref"]
    advanced = target["AdvancedConfiguration"]
    green = advanced["AlternateTargetGroupArn"]["Ref"]
    assert {blue, green} == set(groups)
    # The production rule matches every request and starts on blue.
    rule_id = advanced["ProductionListenerRule"]["Ref"]
    rule = template["Resources"][rule_id]["Properties"]
    assert rule["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["*"]}}]
    [action] = rule["Actions"]
    weights = {
        g["TargetGroupArn"]["Ref"]: g["Weight"] for g in action["ForwardConfig"]["TargetGroups"]
    }
    assert weights == {blue: 1, green: 0}
    # ECS's role may change this rule, the listener and the two groups only.
    role_id = advanced["RoleArn"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    assert not role.get("ManagedPolicyArns")
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "ecs.amazonaws.com"
    }
    statements = [
        s
        for policy in of_type(template, "AWS::IAM::Policy")
        if any(refers_to(r, role_id) for r in policy["Properties"]["Roles"])
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if statement["Resource"] == "*":
            assert all(a.startswith("elasticloadbalancing:Describe") for a in actions)
        elif "elasticloadbalancing:ModifyRule" in actions:
            assert statement["Resource"] == {"Ref": rule_id}


@pytest.mark.parametrize("name", CONTAINER_NAMES)
def test_request_scaling_follows_the_live_target_group(synth: Synthesized, name: str) -> None:
    template = _container(synth, name)
    releases = CONFIGS[name].releases
    configurations = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
        if "TargetTrackingScalingPolicyConfiguration" in p["Properties"]
    ]
    predefined = [
        c for c in configurations
        if c.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType")
        == "ALBRequestCountPerTarget"
    ]  # fmt: skip
    custom = [
        c for c in configurations
        if "RequestCountPerTarget" in str(c.get("CustomizedMetricSpecification"))
    ]  # fmt: skip
    target = CONFIGS[name].container.service.requests_per_target
    if releases.ecs_deployment == "rolling":
        assert len(predefined) == 1 and not custom
        return
    # ALBRequestCountPerTarget names one group, idle after a switch: both groups' sum instead.
    assert not predefined
    [configuration] = custom
    assert configuration["TargetValue"] == target
    queries = configuration["CustomizedMetricSpecification"]["Metrics"]
    groups = {
        d["Value"]["Fn::GetAtt"][0]
        for q in queries
        if "MetricStat" in q
        for d in q["MetricStat"]["Metric"]["Dimensions"]
        if d["Name"] == "TargetGroup"
    }
    assert groups == set(ids_of_type(template, "AWS::ElasticLoadBalancingV2::TargetGroup"))
    [result] = [q for q in queries if q.get("ReturnData")]
    assert result["Expression"] == "FILL(blue, 0) + FILL(green, 0)"


def test_prod_releases_safely_and_dev_fast(synth: Synthesized) -> None:
    prod, dev = CONFIGS["agent-prod"].releases, CONFIGS["agent-dev"].releases
    assert prod.lambda_deployment.startswith("canary_") and prod.ecs_deployment == "blue_green"
    assert (dev.lambda_deployment, dev.ecs_deployment) == ("all_at_once", "rolling")
    assert _container(synth, "agent-prod") is not None


def _deployments(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(directory.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") == "Deployment":
                found.append((path, document))
    return found


def test_kubernetes_deployments_roll_without_losing_capacity() -> None:
    deployments = _deployments(REPO_ROOT / "k8s" / "dist")
    names = {document["metadata"]["name"] for _, document in deployments}
    # The service and the worker (a Deployment unless its tasks outlast scaled_job_above_seconds).
    assert any(re.search("worker", n) for n in names) and any(
        re.search("service", n) for n in names
    )
    for path, document in deployments:
        strategy = document["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate", path
        # New pods pass readiness before an old one stops: capacity never drops mid-rollout.
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, path
        surge = strategy["rollingUpdate"]["maxSurge"]
        assert surge not in (0, "0", "0%"), path


# --- the construct on a bare stack (fast, no app synthesis) ---------------------------------


def _releases(deployment: str = "canary_10_percent_5_minutes") -> tuple[Any, Any]:
    from aws_cdk import App, Duration, Stack

    from constructs.canary_release import LambdaReleaseProps, LambdaReleases

    stack = Stack(App(), "s")
    releases = LambdaReleases(
        stack,
        "Releases",
        props=LambdaReleaseProps(
            deployment=deployment, errors_per_period=3, p99_duration_ms=1000,
            period=Duration.minutes(5),
        ),
    )  # fmt: skip
    return stack, releases


def _function(stack: Any, construct_id: str, alias_name: str = "live") -> Any:
    from aws_cdk import aws_lambda as lambda_

    from constructs import Construct

    holder = Construct(stack, construct_id)
    fn = lambda_.Function(
        holder,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
    )
    return lambda_.Alias(holder, "Alias", alias_name=alias_name, version=fn.current_version)


def test_an_unknown_deployment_is_refused() -> None:
    with pytest.raises(ValueError, match=r"deployment 'canary_50' is not one of: all_at_once, "):
        _releases("canary_50")


def test_an_alias_is_released_once() -> None:
    stack, releases = _releases()
    alias = _function(stack, "Agent")
    releases.add("Agent", alias, "agent")
    with pytest.raises(ValueError, match=r"'Again' was added already"):
        releases.add("Again", alias, "agent")


def test_every_live_alias_in_a_stack_is_released_and_others_are_not() -> None:
    from aws_cdk.assertions import Template

    stack, releases = _releases("linear_10_percent_every_1_minute")
    named = _function(stack, "Agent")
    _function(stack, "Rotation")
    _function(stack, "Preview", alias_name="preview")
    releases.add("Agent", named, "agent")
    releases.add_every_live_alias(stack)
    assert sorted(releases.releases) == ["Agent", "Rotation"]
    assert len(releases.rollback_alarms) == 4
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::CodeDeploy::DeploymentGroup", 2)
    template.resource_count_is("AWS::CodeDeploy::Application", 1)
    template.has_resource_properties(
        "AWS::CodeDeploy::DeploymentGroup",
        {"DeploymentConfigName": "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"},
    )
    # One service role for the stack, without AWS-managed policies.
    [role] = [
        r
        for r in template.find_resources("AWS::IAM::Role").values()
        if "codedeploy" in str(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert not role["Properties"].get("ManagedPolicyArns")
