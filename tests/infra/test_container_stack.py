"""What matters in the container stack for security and reliability, asserted directly.

Network (AZs, NAT or endpoints, flow logs, who reaches the cache), the load balancer (HTTPS,
idle timeout against the heartbeat, access logs), deployments (circuit breaker, 100% healthy,
stop timeout against the drain), the hardened task definitions, scaling, each role's grants,
removal policies, and the environment contract: every container's environment, as synthesized,
must validate with the runtime's own settings models.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk.region_info import RegionInfo

from config.model import FARGATE_MAX_STOP_TIMEOUT_SECONDS
from constructs.agent_vpc import AgentVpc, AgentVpcProps
from constructs.container_task import ContainerTask, ContainerTaskProps
from constructs.secure_defaults import (
    CONTAINER_PORT,
    SERVICE_COMMAND,
    TARGET_HEALTH_CHECK_PATH,
    VPC_CIDR,
    WORKER_COMMAND,
)
from runtime.settings import RuntimeSettings
from runtime.tasks.settings import TaskSettings
from stacks.container_agent_stack import ContainerAgentStack
from tests.infra.cfn import as_list, ids_of_type, of_type, one, refers_to
from tests.infra.conftest import Synthesized, all_configs

CONFIGS = {c.name: c for c in all_configs()}
# The configs that build the container stack (dev leaves it off: container.enabled false).
NAMES = sorted(name for name, config in CONFIGS.items() if config.container.enabled)
# The environment variable names that would mean a secret in plain text.
_SECRET_NAMES = re.compile(r"PASSWORD|TOKEN|API_KEY$|SECRET(?!_ARN$)")


@dataclass(frozen=True)
class Layout:
    """Logical ids of the container stack's parts, found from how they are wired."""

    template: dict[str, Any]
    service: str  # the ECS service behind the load balancer
    worker: str  # the ECS service without one
    service_task: str
    worker_task: str
    service_group: str  # the security group of each service's tasks
    worker_group: str
    cache: str  # the replication group
    cache_group: str
    load_balancer: str
    balancer_group: str

    def props(self, logical_id: str) -> dict[str, Any]:
        props: dict[str, Any] = self.template["Resources"][logical_id]["Properties"]
        return props

    def container(self, task: str) -> dict[str, Any]:
        [container] = self.props(task)["ContainerDefinitions"]
        return container  # type: ignore[no-any-return]

    def role_of(self, task: str, kind: str) -> str:
        role: str = self.props(task)[kind]["Fn::GetAtt"][0]
        return role

    def statements(self, role: str) -> list[dict[str, Any]]:
        return [
            statement
            for policy in of_type(self.template, "AWS::IAM::Policy")
            if refers_to(policy["Properties"]["Roles"], role)
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]

    def ingress_to(self, group: str) -> list[dict[str, Any]]:
        """Every ingress rule of ``group``: inline ones and separate resources."""
        inline = self.props(group).get("SecurityGroupIngress", [])
        separate = [
            rule["Properties"]
            for rule in of_type(self.template, "AWS::EC2::SecurityGroupIngress")
            if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
        ]
        return [*inline, *separate]


def _group_of(template: dict[str, Any], service_id: str) -> str:
    network = template["Resources"][service_id]["Properties"]["NetworkConfiguration"]
    [group] = network["AwsvpcConfiguration"]["SecurityGroups"]
    return str(group["Fn::GetAtt"][0])


def layout(synth: Synthesized, name: str) -> Layout:
    template = synth.template(name, "container")
    resources = template["Resources"]
    services = ids_of_type(template, "AWS::ECS::Service")
    [service] = [s for s in services if resources[s]["Properties"]["LoadBalancers"]]
    [worker] = [s for s in services if s != service]
    [load_balancer] = ids_of_type(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    [cache] = ids_of_type(template, "AWS::ElastiCache::ReplicationGroup")
    [cache_group] = resources[cache]["Properties"]["SecurityGroupIds"]
    [balancer_group] = resources[load_balancer]["Properties"]["SecurityGroups"]
    return Layout(
        template=template,
        service=service,
        worker=worker,
        service_task=resources[service]["Properties"]["TaskDefinition"]["Ref"],
        worker_task=resources[worker]["Properties"]["TaskDefinition"]["Ref"],
        service_group=_group_of(template, service),
        worker_group=_group_of(template, worker),
        cache=cache,
        cache_group=cache_group["Fn::GetAtt"][0],
        load_balancer=load_balancer,
        balancer_group=balancer_group["Fn::GetAtt"][0],
    )


@pytest.fixture(scope="module")
def layouts(synth: Synthesized) -> dict[str, Layout]:
    return {name: layout(synth, name) for name in NAMES}


def _environment(container: dict[str, Any]) -> dict[str, Any]:
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def _plain(value: Any) -> str:
    """A CloudFormation value as a string: joins joined, any other token a placeholder."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_plain(part) for part in parts)
    return "placeholder"


def _network(synth: Synthesized, name: str) -> dict[str, Any]:
    """The template with the VPC: the hybrid architecture's network stack, else the container's."""
    return synth.template(name, "network" if CONFIGS[name].hybrid else "container")


def _in_tier(subnet: Any, tier: str) -> bool:
    """A subnet reference (a Ref here, or the network stack's output) to the ``tier`` subnets."""
    return f"Vpc{tier}Subnet" in json.dumps(subnet)


def _subnets(template: dict[str, Any], tier: str) -> list[str]:
    return [s for s in ids_of_type(template, "AWS::EC2::Subnet") if f"Vpc{tier}Subnet" in s]


def _default_routes(template: dict[str, Any], tier: str) -> list[dict[str, Any]]:
    return [
        route["Properties"]
        for route in of_type(template, "AWS::EC2::Route")
        if f"Vpc{tier}Subnet" in route["Properties"]["RouteTableId"]["Ref"]
        and route["Properties"].get("DestinationCidrBlock") == "0.0.0.0/0"
    ]


# --- network ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_vpc_spans_the_configured_azs_without_lookups(synth: Synthesized, name: str) -> None:
    template = _network(synth, name)
    container = CONFIGS[name].container
    assert container.max_azs >= 2
    for tier in ("public", "app", "data"):
        subnets = _subnets(template, tier)
        assert len(subnets) == container.max_azs, tier
        zones = [template["Resources"][s]["Properties"]["AvailabilityZone"] for s in subnets]
        # Chosen at deploy time from the region's AZs: no account lookup at synth.
        assert zones == [
            {"Fn::Select": [index, {"Fn::GetAZs": ""}]} for index in range(container.max_azs)
        ]
    assert one(template, "AWS::EC2::VPC")["Properties"]["CidrBlock"] == VPC_CIDR


@pytest.mark.parametrize("name", NAMES)
def test_flow_logs_capture_all_traffic_to_an_encrypted_group(synth: Synthesized, name: str) -> None:
    template = _network(synth, name)
    flow_log = one(template, "AWS::EC2::FlowLog")["Properties"]
    [vpc] = ids_of_type(template, "AWS::EC2::VPC")
    assert flow_log["ResourceId"] == {"Ref": vpc}
    assert flow_log["ResourceType"] == "VPC"
    assert flow_log["TrafficType"] == "ALL"
    assert flow_log["LogDestinationType"] == "cloud-watch-logs"
    group = template["Resources"][flow_log["LogGroupName"]["Ref"]]["Properties"]
    assert group["RetentionInDays"] == CONFIGS[name].logs.retention_days
    assert "KmsKeyId" in group
    role = template["Resources"][flow_log["DeliverLogsPermissionArn"]["Fn::GetAtt"][0]]
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert "aws:SourceAccount" in json.dumps(trust["Condition"])


def _endpoints(template: dict[str, Any], kind: str) -> set[str]:
    """The AWS services (``sqs``, ``ecr.api``) of the VPC endpoints of ``kind``.

    A Join over ``AWS::Region``, or a plain string when the stack has a region (config dr).
    """
    names = [
        e["Properties"]["ServiceName"]
        for e in of_type(template, "AWS::EC2::VPCEndpoint")
        if e["Properties"]["VpcEndpointType"] == kind
    ]
    return {
        str(n["Fn::Join"][1][-1]).lstrip(".")
        if isinstance(n, dict)
        else re.sub(r"^com\.amazonaws\.[a-z0-9-]+\.", "", n)
        for n in names
    }


@pytest.mark.parametrize("name", NAMES)
def test_nat_gateways_and_endpoints_follow_the_config(synth: Synthesized, name: str) -> None:
    template = _network(synth, name)
    config = CONFIGS[name]
    nat = config.container.nat_gateways
    assert len(of_type(template, "AWS::EC2::NatGateway")) == nat
    # Free gateway endpoints always: DynamoDB, and S3 for ECR's image layers.
    assert _endpoints(template, "Gateway") == {"dynamodb", "s3"}
    if nat == 0:
        # No route out of the app tier: everything the tasks (and Fargate for them) call.
        expected = {"ecr.api", "ecr.dkr", "logs", "secretsmanager", "sqs"}
        if config.llm.provider == "bedrock":
            expected.add("bedrock-runtime")
        assert _endpoints(template, "Interface") == expected
        assert _default_routes(template, "app") == []
        for endpoint in of_type(template, "AWS::EC2::VPCEndpoint"):
            if endpoint["Properties"]["VpcEndpointType"] == "Interface":
                assert endpoint["Properties"]["PrivateDnsEnabled"] is True
    else:
        # Interface endpoints cost per AZ-hour; with a NAT gateway the tasks do without.
        assert _endpoints(template, "Interface") == set()
        routes = _default_routes(template, "app")
        assert len(routes) == config.container.max_azs
        assert all("NatGatewayId" in route for route in routes)
    # The cache's subnets never route out, whatever the NAT setting.
    assert _default_routes(template, "data") == []


def test_the_variant_runs_without_nat_through_endpoints(synth: Synthesized) -> None:
    config = CONFIGS["agent-variant"]
    assert config.container.nat_gateways == 0 and config.llm.provider == "bedrock"
    template = synth.template("agent-variant", "container")
    assert "bedrock-runtime" in _endpoints(template, "Interface")
    # Only the task groups reach the endpoints, on HTTPS.
    [group] = {
        json.dumps(e["Properties"]["SecurityGroupIds"])
        for e in of_type(template, "AWS::EC2::VPCEndpoint")
        if e["Properties"]["VpcEndpointType"] == "Interface"
    }
    group_id = json.loads(group)[0]["Fn::GetAtt"][0]
    rules = [
        r["Properties"]
        for r in of_type(template, "AWS::EC2::SecurityGroupIngress")
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    assert len(rules) == 2
    assert all(r["FromPort"] == 443 and "SourceSecurityGroupId" in r for r in rules)


# --- cluster, load balancer, deployments ----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_cluster_has_container_insights(synth: Synthesized, name: str) -> None:
    cluster = one(synth.template(name, "container"), "AWS::ECS::Cluster")["Properties"]
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]


@pytest.mark.parametrize("name", NAMES)
def test_deployments_roll_back_and_keep_full_capacity(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    for service in (lay.service, lay.worker):
        props = lay.props(service)
        deployment = props["DeploymentConfiguration"]
        assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert deployment["MinimumHealthyPercent"] == 100
        assert deployment["MaximumPercent"] == 200
        assert props["LaunchType"] == "FARGATE"
        assert props["EnableExecuteCommand"] is False
        assert props["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
        # Autoscaling owns the count: a deploy never resets a scaled-out service.
        assert "DesiredCount" not in props
        subnets = props["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]
        assert all(_in_tier(subnet, "app") for subnet in subnets)


@pytest.mark.parametrize("name", NAMES)
def test_load_balancer_idle_timeout_exceeds_the_heartbeat(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    container = CONFIGS[name].container
    props = lay.props(lay.load_balancer)
    attributes = {a["Key"]: a["Value"] for a in props["LoadBalancerAttributes"]}
    idle = int(attributes["idle_timeout.timeout_seconds"])
    assert idle == container.alb_idle_timeout_seconds
    assert idle > container.ws_heartbeat_seconds
    heartbeat = _environment(lay.container(lay.service_task))["SERVICE_WS_HEARTBEAT_SECONDS"]
    assert idle > int(heartbeat)
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert (
        attributes["deletion_protection.enabled"]
        == str(CONFIGS[name].removal_policy == "retain").lower()
    )
    assert props["Scheme"] == "internet-facing"
    assert all(_in_tier(subnet, "public") for subnet in props["Subnets"])


@pytest.mark.parametrize("name", NAMES)
def test_access_logs_go_to_an_encrypted_tls_only_bucket(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    template = lay.template
    attributes = {
        a["Key"]: a["Value"] for a in lay.props(lay.load_balancer)["LoadBalancerAttributes"]
    }
    assert attributes["access_logs.s3.enabled"] == "true"
    bucket_id = attributes["access_logs.s3.bucket"]["Ref"]
    bucket = template["Resources"][bucket_id]
    props = bucket["Properties"]
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"  # ALB's only option
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    [lifecycle] = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["ExpirationInDays"] == CONFIGS[name].logs.retention_days
    # Audit evidence: kept even when the stack goes; it empties itself by the lifecycle rule.
    assert bucket["DeletionPolicy"] == "Retain"
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in of_type(template, "AWS::S3::BucketPolicy")
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert {
        "Action": "s3:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": [{"Fn::GetAtt": [bucket_id, "Arn"]}, {"Fn::Join": ["", [
            {"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]}],
    } in policy  # fmt: skip
    writers = [s for s in policy if s["Effect"] == "Allow"]
    assert {s["Action"] for s in writers} == {"s3:PutObject"}
    assert "/alb/AWSLogs/" in json.dumps(writers)
    principals = json.dumps([s["Principal"] for s in writers])
    assert "logdelivery.elasticloadbalancing.amazonaws.com" in principals
    # The region's Elastic Load Balancing account: looked up at deploy time, or named at synth
    # when the stack has a region (config dr).
    dr = CONFIGS[name].dr
    if dr is None:
        assert "Fn::FindInMap" in principals
    else:
        elb_account = RegionInfo.get(dr.primary_region).elbv2_account
        assert f"arn:aws:iam::{elb_account}:root" in principals
    # The bucket policy exists before the load balancer tries to write.
    policy_id = next(
        k
        for k in ids_of_type(template, "AWS::S3::BucketPolicy")
        if template["Resources"][k]["Properties"]["Bucket"] == {"Ref": bucket_id}
    )
    assert policy_id in template["Resources"][lay.load_balancer]["DependsOn"]


@pytest.mark.parametrize("name", NAMES)
def test_https_with_a_certificate_and_http_redirects_to_it(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    container = CONFIGS[name].container
    listeners = {
        props["Port"]: props
        for props in (
            listener["Properties"]
            for listener in of_type(lay.template, "AWS::ElasticLoadBalancingV2::Listener")
        )
    }
    if container.certificate_arn is not None:
        assert set(listeners) == {80, 443}
        https = listeners[443]
        assert https["Protocol"] == "HTTPS"
        assert https["Certificates"] == [{"CertificateArn": container.certificate_arn}]
        assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-2")
        assert https["DefaultActions"][0]["Type"] == "forward"
        [redirect] = listeners[80]["DefaultActions"]
        assert redirect["Type"] == "redirect"
        assert redirect["RedirectConfig"] == {
            "Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301",
        }  # fmt: skip
        ports = {80, 443}
    else:
        assert set(listeners) == {80}
        assert listeners[80]["Protocol"] == "HTTP"
        ports = {80}
    # Exactly the configured clients, exactly on the listener ports.
    rules = lay.ingress_to(lay.balancer_group)
    assert {(r["CidrIp"], r["FromPort"]) for r in rules} == {
        (cidr, port) for cidr in container.ingress_cidrs for port in ports
    }
    assert CONFIGS["agent-variant"].container.certificate_arn is not None


@pytest.mark.parametrize("name", NAMES)
def test_target_group_checks_healthz_and_drains_within_the_drain_time(
    synth: Synthesized, name: str
) -> None:
    container = CONFIGS[name].container
    target_groups = of_type(
        synth.template(name, "container"), "AWS::ElasticLoadBalancingV2::TargetGroup"
    )
    # Blue/green (releases.ecs_deployment) deploys into a second, identical group.
    blue_green = CONFIGS[name].releases.ecs_deployment == "blue_green"
    assert len(target_groups) == (2 if blue_green else 1)
    for target_group in (group["Properties"] for group in target_groups):
        assert target_group["HealthCheckPath"] == TARGET_HEALTH_CHECK_PATH == "/healthz"
        assert target_group["Port"] == CONTAINER_PORT
        assert target_group["TargetType"] == "ip"
        attributes = {a["Key"]: a["Value"] for a in target_group["TargetGroupAttributes"]}
        delay = int(attributes["deregistration_delay.timeout_seconds"])
        assert delay <= container.drain_seconds
        assert delay == container.drain_seconds


@pytest.mark.parametrize("name", NAMES)
def test_stop_timeout_covers_the_drain(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    container = CONFIGS[name].container
    for task in (lay.service_task, lay.worker_task):
        definition = lay.container(task)
        stop = definition["StopTimeout"]
        assert container.drain_seconds < stop <= FARGATE_MAX_STOP_TIMEOUT_SECONDS
        environment = _environment(definition)
        drain = environment.get("SERVICE_DRAIN_SECONDS") or environment["WORKER_DRAIN_SECONDS"]
        assert int(drain) < stop
    service_env = _environment(lay.container(lay.service_task))
    assert (
        int(service_env["SERVICE_STOP_TIMEOUT_SECONDS"])
        == lay.container(lay.service_task)["StopTimeout"]
    )


# --- task definitions ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_task_definitions_are_hardened(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    config = CONFIGS[name]
    commands = {lay.service_task: list(SERVICE_COMMAND), lay.worker_task: list(WORKER_COMMAND)}
    for task, command in commands.items():
        props = lay.props(task)
        definition = lay.container(task)
        assert definition["Command"] == command
        assert definition["ReadonlyRootFilesystem"] is True
        [volume] = props["Volumes"]
        assert "Host" not in volume and "EFSVolumeConfiguration" not in volume
        assert definition["MountPoints"] == [
            {"ContainerPath": "/tmp", "ReadOnly": False, "SourceVolume": volume["Name"]}
        ]
        # A numeric, non-root user, whatever the image says.
        assert definition["User"].isdigit() and int(definition["User"]) >= 10_000
        assert definition["LinuxParameters"] == {
            "Capabilities": {"Drop": ["ALL"]}, "InitProcessEnabled": True,
        }  # fmt: skip
        assert "Privileged" not in definition
        logging = definition["LogConfiguration"]
        assert logging["LogDriver"] == "awslogs"
        assert logging["Options"]["mode"] == "non-blocking"
        group = lay.template["Resources"][logging["Options"]["awslogs-group"]["Ref"]]
        assert group["Properties"]["RetentionInDays"] == config.logs.retention_days
        assert "KmsKeyId" in group["Properties"]
        architecture = {"arm64": "ARM64", "x86_64": "X86_64"}[config.container.architecture]
        assert props["RuntimePlatform"] == {
            "CpuArchitecture": architecture, "OperatingSystemFamily": "LINUX",
        }  # fmt: skip
        assert props["NetworkMode"] == "awsvpc"
    service = lay.container(lay.service_task)
    assert service["PortMappings"] == [{"ContainerPort": CONTAINER_PORT, "Protocol": "tcp"}]
    assert service["HealthCheck"]["Command"] == [
        "CMD", "python", "-m", "runtime.service", "healthcheck",
    ]  # fmt: skip
    assert "PortMappings" not in lay.container(lay.worker_task)
    sizes = {
        lay.service_task: config.container.service,
        lay.worker_task: config.container.worker,
    }
    for task, size in sizes.items():
        assert lay.props(task)["Cpu"] == str(size.cpu)
        assert lay.props(task)["Memory"] == str(size.memory_mib)


@pytest.mark.parametrize("name", NAMES)
def test_secrets_arrive_as_ecs_secrets_never_in_the_environment(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    config = CONFIGS[name]
    text = json.dumps(lay.template)
    assert '"SecretString"' not in text
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", text)
    secret_ids = ids_of_type(lay.template, "AWS::SecretsManager::Secret")
    [auth_secret] = [i for i in secret_ids if i.startswith("SessionCacheAuthToken")]
    [service_token] = [i for i in secret_ids if i.startswith("ServiceAuthToken")]
    generated = lay.props(auth_secret)["GenerateSecretString"]
    assert generated == {"ExcludePunctuation": True, "PasswordLength": 64}
    assert lay.props(service_token)["GenerateSecretString"] == {
        "ExcludePunctuation": True,
        "PasswordLength": 48,
    }
    for secret in (auth_secret, service_token):
        assert "KmsKeyId" in lay.props(secret)
    for task in (lay.service_task, lay.worker_task):
        definition = lay.container(task)
        assert not [n for n in _environment(definition) if _SECRET_NAMES.search(n)], task
        secrets = {s["Name"]: s["ValueFrom"] for s in definition.get("Secrets", [])}
        assert "LLM_API_KEY" not in secrets
        if config.llm.api_key_secret_name is not None:
            # The serverless stack's secret, read by its complete ARN at run time through the
            # runtime's cache (not injected at start): a rotated key reaches running tasks.
            owner = _environment(definition)["LLM_API_KEY_SECRET_ARN"]["Fn::GetStackOutput"]
            assert owner["StackName"] == f"{name}-serverless"
        if task == lay.service_task:
            assert secrets.pop("REDIS_PASSWORD") == {"Ref": auth_secret}
            # Every request but the probes needs this token (runtime/service/auth.py).
            assert secrets.pop("SERVICE_AUTH_TOKEN") == {"Ref": service_token}
        if config.hybrid is not None:
            # The memory stack's generated credentials, read by their complete ARN at run time
            # (never injected at start): the hosted rotation's new password reaches running tasks.
            owner = _environment(definition)["MEMORY_DATABASE_SECRET_ARN"]["Fn::GetStackOutput"]
            assert owner["StackName"] == f"{name}-memory"
            assert "MEMORY_DATABASE_PASSWORD" not in secrets
        assert secrets == {}
    # The replication group reads the token through a dynamic reference at deploy time.
    token = json.dumps(lay.props(lay.cache)["AuthToken"])
    assert "{{resolve:secretsmanager:" in token and auth_secret in token


@pytest.mark.parametrize(
    "name", [n for n in NAMES if CONFIGS[n].llm.api_key_secret_name is not None]
)
def test_only_the_task_roles_read_the_llm_key_and_only_that_secret(
    layouts: dict[str, Layout], name: str
) -> None:
    # The runtime reads the key itself (rotation reaches running tasks), so the task role, not
    # the execution role, gets GetSecretValue on it and Decrypt through Secrets Manager only.
    lay = layouts[name]
    for task in (lay.service_task, lay.worker_task):
        arn = _environment(lay.container(task))["LLM_API_KEY_SECRET_ARN"]
        task_role = lay.statements(lay.role_of(task, "TaskRoleArn"))
        execution_role = lay.statements(lay.role_of(task, "ExecutionRoleArn"))
        reads = [
            resource
            for s in task_role
            if "secretsmanager:GetSecretValue" in as_list(s["Action"])
            for resource in as_list(s["Resource"])
        ]
        assert [resource for resource in reads if resource == arn] == [arn], task
        decrypt = [s for s in task_role if as_list(s["Action"]) == ["kms:Decrypt"]]
        assert any(
            s["Condition"]["StringEquals"]["kms:EncryptionContext:SecretARN"] == arn
            for s in decrypt
        ), task
        assert not [s for s in execution_role if s.get("Resource") == arn], task


# --- the session cache ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_cache_is_encrypted_authenticated_and_private(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    redis = CONFIGS[name].container.redis
    props = lay.props(lay.cache)
    assert props["Engine"] == redis.engine
    assert props["TransitEncryptionEnabled"] is True
    assert props["TransitEncryptionMode"] == "required"
    assert props["AtRestEncryptionEnabled"] is True
    [key] = ids_of_type(lay.template, "AWS::KMS::Key")
    assert props["KmsKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
    assert props["CacheNodeType"] == redis.node_type
    assert props["NumCacheClusters"] == 1 + redis.num_replicas
    replicated = redis.num_replicas > 0
    assert props["MultiAZEnabled"] is replicated
    assert props["AutomaticFailoverEnabled"] is replicated
    assert props["SnapshotRetentionLimit"] == redis.snapshot_retention_days
    subnet_group = lay.template["Resources"][props["CacheSubnetGroupName"]["Ref"]]["Properties"]
    assert all(_in_tier(subnet, "data") for subnet in subnet_group["SubnetIds"])


@pytest.mark.parametrize("name", NAMES)
def test_cache_is_reachable_only_from_the_service_group(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    rules = lay.ingress_to(lay.cache_group)
    assert rules, "the service must reach its session store"
    for rule in rules:
        assert rule["SourceSecurityGroupId"] == {"Fn::GetAtt": [lay.service_group, "GroupId"]}
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 6379, 6379)
        assert "CidrIp" not in rule and "CidrIpv6" not in rule
    # Not the worker, not the load balancer, not an address range.
    assert lay.worker_group not in json.dumps(rules)
    assert lay.balancer_group not in json.dumps(rules)
    # The cache opens no connections of its own.
    [egress] = lay.props(lay.cache_group)["SecurityGroupEgress"]
    assert egress["CidrIp"] == "255.255.255.255/32"


@pytest.mark.parametrize("name", NAMES)
def test_tasks_take_traffic_only_from_the_load_balancer(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    [rule] = lay.ingress_to(lay.service_group)
    assert rule["SourceSecurityGroupId"] == {"Fn::GetAtt": [lay.balancer_group, "GroupId"]}
    assert rule["FromPort"] == rule["ToPort"] == CONTAINER_PORT
    assert lay.ingress_to(lay.worker_group) == []
    for group in (lay.service_group, lay.worker_group):
        # HTTPS out only (AWS APIs and the model); no "allow all" egress.
        egress = lay.props(group)["SecurityGroupEgress"]
        assert [(e["IpProtocol"], e["FromPort"]) for e in egress] == [("tcp", 443)]


# --- scaling ------------------------------------------------------------------------------------


def _policies(template: dict[str, Any], target: str) -> list[dict[str, Any]]:
    return [
        p["Properties"]
        for p in of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
        if p["Properties"].get("ScalingTargetId") == {"Ref": target}
    ]


def _scalable_target(lay: Layout, service_id: str) -> tuple[str, dict[str, Any]]:
    """The ECS service's one scalable target: its logical id and properties."""
    [target_id] = [
        t
        for t in ids_of_type(lay.template, "AWS::ApplicationAutoScaling::ScalableTarget")
        if refers_to(lay.props(t)["ResourceId"], service_id)
    ]
    return target_id, lay.props(target_id)


@pytest.mark.parametrize("name", NAMES)
def test_service_scales_on_cpu_memory_requests_and_schedule(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    service = CONFIGS[name].container.service
    target_id, target = _scalable_target(lay, lay.service)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (
        service.min_capacity,
        service.max_capacity,
    )
    tracked = {}
    for policy in _policies(lay.template, target_id):
        configuration = policy["TargetTrackingScalingPolicyConfiguration"]
        if "PredefinedMetricSpecification" in configuration:
            metric = configuration["PredefinedMetricSpecification"]["PredefinedMetricType"]
        else:
            # Blue/green: the same requests per target, summed over both target groups (metric
            # math; tests/infra/test_releases.py checks the expression).
            assert "RequestCountPerTarget" in str(configuration["CustomizedMetricSpecification"])
            metric = "ALBRequestCountPerTarget"
        tracked[metric] = configuration["TargetValue"]
    assert tracked == {
        "ECSServiceAverageCPUUtilization": service.cpu_target_percent,
        "ECSServiceAverageMemoryUtilization": service.memory_target_percent,
        "ALBRequestCountPerTarget": service.requests_per_target,
    }
    scheduled = [
        (a["ScheduledActionName"], a["Schedule"], a["Timezone"],
         a["ScalableTargetAction"]["MinCapacity"], a["ScalableTargetAction"]["MaxCapacity"])
        for a in target.get("ScheduledActions", [])
    ]  # fmt: skip
    assert scheduled == [
        (w.name, w.cron, w.timezone, w.min_capacity, w.max_capacity)
        for w in service.scheduled_scaling
    ]
    assert CONFIGS["agent-variant"].container.service.scheduled_scaling


@pytest.mark.parametrize("name", NAMES)
def test_worker_scales_on_backlog_per_task_and_starts_from_zero(
    layouts: dict[str, Layout], name: str
) -> None:
    lay = layouts[name]
    worker = CONFIGS[name].container.worker
    target_id, target = _scalable_target(lay, lay.worker)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (
        worker.min_capacity,
        worker.max_capacity,
    )
    policies = {p["PolicyType"]: p for p in _policies(lay.template, target_id)}
    assert set(policies) == {"TargetTrackingScaling", "StepScaling"}
    tracking = policies["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == worker.backlog_per_task
    queries = {q["Id"]: q for q in tracking["CustomizedMetricSpecification"]["Metrics"]}
    assert queries["backlog_per_task"]["Expression"] == "backlog / running"
    assert queries["backlog_per_task"]["ReturnData"] is True
    backlog = queries["backlog"]["MetricStat"]["Metric"]
    assert (backlog["Namespace"], backlog["MetricName"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible",
    )  # fmt: skip
    # The async stack's task queue, by name.
    assert "Fn::GetStackOutput" in json.dumps(backlog["Dimensions"])
    running = queries["running"]["MetricStat"]["Metric"]
    assert (running["Namespace"], running["MetricName"]) == (
        "ECS/ContainerInsights", "RunningTaskCount",
    )  # fmt: skip
    assert refers_to(running["Dimensions"], lay.worker)
    step = policies["StepScaling"]["StepScalingPolicyConfiguration"]
    assert step["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    [alarm] = [
        a["Properties"]
        for a in of_type(lay.template, "AWS::CloudWatch::Alarm")
        if "IF(FILL(running, 0) == 0, backlog, 0)" in json.dumps(a["Properties"])
    ]
    assert alarm["Threshold"] == 1
    assert len(alarm["AlarmActions"]) == 1


# --- roles ----------------------------------------------------------------------------------------


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for s in statements for action in as_list(s["Action"])}


@pytest.mark.parametrize("name", NAMES)
def test_each_role_gets_only_what_it_uses(layouts: dict[str, Layout], name: str) -> None:
    lay = layouts[name]
    config = CONFIGS[name]
    bedrock = {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"}
    uses_bedrock = config.llm.provider == "bedrock"
    # The memory's embedding model, when Bedrock embeds (test_hybrid_stack.py checks which one).
    embeds = (
        {"bedrock:InvokeModel"}
        if config.hybrid is not None and config.hybrid.memory.embedder == "bedrock"
        else set()
    )
    for statement in (
        s for policy in of_type(lay.template, "AWS::IAM::Policy")
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ):  # fmt: skip
        actions = as_list(statement["Action"])
        assert not any(a == "*" or a.endswith(":*") for a in actions), actions
        if as_list(statement["Resource"]) == ["*"]:
            # ECR's token, and blue/green's load balancer reads (releases.ecs_deployment): the
            # only actions here without resource-level permissions.
            assert actions == ["ecr:GetAuthorizationToken"] or all(
                a.startswith("elasticloadbalancing:Describe") for a in actions
            ), actions

    # The LLM key and the memory database's credentials, read by the runtime itself (rotation
    # reaches running tasks): the secrets a task role reads
    # (test_only_the_task_roles_read_the_llm_key_and_only_that_secret, test_db_rotation.py).
    reads_secrets = (
        {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "kms:Decrypt"}
        if config.llm.api_key_secret_name or config.hybrid is not None
        else set()
    )
    # The service: the model and its key, nothing else; sessions are in Redis, the rest injected.
    service = lay.statements(lay.role_of(lay.service_task, "TaskRoleArn"))
    assert _actions(service) == (bedrock if uses_bedrock else set()) | embeds | reads_secrets

    worker = lay.statements(lay.role_of(lay.worker_task, "TaskRoleArn"))
    worker_actions = _actions(worker)
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= worker_actions
    assert {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
        "sqs:SendMessage", "ecs:UpdateTaskProtection",
    } <= worker_actions  # fmt: skip
    assert not {a for a in worker_actions if a.startswith(("iam:", "s3:"))}
    assert {a for a in worker_actions if a.startswith("secretsmanager:")} == {
        a for a in reads_secrets if a.startswith("secretsmanager:")
    }
    assert (worker_actions & bedrock) == (bedrock if uses_bedrock else set()) | embeds
    [protection] = [s for s in worker if s["Action"] == "ecs:UpdateTaskProtection"]
    [cluster] = ids_of_type(lay.template, "AWS::ECS::Cluster")
    assert json.dumps(protection["Resource"]).endswith(
        f'":task/", {{"Ref": "{cluster}"}}, "/*"]]}}'
    )
    # Sends go to the callback queue, receives come from the task queue, never the reverse.
    sends = [s for s in worker if "sqs:SendMessage" in as_list(s["Action"])]
    receives = [s for s in worker if "sqs:ReceiveMessage" in as_list(s["Action"])]
    assert len(sends) == len(receives) == 1
    assert "CallbackQueue" in json.dumps(sends) and "TaskQueue" not in json.dumps(sends)
    assert "TaskQueue" in json.dumps(receives)

    # Execution roles: image pull, their own logs, their own secrets.
    for task in (lay.service_task, lay.worker_task):
        execution = lay.statements(lay.role_of(task, "ExecutionRoleArn"))
        secrets = [
            json.dumps(resource)
            for s in execution
            if "secretsmanager:GetSecretValue" in s["Action"]
            for resource in as_list(s["Resource"])
        ]
        # Not the memory database's credentials: the task role reads those (they rotate).
        expected = [
            *(["SessionCacheAuthToken", "ServiceAuthToken"] if task == lay.service_task else []),
        ]
        assert len(secrets) == len(expected), task
        assert all(any(e in s for s in secrets) for e in expected), secrets
        assert _actions(execution) - {
            "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage", "logs:CreateLogStream",
            "logs:PutLogEvents", "secretsmanager:GetSecretValue",
            "secretsmanager:DescribeSecret", "kms:Decrypt",
        } == set()  # fmt: skip
        for statement in execution:
            if statement["Action"] == "kms:Decrypt" and "Condition" in statement:
                conditions = json.dumps(statement["Condition"])
                assert "kms:ViaService" in conditions
                # A wildcard key needs the secret's ARN; the memory's key is named exactly.
                if "key/*" in json.dumps(statement["Resource"]):
                    assert "SecretARN" in conditions


# --- state, outputs, dependencies -----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_stateful_resources_follow_the_removal_policy(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "container")
    retain = CONFIGS[name].removal_policy == "retain"
    expected = "Retain" if retain else "Delete"
    for resource_type in ("AWS::KMS::Key", "AWS::Logs::LogGroup", "AWS::SecretsManager::Secret"):
        resources = of_type(template, resource_type)
        assert resources, resource_type
        for resource in resources:
            assert resource["DeletionPolicy"] == expected, resource_type
            assert resource["UpdateReplacePolicy"] == expected, resource_type
    # The cache keeps a final snapshot instead of running nodes nobody uses.
    cache = one(template, "AWS::ElastiCache::ReplicationGroup")
    assert cache["DeletionPolicy"] == ("Snapshot" if retain else "Delete")
    assert cache["UpdateReplacePolicy"] == ("Snapshot" if retain else "Delete")
    for bucket in of_type(template, "AWS::S3::Bucket"):
        assert bucket["DeletionPolicy"] == "Retain"


def test_prod_snapshots_its_cache_and_dev_does_not(synth: Synthesized) -> None:
    def policy(name: str) -> str:
        cache = one(synth.template(name, "container"), "AWS::ElastiCache::ReplicationGroup")
        return str(cache["DeletionPolicy"])

    assert (policy("agent-prod"), policy("agent-hybrid")) == ("Snapshot", "Delete")


def test_the_container_stack_depends_on_the_stacks_it_reads(synth: Synthesized) -> None:
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    for name in NAMES:
        config = CONFIGS[name]
        dependencies = manifest["artifacts"][f"{name}-container"].get("dependencies", [])
        assert f"{name}-async" in dependencies
        assert (f"{name}-serverless" in dependencies) is (
            config.llm.api_key_secret_name is not None
        )


@pytest.mark.parametrize("name", NAMES)
def test_outputs(synth: Synthesized, name: str) -> None:
    outputs = synth.template(name, "container")["Outputs"]
    assert {
        "ServiceUrl", "ServiceAuthTokenArn", "ClusterName", "ServiceName", "WorkerServiceName",
        "AccessLogBucketName",
    } <= set(outputs)  # fmt: skip
    scheme = "https://" if CONFIGS[name].container.certificate_arn else "http://"
    assert json.dumps(outputs["ServiceUrl"]["Value"]).startswith(f'{{"Fn::Join": ["", ["{scheme}')


def test_the_image_is_staged_at_synth_and_built_at_deploy(synth: Synthesized) -> None:
    for name in NAMES:
        config = CONFIGS[name]
        assets = json.loads((synth.outdir / f"{name}-container.assets.json").read_text())
        images = assets.get("dockerImages", {})
        image = json.dumps([lay_container["Image"] for lay_container in _containers(synth, name)])
        if config.container.image_uri is None:
            # One image for both services, from the repository's Dockerfile, built for the
            # configured platform when `cdk deploy` publishes it (synth never runs Docker).
            [(asset_hash, asset)] = images.items()
            assert asset["source"]["dockerFile"] == "Dockerfile"
            platform = {"arm64": "linux/arm64", "x86_64": "linux/amd64"}
            assert asset["source"]["platform"] == platform[config.container.architecture]
            assert (synth.outdir / asset["source"]["directory"] / "Dockerfile").is_file()
            assert image.count(asset_hash) == 2
        else:
            assert images == {}
            digest = config.container.image_uri.rsplit("@", 1)[1]
            assert image.count(digest) == 2


def _containers(synth: Synthesized, name: str) -> list[dict[str, Any]]:
    return [
        container
        for task in of_type(synth.template(name, "container"), "AWS::ECS::TaskDefinition")
        for container in task["Properties"]["ContainerDefinitions"]
    ]


def test_an_llm_key_needs_its_secret() -> None:
    from stacks.container_agent_stack import TaskPipeline

    with pytest.raises(ValueError, match=r"llm_secret is required when llm\.api_key_secret_name"):
        ContainerAgentStack(
            App(),
            "x-container",
            config=CONFIGS["agent-dev"],
            tasks=TaskPipeline(*([None] * 7)),  # type: ignore[arg-type]
        )


# --- the environment contract ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_container_gets_the_environment_the_runtime_validates(
    layouts: dict[str, Layout], name: str
) -> None:
    # Written alongside this stack; imported here so a missing module names itself.
    from runtime.queue_worker import WorkerSettings
    from runtime.service.settings import ServiceSettings

    lay = layouts[name]
    config = CONFIGS[name]
    container = config.container
    service_definition = lay.container(lay.service_task)
    worker_definition = lay.container(lay.worker_task)
    # ECS injects the secrets as variables of the same names; placeholders stand in here.
    injected = {
        "LLM_API_KEY": "placeholder",
        "REDIS_PASSWORD": "placeholder",
        "SERVICE_AUTH_TOKEN": "placeholder-token-0123456789",
    }
    # A secret's ARN is a cross-stack reference here; the settings check its shape.
    secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:placeholder-AbCdEf"

    def environment(definition: dict[str, Any]) -> dict[str, str]:
        plain = {
            key: secret_arn if key.endswith("_SECRET_ARN") else _plain(value)
            for key, value in _environment(definition).items()
        }
        secrets = {s["Name"]: injected[s["Name"]] for s in definition.get("Secrets", [])}
        return {**plain, **secrets}

    service_env = environment(service_definition)
    runtime = RuntimeSettings.from_env(service_env)
    service = ServiceSettings.from_env(service_env)
    assert runtime.session_store == "redis"
    assert runtime.redis_url is not None and runtime.redis_url.startswith("rediss://")
    assert runtime.redis_password is not None
    # Read at run time by ARN through the key cache, never injected: rotation reaches the task.
    assert runtime.llm_api_key is None
    assert (runtime.llm_api_key_secret_arn is None) is (config.llm.api_key_secret_name is None)
    assert service.port == CONTAINER_PORT
    assert service.ws_heartbeat_seconds == container.ws_heartbeat_seconds
    assert service.lb_idle_timeout_seconds == container.alb_idle_timeout_seconds
    assert service.drain_seconds == container.drain_seconds
    assert service.stop_timeout_seconds == service_definition["StopTimeout"]
    assert service.max_concurrent_sessions == container.max_concurrent_sessions
    assert service.auth_token is not None
    assert service.forwarded_allow_ips == VPC_CIDR
    url = _environment(service_definition)["REDIS_URL"]
    assert refers_to(url, lay.cache)

    worker_env = environment(worker_definition)
    worker_runtime = RuntimeSettings.from_env(worker_env)
    tasks = TaskSettings.from_env(worker_env)
    worker = WorkerSettings.from_env(worker_env)
    # The task pipeline's own session table, shared with the async stack's Lambda worker.
    assert worker_runtime.session_store == "dynamodb"
    assert "Fn::GetStackOutput" in json.dumps(_environment(worker_definition)["SESSION_TABLE_NAME"])
    assert worker.queues == "task"
    assert worker.visibility_seconds == container.worker.visibility_seconds
    assert worker.drain_seconds == container.drain_seconds < worker_definition["StopTimeout"]
    assert tasks.task_lease_seconds == config.webhook.worker.timeout_seconds
    assert tasks.max_receive_count == config.webhook.queue.max_receive_count
    # The agent itself is the same in both containers and in the Lambda functions.
    for key in ("LLM_PROVIDER", "LLM_MODEL_ID", "AGENT_MAX_ITERATIONS", "MAX_MESSAGE_CHARS"):
        assert service_env[key] == worker_env[key]
    assert worker_runtime.llm_model_id == runtime.llm_model_id == config.llm.model_id
    if config.hybrid is not None:
        # The agent memory's contract, validated by the runtime's own settings model.
        from runtime.memory.settings import MemorySettings

        for memory_env in (service_env, worker_env):
            memory = MemorySettings.from_env(memory_env)
            assert memory.memory_store == "pgvector"
            assert memory.embedding_model == config.hybrid.memory.embedding_model
            assert memory.embedding_dimensions == config.hybrid.memory.embedding_dimensions
            assert memory.session_ttl_seconds == config.session.ttl_seconds
            assert memory.memory_database_password is None
            assert memory.memory_database_secret_arn == secret_arn


# --- constructs on a bare stack -------------------------------------------------------------------


def _task_props(stack: Stack, **changes: Any) -> ContainerTaskProps:
    values: dict[str, Any] = {
        "image": ecs.ContainerImage.from_registry("public.ecr.aws/docker/library/busybox:1.36"),
        "command": ["true"],
        "cpu": 256,
        "memory_mib": 512,
        "architecture": ecs.CpuArchitecture.ARM64,
        "environment": {"A": "1"},
        "secrets": {},
        "stop_timeout": Duration.seconds(30),
        "log_retention": logs.RetentionDays.ONE_WEEK,
        "encryption_key": kms.Key(stack, "Key"),
        "removal_policy": RemovalPolicy.DESTROY,
    }
    values.update(changes)
    return ContainerTaskProps(**values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"environment": {"REDIS_PASSWORD": "x"}}, r"has REDIS_PASSWORD: pass secrets through"),
        ({"environment": {"LLM_API_KEY": "x"}}, r"has LLM_API_KEY: pass secrets through"),
        ({"stop_timeout": Duration.seconds(121)}, r"stop_timeout is 121 s; Fargate allows"),
    ],
)
def test_container_task_refuses_plaintext_secrets_and_long_stops(
    changes: dict[str, Any], message: str
) -> None:
    stack = Stack(App(), "bare")
    with pytest.raises(ValueError, match=rf"ContainerTaskProps.*{message}"):
        ContainerTask(stack, "Task", props=_task_props(stack, **changes))


def test_container_task_allows_secret_arns_in_the_environment() -> None:
    stack = Stack(App(), "bare")
    props = _task_props(stack, environment={"CALLBACK_SIGNING_SECRET_ARN": "arn:x"})
    assert ContainerTask(stack, "Task", props=props).stop_timeout.to_seconds() == 30


def _vpc_props(stack: Stack, **changes: Any) -> AgentVpcProps:
    values: dict[str, Any] = {
        "max_azs": 2,
        "nat_gateways": 1,
        "interface_endpoints": (),
        "flow_log_retention": logs.RetentionDays.ONE_WEEK,
        "encryption_key": kms.Key(stack, "Key"),
        "removal_policy": RemovalPolicy.DESTROY,
    }
    values.update(changes)
    return AgentVpcProps(**values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nat_gateways": 3}, r"nat_gateways \(3\) cannot exceed max_azs \(2\)"),
        ({"nat_gateways": 0}, r"interface_endpoints is empty while nat_gateways is 0"),
    ],
)
def test_agent_vpc_refuses_unusable_networks(changes: dict[str, Any], message: str) -> None:
    stack = Stack(App(), "bare")
    with pytest.raises(ValueError, match=rf"AgentVpcProps\..*{message}"):
        AgentVpc(stack, "Vpc", props=_vpc_props(stack, **changes))


def test_agent_vpc_without_nat_isolates_the_app_tier() -> None:
    stack = Stack(App(), "bare")
    props = _vpc_props(
        stack, nat_gateways=0, interface_endpoints=(ec2.InterfaceVpcEndpointAwsService.SQS,)
    )
    vpc = AgentVpc(stack, "Vpc", props=props)
    assert vpc.endpoint_security_group is not None
    # Both the app and the data tier are isolated: no subnet routes to a NAT gateway.
    assert len(vpc.vpc.isolated_subnets) == 2 * 2
    assert not vpc.vpc.private_subnets
    assert len(vpc.interface_endpoints) == 1


def test_cross_stack_references_are_outputs_not_exports(synth: Synthesized) -> None:
    """The container stack reads the others' outputs (Fn::GetStackOutput, cdk.json's "weak"
    references): no export locks the serverless or async stack's resources in place."""
    for name in NAMES:
        for pattern in ("serverless", "async", "container"):
            outputs = synth.template(name, pattern).get("Outputs", {})
            assert not [k for k, output in outputs.items() if "Export" in output], (name, pattern)
        container = json.dumps(synth.template(name, "container"))
        assert "Fn::ImportValue" not in container
        assert "Fn::GetStackOutput" in container
