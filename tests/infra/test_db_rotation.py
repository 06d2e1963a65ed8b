"""The memory database's password rotation (hybrid): config, the hosted rotation, who reaches what.

The memory stack puts Secrets Manager's hosted single-user PostgreSQL rotation on the cluster's
credentials secret (``hybrid.memory.credentials_rotation_days``); its function runs in the VPC's
app subnets with a security group that reaches only the store and HTTPS; the container tasks
read the secret by ARN (never injected at start), so a rotated password reaches them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment
from pydantic import ValidationError

from config.model import DeploymentConfig, MemoryConfig
from constructs.secure_defaults import MEMORY_PORT
from stacks.memory_stack import MemoryStack
from stacks.network_stack import NetworkStack
from tests.infra.cfn import as_list, ids_of_type, of_type
from tests.infra.conftest import Synthesized, all_configs, cdk_json_context

CONFIGS = {c.name: c for c in all_configs()}
HYBRID = sorted(name for name, c in CONFIGS.items() if c.hybrid is not None)
HOSTED_ROTATION_TRANSFORM = "AWS::SecretsManager-2024-09-16"


def _memory(config: DeploymentConfig) -> MemoryConfig:
    assert config.hybrid is not None
    return config.hybrid.memory


def _with_rotation(config: DeploymentConfig, days: int | None) -> DeploymentConfig:
    assert config.hybrid is not None
    memory = config.hybrid.memory.model_copy(update={"credentials_rotation_days": days})
    return config.model_copy(update={"hybrid": config.hybrid.model_copy(update={"memory": memory})})


def _schedule(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(logical_id, schedule)] = [
        (logical_id, resource)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SecretsManager::RotationSchedule"
    ]
    return logical_id, schedule["Properties"]


def _group_of(reference: Any) -> str:
    """The logical id behind ``{"Fn::GetAtt": [id, "GroupId"]}``."""
    assert reference["Fn::GetAtt"][1] == "GroupId", reference
    return str(reference["Fn::GetAtt"][0])


# --- config --------------------------------------------------------------------------------------


def test_rotation_is_on_every_30_days_by_default() -> None:
    assert MemoryConfig().credentials_rotation_days == 30
    assert MemoryConfig(credentials_rotation_days=None).credentials_rotation_days is None
    assert MemoryConfig(credentials_rotation_days=1).credentials_rotation_days == 1
    assert MemoryConfig(credentials_rotation_days=1000).credentials_rotation_days == 1000


@pytest.mark.parametrize("days", [0, -1, 1001])
def test_rotation_days_outside_secrets_managers_limits_are_refused(days: int) -> None:
    with pytest.raises(ValidationError, match="credentials_rotation_days") as raised:
        MemoryConfig(credentials_rotation_days=days)
    message = str(raised.value)
    assert "must be 1 to 1000 days" in message
    assert "set null to turn the database password's rotation off" in message


# --- the hosted rotation on the synthesized app --------------------------------------------------


@pytest.mark.parametrize("name", HYBRID)
def test_the_db_secret_rotates_on_the_configured_schedule(synth: Synthesized, name: str) -> None:
    days = _memory(CONFIGS[name]).credentials_rotation_days
    assert days is not None, f"{name}: the hybrid profiles rotate the memory password"
    memory = synth.template(name, "memory")
    assert HOSTED_ROTATION_TRANSFORM in as_list(memory["Transform"])
    [attachment] = ids_of_type(memory, "AWS::SecretsManager::SecretTargetAttachment")
    [key] = ids_of_type(memory, "AWS::KMS::Key")
    _, schedule = _schedule(memory)
    # On the attached secret: its JSON holds the host the function connects to.
    assert schedule["SecretId"] == {"Ref": attachment}
    assert schedule["RotationRules"] == {"ScheduleExpression": f"rate({days} days)"}
    assert schedule["RotateImmediatelyOnUpdate"] is False
    hosted = schedule["HostedRotationLambda"]
    # Single user: the runtime connects as the master user; there is no second user to swap.
    assert hosted["RotationType"] == "PostgreSQLSingleUser"
    assert "MasterSecretArn" not in hosted
    # The secret is encrypted with the stack's key: the function may use it.
    assert hosted["KmsKeyArn"] == {"Fn::GetAtt": [key, "Arn"]}
    # In the app subnets (they route to Secrets Manager), never the data tier.
    subnets = json.dumps(hosted["VpcSubnetIds"])
    assert "VpcappSubnet" in subnets and "VpcdataSubnet" not in subnets


@pytest.mark.parametrize("name", HYBRID)
def test_a_failed_rotation_step_alarms_the_alert_topic(synth: Synthesized, name: str) -> None:
    memory = synth.template(name, "memory")
    _, schedule = _schedule(memory)
    function_name = schedule["HostedRotationLambda"]["RotationLambdaName"]
    assert function_name == f"{name}-memory-rotation"
    [alarm] = [
        a["Properties"]
        for a in of_type(memory, "AWS::CloudWatch::Alarm")
        if a["Properties"].get("MetricName") == "Errors"
        and a["Properties"].get("Namespace") == "AWS/Lambda"
    ]
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": function_name}]
    assert alarm["Threshold"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"
    if CONFIGS[name].operations is not None:
        # Every alarm of the deployment reaches the alert topic (constructs/alarm_topic.py).
        assert alarm["AlarmActions"] and alarm["OKActions"]


@pytest.mark.parametrize("name", HYBRID)
def test_the_rotation_function_reaches_the_store_and_https_only(
    synth: Synthesized, name: str
) -> None:
    memory = synth.template(name, "memory")
    resources = memory["Resources"]
    _, schedule = _schedule(memory)
    rotation_group = _group_of(schedule["HostedRotationLambda"]["VpcSecurityGroupIds"])
    [cluster] = of_type(memory, "AWS::RDS::DBCluster")
    [store_group] = [_group_of(g) for g in cluster["Properties"]["VpcSecurityGroupIds"]]
    assert rotation_group != store_group

    # The store admits the function's group on 5432 (the rule lives in this stack) ...
    ingress = [
        r["Properties"]
        for r in of_type(memory, "AWS::EC2::SecurityGroupIngress")
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [store_group, "GroupId"]}
        and r["Properties"].get("SourceSecurityGroupId")
        == {"Fn::GetAtt": [rotation_group, "GroupId"]}
    ]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in ingress] == [
        ("tcp", MEMORY_PORT, MEMORY_PORT)
    ]
    # ... and the function's group may go there, and to HTTPS (Secrets Manager), nowhere else.
    egress = [
        r["Properties"]
        for r in of_type(memory, "AWS::EC2::SecurityGroupEgress")
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [rotation_group, "GroupId"]}
    ]
    assert [(e["DestinationSecurityGroupId"], e["FromPort"], e["ToPort"]) for e in egress] == [
        ({"Fn::GetAtt": [store_group, "GroupId"]}, MEMORY_PORT, MEMORY_PORT)
    ]
    inline = resources[rotation_group]["Properties"]["SecurityGroupEgress"]
    assert [(e["CidrIp"], e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in inline] == [
        ("0.0.0.0/0", "tcp", 443, 443)
    ]
    assert "SecurityGroupIngress" not in resources[rotation_group]["Properties"]
    assert not [
        r
        for r in of_type(memory, "AWS::EC2::SecurityGroupIngress")
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [rotation_group, "GroupId"]}
    ]


@pytest.mark.parametrize("name", HYBRID)
def test_the_hybrid_vpc_routes_the_app_subnets_to_a_nat_gateway(
    synth: Synthesized, name: str
) -> None:
    # The function calls Secrets Manager's public endpoint through the NAT gateway; without one
    # the network has a Secrets Manager interface endpoint (see the NAT-less test below).
    assert CONFIGS[name].container.nat_gateways >= 1
    network = synth.template(name, "network")
    app_routes = [
        r["Properties"]
        for logical_id, r in network["Resources"].items()
        if r["Type"] == "AWS::EC2::Route" and "VpcappSubnet" in logical_id
    ]
    assert app_routes and all("NatGatewayId" in r for r in app_routes)


@pytest.mark.parametrize("name", HYBRID)
def test_the_task_roles_read_only_the_db_secret_of_the_memory_stack(
    synth: Synthesized, name: str
) -> None:
    container = synth.template(name, "container")
    task_roles = {
        task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
        for task in of_type(container, "AWS::ECS::TaskDefinition")
    }
    memory_reads: dict[str, list[Any]] = {role: [] for role in task_roles}
    for policy in of_type(container, "AWS::IAM::Policy"):
        roles = {r["Ref"] for r in policy["Properties"]["Roles"]}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "secretsmanager:GetSecretValue" not in as_list(statement["Action"]):
                continue
            memory_secrets = [
                resource
                for resource in as_list(statement["Resource"])
                if f'"{name}-memory"' in json.dumps(resource)
            ]
            # Only task roles read anything of the memory stack (no execution role: no injection).
            assert not memory_secrets or roles <= task_roles, roles
            for role in roles & task_roles:
                memory_reads[role].extend(memory_secrets)
    for role, resources in memory_reads.items():
        [resource] = resources  # exactly one secret of the memory stack: the credentials
        assert "CredentialsAttachment" in resource["Fn::GetStackOutput"]["OutputName"], role
    for task in of_type(container, "AWS::ECS::TaskDefinition"):
        [definition] = task["Properties"]["ContainerDefinitions"]
        environment = {e["Name"]: e["Value"] for e in definition["Environment"]}
        assert environment["MEMORY_DATABASE_SECRET_ARN"] == resource
        assert "MEMORY_DATABASE_PASSWORD" not in environment
        assert "MEMORY_DATABASE_PASSWORD" not in {s["Name"] for s in definition.get("Secrets", [])}


# --- the memory stack on its own: rotation off, the NAT-less network ----------------------------


def _synth_memory(config: DeploymentConfig, **memory_kwargs: Any) -> dict[str, Any]:
    app = App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    env = Environment(account="123456789012", region="eu-west-1")
    network = NetworkStack(app, "network", config=config, env=env).network
    stack = MemoryStack(
        app,
        "memory",
        config=config,
        vpc=network.vpc,
        subnets=network.data_subnets,
        env=env,
        **{"rotation_subnets": network.app_subnets, "endpoints": network, **memory_kwargs},
    )
    template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


def test_rotation_off_leaves_no_schedule_and_no_transform() -> None:
    template = _synth_memory(_with_rotation(CONFIGS[HYBRID[0]], None))
    assert ids_of_type(template, "AWS::SecretsManager::RotationSchedule") == []
    assert HOSTED_ROTATION_TRANSFORM not in as_list(template.get("Transform", []))


def test_rotation_needs_subnets_for_its_function() -> None:
    with pytest.raises(ValueError, match=r"credentials_rotation_days is set.*rotation_subnets"):
        _synth_memory(CONFIGS[HYBRID[0]], rotation_subnets=None)


def test_without_a_nat_gateway_the_function_calls_the_secrets_manager_endpoint() -> None:
    base = CONFIGS[HYBRID[0]]
    config = base.model_copy(
        update={"container": base.container.model_copy(update={"nat_gateways": 0})}
    )
    template = _synth_memory(config)
    _, schedule = _schedule(template)
    rotation_group = _group_of(schedule["HostedRotationLambda"]["VpcSecurityGroupIds"])
    to_endpoints = [
        r["Properties"]
        for r in of_type(template, "AWS::EC2::SecurityGroupEgress")
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [rotation_group, "GroupId"]}
        and "EndpointSecurityGroup" in json.dumps(r["Properties"]["DestinationSecurityGroupId"])
    ]
    assert [(r["FromPort"], r["ToPort"]) for r in to_endpoints] == [(443, 443)]
