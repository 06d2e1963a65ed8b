"""The hybrid architecture's stacks, asserted directly: network, agent memory, who reaches what.

Each compute piece gets only the state access it needs: the container service and worker reach
the vector store (5432 from their security groups, the password read from its secret by ARN,
the embedding model), and nothing else does: the Lambda functions are outside the VPC and
reference nothing of the memory stack.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2

from config.environment import memory_environment
from config.model import DeploymentConfig
from constructs.secure_defaults import MEMORY_ADMIN_USER, MEMORY_PORT
from stacks.memory_stack import MemoryStack
from tests.infra.cfn import as_list, ids_of_type, of_type, one, refers_to
from tests.infra.conftest import REPO_ROOT, Synthesized, all_configs, cdk_json_context

CONFIGS = {c.name: c for c in all_configs()}
HYBRID = sorted(name for name, c in CONFIGS.items() if c.hybrid is not None)
NOT_HYBRID = sorted(name for name, c in CONFIGS.items() if c.hybrid is None)


def _hybrid(name: str) -> Any:
    hybrid = CONFIGS[name].hybrid
    assert hybrid is not None
    return hybrid


def _stack_outputs_read(template: dict[str, Any]) -> set[str]:
    """The stacks whose outputs ``template`` reads (weak cross-stack references)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "Fn::GetStackOutput" in value:
                found.add(value["Fn::GetStackOutput"]["StackName"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(template)
    return found


def _alert_topic_stack(name: str) -> set[str]:
    """The cost stack, whose alert topic every alarm notifies (the memory stack's rotation alarm
    too), when the config has operations; it reads no other stack, so no cycle."""
    return {f"{name}-cost"} if CONFIGS[name].operations is not None else set()


def _output_name(template: dict[str, Any], logical_id: str, attribute: str | None) -> str:
    """The name of ``template``'s output that publishes ``logical_id`` (Ref or GetAtt)."""
    value: Any = (
        {"Ref": logical_id} if attribute is None else {"Fn::GetAtt": [logical_id, attribute]}
    )
    [name] = [
        str(key)
        for key, output in template["Outputs"].items()
        if key.startswith("PublishOutput") and output["Value"] == value
    ]
    return name


def _reads_output(value: Any, stack_name: str, output_name: str) -> bool:
    needle = {"StackName": stack_name, "Region": {"Ref": "AWS::Region"}, "OutputName": output_name}
    return json.dumps({"Fn::GetStackOutput": needle}) in json.dumps(value)


# --- which stacks exist --------------------------------------------------------------------------


def test_the_hybrid_stacks_exist_only_for_hybrid_configs(synth: Synthesized) -> None:
    assert HYBRID, "config/hybrid.yaml should define a hybrid deployment"
    for name in HYBRID:
        for pattern in ("network", "memory"):
            assert f"{name}-{pattern}" in synth.templates
    for name in NOT_HYBRID:
        assert not [s for s in synth.templates if s.startswith(name) and "memory" in s]
        assert f"{name}-network" not in synth.templates


@pytest.mark.parametrize("name", HYBRID)
def test_references_run_one_way(synth: Synthesized, name: str) -> None:
    # network <- memory <- container: the store knows none of its clients, and the VPC none of
    # the stacks in it; a reference back would make the stacks undeployable (a cycle).
    network, memory = synth.template(name, "network"), synth.template(name, "memory")
    container = synth.template(name, "container")
    assert _stack_outputs_read(network) == set()
    assert _stack_outputs_read(memory) == {f"{name}-network"} | _alert_topic_stack(name)
    assert {f"{name}-network", f"{name}-memory"} <= _stack_outputs_read(container)
    # The container stack builds no VPC of its own when the network stack has one.
    assert of_type(container, "AWS::EC2::VPC") == []
    one(network, "AWS::EC2::VPC")
    one(network, "AWS::EC2::FlowLog")


# --- the vector store ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", HYBRID)
def test_the_store_is_aurora_postgres_16_scaling_to_zero(synth: Synthesized, name: str) -> None:
    memory = _hybrid(name).memory
    cluster = one(synth.template(name, "memory"), "AWS::RDS::DBCluster")["Properties"]
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["EngineVersion"].startswith("16.")
    scaling = cluster["ServerlessV2ScalingConfiguration"]
    assert scaling["MinCapacity"] == memory.min_acu == 0
    assert scaling["MaxCapacity"] == memory.max_acu
    assert scaling["SecondsUntilAutoPause"] == memory.auto_pause_seconds
    [writer] = of_type(synth.template(name, "memory"), "AWS::RDS::DBInstance")
    assert writer["Properties"]["DBInstanceClass"] == "db.serverless"
    assert writer["Properties"]["PubliclyAccessible"] is False


@pytest.mark.parametrize("name", HYBRID)
def test_the_store_is_encrypted_logged_backed_up_and_tls_only(
    synth: Synthesized, name: str
) -> None:
    template = synth.template(name, "memory")
    [key] = ids_of_type(template, "AWS::KMS::Key")
    cluster = one(template, "AWS::RDS::DBCluster")["Properties"]
    assert cluster["StorageEncrypted"] is True
    assert refers_to(cluster["KmsKeyId"], key)
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert cluster["EnableCloudwatchLogsExports"] == ["postgresql"]
    assert cluster["BackupRetentionPeriod"] == _hybrid(name).memory.backup_retention_days
    assert cluster["Port"] == MEMORY_PORT
    [parameters] = of_type(template, "AWS::RDS::DBClusterParameterGroup")
    assert parameters["Properties"]["Parameters"] == {"rds.force_ssl": "1"}
    # The secret and the exported log group use the same key; the log group exists before the
    # cluster, with the deployment's retention.
    secret = one(template, "AWS::SecretsManager::Secret")["Properties"]
    assert refers_to(secret["KmsKeyId"], key)
    assert "password" not in json.dumps(cluster).replace(":SecretString:password::", "")
    [log_group_id] = ids_of_type(template, "AWS::Logs::LogGroup")
    log_group = template["Resources"][log_group_id]["Properties"]
    assert log_group["LogGroupName"] == f"/aws/rds/cluster/{name}-memory/postgresql"
    assert log_group["RetentionInDays"] == CONFIGS[name].logs.retention_days
    assert refers_to(log_group["KmsKeyId"], key)
    [cluster_id] = ids_of_type(template, "AWS::RDS::DBCluster")
    assert log_group_id in as_list(template["Resources"][cluster_id].get("DependsOn", []))


@pytest.mark.parametrize("name", HYBRID)
def test_the_store_sits_in_the_data_subnets(synth: Synthesized, name: str) -> None:
    network, memory = synth.template(name, "network"), synth.template(name, "memory")
    subnets = one(memory, "AWS::RDS::DBSubnetGroup")["Properties"]["SubnetIds"]
    data_subnets = [
        logical_id
        for logical_id, resource in network["Resources"].items()
        if resource["Type"] == "AWS::EC2::Subnet"
        and {"Key": "aws-cdk:subnet-name", "Value": "data"} in resource["Properties"]["Tags"]
    ]
    assert len(subnets) == len(data_subnets) == CONFIGS[name].container.max_azs
    for subnet in data_subnets:
        output = _output_name(network, subnet, None)
        assert any(_reads_output(s, f"{name}-network", output) for s in subnets), subnet


@pytest.mark.parametrize("name", HYBRID)
def test_the_store_admits_only_the_service_and_worker_on_5432(
    synth: Synthesized, name: str
) -> None:
    memory, container = synth.template(name, "memory"), synth.template(name, "container")
    [cluster] = of_type(memory, "AWS::RDS::DBCluster")
    [store_group] = [g["Fn::GetAtt"][0] for g in cluster["Properties"]["VpcSecurityGroupIds"]]
    group = memory["Resources"][store_group]["Properties"]
    # Nothing inline: no ingress, and egress only CDK's "disallow all" placeholder.
    assert "SecurityGroupIngress" not in group
    assert [rule["CidrIp"] for rule in group["SecurityGroupEgress"]] == ["255.255.255.255/32"]
    output = _output_name(memory, store_group, "GroupId")
    ingress = [
        rule["Properties"]
        for template in synth.templates.values()
        for rule in of_type(template, "AWS::EC2::SecurityGroupIngress")
        if _reads_output(rule["Properties"]["GroupId"], f"{name}-memory", output)
    ]
    resources = container["Resources"]
    services = ids_of_type(container, "AWS::ECS::Service")
    task_groups = {
        resources[s]["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"][
            0
        ]["Fn::GetAtt"][0]
        for s in services
    }
    assert len(task_groups) == 2
    assert sorted(r["SourceSecurityGroupId"]["Fn::GetAtt"][0] for r in ingress) == sorted(
        task_groups
    )
    # Inside the memory stack, only the password rotation's function (test_db_rotation.py).
    local = [
        rule["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0]
        for rule in of_type(memory, "AWS::EC2::SecurityGroupIngress")
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [store_group, "GroupId"]}
    ]
    assert len(local) == (_hybrid(name).memory.credentials_rotation_days is not None)
    assert all("RotationSecurityGroup" in source for source in local)
    for rule in ingress:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == (
            "tcp",
            MEMORY_PORT,
            MEMORY_PORT,
        )


# --- who reads the credentials -------------------------------------------------------------------


@pytest.mark.parametrize("name", HYBRID)
def test_only_the_task_roles_read_the_store_secret(synth: Synthesized, name: str) -> None:
    # The runtime reads the password itself, by ARN (it rotates): the task roles, not the
    # execution roles, get GetSecretValue, and Decrypt only through Secrets Manager for it.
    memory, container = synth.template(name, "memory"), synth.template(name, "container")
    [attachment] = ids_of_type(memory, "AWS::SecretsManager::SecretTargetAttachment")
    secret_output = _output_name(memory, attachment, None)
    [key] = ids_of_type(memory, "AWS::KMS::Key")
    key_output = _output_name(memory, key, "Arn")
    readers: dict[str, list[str]] = {}
    for stack_name, template in synth.templates.items():
        for policy in of_type(template, "AWS::IAM::Policy"):
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if _reads_output(statement["Resource"], f"{name}-memory", secret_output):
                    assert as_list(statement["Action"]) == [
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:GetSecretValue",
                    ]
                    roles = [r["Ref"] for r in policy["Properties"]["Roles"]]
                    readers.setdefault(stack_name, []).extend(roles)
                if _reads_output(statement["Resource"], f"{name}-memory", key_output):
                    assert statement["Action"] == "kms:Decrypt"
                    condition = statement["Condition"]["StringEquals"]
                    assert "kms:ViaService" in condition
                    assert _reads_output(
                        condition["kms:EncryptionContext:SecretARN"],
                        f"{name}-memory",
                        secret_output,
                    )
                    decrypters = [r["Ref"] for r in policy["Properties"]["Roles"]]
                    readers.setdefault(f"{stack_name} decrypt", []).extend(decrypters)
    assert sorted(readers) == [f"{name}-container", f"{name}-container decrypt"]
    task_roles = {
        task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
        for task in of_type(container, "AWS::ECS::TaskDefinition")
    }
    assert set(readers[f"{name}-container"]) == task_roles
    assert set(readers[f"{name}-container decrypt"]) == task_roles
    # The memory stack itself grants nobody outside it (its key policy names no role).
    assert _stack_outputs_read(memory) == {f"{name}-network"} | _alert_topic_stack(name)


@pytest.mark.parametrize("name", HYBRID)
def test_the_lambda_functions_cannot_reach_the_store(synth: Synthesized, name: str) -> None:
    for pattern in ("serverless", "async"):
        template = synth.template(name, pattern)
        assert f"{name}-memory" not in json.dumps(template)
        for function in of_type(template, "AWS::Lambda::Function"):
            assert "VpcConfig" not in function["Properties"]


@pytest.mark.parametrize("name", HYBRID)
def test_the_tasks_get_the_memory_contract(synth: Synthesized, name: str) -> None:
    hybrid = _hybrid(name)
    container = synth.template(name, "container")
    tasks = of_type(container, "AWS::ECS::TaskDefinition")
    assert len(tasks) == 2
    for task in tasks:
        [definition] = task["Properties"]["ContainerDefinitions"]
        environment = {e["Name"]: e["Value"] for e in definition["Environment"]}
        assert environment["MEMORY_STORE"] == "pgvector"
        assert environment["MEMORY_EMBEDDER"] == hybrid.memory.embedder
        assert environment["MEMORY_EMBEDDING_MODEL"] == hybrid.memory.embedding_model
        assert environment["MEMORY_EMBEDDING_DIMENSIONS"] == str(hybrid.memory.embedding_dimensions)
        separator, parts = environment["MEMORY_DATABASE_URL"]["Fn::Join"]
        assert separator == ""
        assert parts[0] == "postgresql://"
        assert parts[2] == f":{MEMORY_PORT}/{hybrid.memory.database_name}?sslmode=require"
        assert environment["MEMORY_DATABASE_USER"] == MEMORY_ADMIN_USER
        assert "@" not in json.dumps(parts)
        # The password is read at run time from the secret, by its complete ARN (it rotates).
        secrets = {s["Name"] for s in definition.get("Secrets", [])}
        assert "MEMORY_DATABASE_PASSWORD" not in secrets
        owner = environment["MEMORY_DATABASE_SECRET_ARN"]["Fn::GetStackOutput"]
        assert owner["StackName"] == f"{name}-memory"


@pytest.mark.parametrize("name", HYBRID)
def test_the_task_roles_may_invoke_the_embedding_model_only(synth: Synthesized, name: str) -> None:
    memory = _hybrid(name).memory
    if memory.embedder != "bedrock":
        pytest.skip("the embedder is not Bedrock")
    container = synth.template(name, "container")
    task_roles = {
        task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
        for task in of_type(container, "AWS::ECS::TaskDefinition")
    }
    granted = set()
    for policy in of_type(container, "AWS::IAM::Policy"):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Action"] == "bedrock:InvokeModel":
                assert statement["Resource"]["Fn::Join"][1][-1] == (
                    f"::foundation-model/{memory.embedding_model}"
                )
                granted |= {r["Ref"] for r in policy["Properties"]["Roles"]}
    assert granted == task_roles


# --- retain: the store survives ------------------------------------------------------------------


def _memory_template(config: DeploymentConfig) -> dict[str, Any]:
    """Only the memory stack, on a bare VPC: cheap, and the app's one synthesis stays one."""
    app = App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    env = Environment(account="123456789012", region="eu-west-1")
    network = Stack(app, "network", env=env)
    vpc = ec2.Vpc(
        network,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        ],
    )
    stack = MemoryStack(
        app,
        "memory",
        config=config,
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_group_name="data"),
        # Routing is not what these tests look at: the rotation function may sit in the same tier.
        rotation_subnets=ec2.SubnetSelection(subnet_group_name="data"),
        env=env,
    )
    template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


def test_a_retain_config_protects_and_keeps_the_store() -> None:
    config = CONFIGS[HYBRID[0]]
    retained = _memory_template(config.model_copy(update={"removal_policy": "retain"}))
    resources = retained["Resources"]
    [cluster_id] = ids_of_type(retained, "AWS::RDS::DBCluster")
    assert resources[cluster_id]["Properties"]["DeletionProtection"] is True
    for resource_type in (
        "AWS::RDS::DBCluster",
        "AWS::RDS::DBInstance",
        "AWS::SecretsManager::Secret",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
    ):
        for logical_id in ids_of_type(retained, resource_type):
            assert resources[logical_id]["DeletionPolicy"] == "Retain", logical_id


@pytest.mark.parametrize("name", HYBRID)
def test_a_destroy_config_lets_the_store_go(synth: Synthesized, name: str) -> None:
    assert CONFIGS[name].removal_policy == "destroy"
    template = synth.template(name, "memory")
    [cluster_id] = ids_of_type(template, "AWS::RDS::DBCluster")
    cluster = template["Resources"][cluster_id]
    assert cluster["Properties"]["DeletionProtection"] is False
    assert cluster["DeletionPolicy"] == "Delete"


def test_a_paused_store_needs_min_acu_zero() -> None:
    config = CONFIGS[HYBRID[0]]
    hybrid = _hybrid(HYBRID[0])
    always_on = config.model_copy(
        update={
            "hybrid": hybrid.model_copy(
                update={"memory": hybrid.memory.model_copy(update={"min_acu": 0.5})}
            )
        }
    )
    scaling = one(_memory_template(always_on), "AWS::RDS::DBCluster")["Properties"][
        "ServerlessV2ScalingConfiguration"
    ]
    assert scaling == {"MinCapacity": 0.5, "MaxCapacity": hybrid.memory.max_acu}


# --- the environment contract --------------------------------------------------------------------


def test_memory_environment_refuses_credentials_in_the_url() -> None:
    config = CONFIGS[HYBRID[0]]
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:memory-AbCdEf"
    with pytest.raises(ValueError, match="database_url must not carry credentials"):
        memory_environment(
            config,
            database_url="postgresql://u:p@host:5432/db",
            database_user="u",
            secret_arn=arn,
        )
    environment = memory_environment(
        config, database_url="postgresql://host:5432/db", database_user="agent", secret_arn=arn
    )
    assert environment["MEMORY_DATABASE_URL"] == "postgresql://host:5432/db"
    assert environment["MEMORY_DATABASE_USER"] == "agent"
    assert environment["MEMORY_DATABASE_SECRET_ARN"] == arn
    assert "MEMORY_DATABASE_PASSWORD" not in environment


def test_memory_environment_needs_a_hybrid_config() -> None:
    with pytest.raises(ValueError, match="the config has no hybrid section"):
        memory_environment(
            CONFIGS[NOT_HYBRID[0]],
            database_url="postgresql://host:5432/db",
            database_user="u",
            secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:memory-AbCdEf",
        )


def test_the_memory_stack_needs_a_hybrid_config() -> None:
    app = App()
    vpc_stack = Stack(app, "network")
    vpc = ec2.Vpc(vpc_stack, "Vpc", max_azs=2, nat_gateways=0)
    with pytest.raises(ValueError, match="MemoryStack: the config has no hybrid section"):
        MemoryStack(
            app,
            "memory",
            config=CONFIGS[NOT_HYBRID[0]],
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        )


# --- the front door: each route reaches its integration ------------------------------------------


def _routes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Route key -> {"route": properties, "integration": properties}."""
    resources = template["Resources"]
    routes = {}
    for route in of_type(template, "AWS::ApiGatewayV2::Route"):
        props = route["Properties"]
        [_, target] = props["Target"]["Fn::Join"][1]
        routes[props["RouteKey"]] = {
            "route": props,
            "integration": resources[target["Ref"]]["Properties"],
        }
    return routes


def _alias(template: dict[str, Any], prefix: str) -> str:
    [alias] = [k for k in ids_of_type(template, "AWS::Lambda::Alias") if k.startswith(prefix)]
    return alias


@pytest.mark.parametrize("name", HYBRID)
def test_each_route_reaches_its_integration(synth: Synthesized, name: str) -> None:
    hybrid = _hybrid(name)
    template = synth.template(name, "frontdoor")
    routes = _routes(template)
    assert set(routes) == {"ANY /v1/sessions/{proxy+}", "POST /webhook", "GET /tasks/{task_id}"}
    tasks = synth.template(name, "async")
    ingress_alias = _output_name(tasks, _alias(tasks, "IngressLive"), None)
    for key in ("POST /webhook", "GET /tasks/{task_id}"):
        integration = routes[key]["integration"]
        assert integration["IntegrationType"] == "AWS_PROXY"
        # Payload 1.0: the REST event shape the function's Powertools resolver reads.
        assert integration["PayloadFormatVersion"] == "1.0"
        assert _reads_output(integration["IntegrationUri"], f"{name}-async", ingress_alias)
    signed = CONFIGS[name].webhook.inbound_signature is not None
    assert routes["POST /webhook"]["route"]["AuthorizationType"] == (
        "NONE" if signed else "AWS_IAM"
    )
    assert routes["GET /tasks/{task_id}"]["route"]["AuthorizationType"] == "AWS_IAM"

    sessions = routes["ANY /v1/sessions/{proxy+}"]
    assert hybrid.sync_backend == "container", "the lambda backend is tested on its own below"
    integration = sessions["integration"]
    [vpc_link] = ids_of_type(template, "AWS::ApiGatewayV2::VpcLink")
    assert integration["IntegrationType"] == "HTTP_PROXY"
    assert integration["ConnectionType"] == "VPC_LINK"
    assert integration["ConnectionId"] == {"Ref": vpc_link}
    container = synth.template(name, "container")
    [listener] = ids_of_type(container, "AWS::ElasticLoadBalancingV2::Listener")
    listener_output = _output_name(container, listener, None)
    assert _reads_output(integration["IntegrationUri"], f"{name}-container", listener_output)
    # The service serves /sessions/... at its root.
    assert integration["RequestParameters"] == {"overwrite:path": "/sessions/${request.path.proxy}"}
    # The service's bearer token authenticates these (gateway SigV4 would consume it).
    assert sessions["route"]["AuthorizationType"] == "NONE"


@pytest.mark.parametrize("name", HYBRID)
def test_the_api_invokes_only_the_ingress_alias(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "frontdoor")
    [api] = ids_of_type(template, "AWS::ApiGatewayV2::Api")
    permissions = of_type(template, "AWS::Lambda::Permission")
    assert len(permissions) == 2  # one per route to the function
    for permission in permissions:
        props = permission["Properties"]
        assert props["Principal"] == "apigateway.amazonaws.com"
        assert f"{name}-async" in json.dumps(props["FunctionName"])
        # Only this API, on the route's own method and path.
        assert refers_to(props["SourceArn"], api)


@pytest.mark.parametrize("name", HYBRID)
def test_the_vpc_link_reaches_the_load_balancer_only(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "frontdoor")
    container = synth.template(name, "container")
    [link_group] = ids_of_type(template, "AWS::EC2::SecurityGroup")
    [vpc_link] = of_type(template, "AWS::ApiGatewayV2::VpcLink")
    assert vpc_link["Properties"]["SecurityGroupIds"] == [{"Fn::GetAtt": [link_group, "GroupId"]}]
    assert all("VpcappSubnet" in json.dumps(s) for s in vpc_link["Properties"]["SubnetIds"])
    [balancer] = of_type(container, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    [balancer_group] = balancer["Properties"]["SecurityGroups"]
    group_output = _output_name(container, balancer_group["Fn::GetAtt"][0], "GroupId")
    port = 443 if CONFIGS[name].container.certificate_arn else 80
    [egress] = of_type(template, "AWS::EC2::SecurityGroupEgress")
    assert _reads_output(
        egress["Properties"]["DestinationSecurityGroupId"], f"{name}-container", group_output
    )
    assert (egress["Properties"]["FromPort"], egress["Properties"]["ToPort"]) == (port, port)
    [ingress] = of_type(template, "AWS::EC2::SecurityGroupIngress")
    assert _reads_output(ingress["Properties"]["GroupId"], f"{name}-container", group_output)
    assert ingress["Properties"]["SourceSecurityGroupId"] == {"Fn::GetAtt": [link_group, "GroupId"]}
    # No other egress: the link only ever talks to the load balancer (at most CDK's
    # "disallow all" placeholder inline).
    inline = template["Resources"][link_group]["Properties"].get("SecurityGroupEgress", [])
    assert all(rule["CidrIp"] == "255.255.255.255/32" for rule in inline)


@pytest.mark.parametrize("name", HYBRID)
def test_the_stage_throttles_and_logs_every_request(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "frontdoor")
    api = CONFIGS[name].api
    stage = one(template, "AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": api.throttle_burst_limit,
        "ThrottlingRateLimit": api.throttle_rate_limit,
    }
    [log_group] = [
        k
        for k in ids_of_type(template, "AWS::Logs::LogGroup")
        if refers_to(stage["AccessLogSettings"]["DestinationArn"], k)
    ]
    group = template["Resources"][log_group]["Properties"]
    assert "KmsKeyId" in group
    assert group["RetentionInDays"] == CONFIGS[name].logs.retention_days
    assert "$context.status" in stage["AccessLogSettings"]["Format"]


def _lambda_front_door(config: DeploymentConfig) -> dict[str, Any]:
    """``sync_backend: lambda`` without CloudFront: only the front door stack, on stand-ins."""
    from aws_cdk import aws_lambda as lambda_

    from stacks.front_door_stack import FrontDoorBackends, FrontDoorStack

    hybrid = config.hybrid
    assert hybrid is not None
    config = config.model_copy(
        update={"hybrid": hybrid.model_copy(update={"sync_backend": "lambda", "cloudfront": False})}
    )
    app = App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    backends_stack = Stack(app, "backends")

    def alias(name: str) -> lambda_.Alias:
        function = lambda_.Function(
            backends_stack,
            name,
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="index.handler",
            code=lambda_.Code.from_inline("def handler(event, context): return {}"),
        )
        return lambda_.Alias(
            backends_stack, f"{name}Live", alias_name="live", version=function.current_version
        )

    agent, ingress = alias("Agent"), alias("Ingress")
    stack = FrontDoorStack(
        app,
        "frontdoor",
        config=config,
        backends=FrontDoorBackends(tasks_function=ingress, sessions_function=agent),
    )
    template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    return template


def test_the_lambda_backend_routes_sessions_to_the_agent_alias() -> None:
    template = _lambda_front_door(CONFIGS[HYBRID[0]])
    routes = _routes(template)
    sessions = routes["ANY /v1/sessions/{proxy+}"]
    assert sessions["route"]["AuthorizationType"] == "AWS_IAM"
    assert sessions["integration"]["IntegrationType"] == "AWS_PROXY"
    assert sessions["integration"]["PayloadFormatVersion"] == "1.0"
    assert "AgentLive" in json.dumps(sessions["integration"]["IntegrationUri"])
    assert "IngressLive" in json.dumps(routes["POST /webhook"]["integration"]["IntegrationUri"])
    # No VPC link, no CloudFront: nothing of the container stack is referenced.
    assert of_type(template, "AWS::ApiGatewayV2::VpcLink") == []
    assert of_type(template, "AWS::CloudFront::Distribution") == []


def test_a_signed_webhook_needs_no_gateway_auth_at_the_front_door() -> None:
    from config.model import InboundSignatureConfig

    config = CONFIGS[HYBRID[0]]
    signed = InboundSignatureConfig(style="github", secret_name="agent-hybrid/github-secret")
    webhook = config.webhook.model_copy(update={"inbound_signature": signed})
    routes = _routes(_lambda_front_door(config.model_copy(update={"webhook": webhook})))
    # The function verifies the HMAC signature, as behind the async stack's own API.
    assert routes["POST /webhook"]["route"]["AuthorizationType"] == "NONE"
    assert routes["GET /tasks/{task_id}"]["route"]["AuthorizationType"] == "AWS_IAM"


def test_the_front_door_refuses_missing_backends() -> None:
    from aws_cdk import aws_lambda as lambda_

    from stacks.front_door_stack import FrontDoorBackends, FrontDoorStack

    app = App()
    stack = Stack(app, "backends")
    function = lambda_.Function(
        stack,
        "Fn",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context): return {}"),
    )
    config = CONFIGS[HYBRID[0]]
    with pytest.raises(
        ValueError, match=r"backends.listener, backends.load_balancer, backends.vpc"
    ):
        FrontDoorStack(app, "frontdoor", config=config, backends=FrontDoorBackends(function))
    lambda_config = config.model_copy(
        update={"hybrid": _hybrid(HYBRID[0]).model_copy(update={"sync_backend": "lambda"})}
    )
    with pytest.raises(ValueError, match=r"backends.sessions_function \(the serverless agent"):
        FrontDoorStack(
            app, "frontdoor2", config=lambda_config, backends=FrontDoorBackends(function)
        )


# --- CloudFront: the one entry point for browsers -------------------------------------------------

# CloudFront's managed policies (ids are fixed by AWS).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


def _distribution(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [distribution_id] = ids_of_type(template, "AWS::CloudFront::Distribution")
    config: dict[str, Any] = template["Resources"][distribution_id]["Properties"][
        "DistributionConfig"
    ]
    return distribution_id, config


@pytest.mark.parametrize("name", HYBRID)
def test_cloudfront_serves_the_ui_through_oac_only(synth: Synthesized, name: str) -> None:
    assert _hybrid(name).cloudfront
    template = synth.template(name, "frontdoor")
    resources = template["Resources"]
    distribution_id, distribution = _distribution(template)
    [oac] = ids_of_type(template, "AWS::CloudFront::OriginAccessControl")
    assert resources[oac]["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    [ui_origin] = [o for o in distribution["Origins"] if "S3OriginConfig" in o]
    assert ui_origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac, "Id"]}
    [ui_bucket] = [k for k in ids_of_type(template, "AWS::S3::Bucket") if k.startswith("EdgeUi")]
    assert refers_to(ui_origin["DomainName"], ui_bucket)
    bucket = resources[ui_bucket]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "LoggingConfiguration" in bucket
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in of_type(template, "AWS::S3::BucketPolicy")
        if p["Properties"]["Bucket"] == {"Ref": ui_bucket}
    ]
    # TLS only, and reads by this distribution only.
    [deny] = [s for s in policy if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    [allow] = [s for s in policy if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    assert refers_to(allow["Condition"]["StringEquals"]["AWS:SourceArn"], distribution_id)
    # The chat page's files are published there, and CloudFront's copies invalidated.
    [deployment] = of_type(template, "Custom::CDKBucketDeployment")
    assert deployment["Properties"]["DestinationBucketName"] == {"Ref": ui_bucket}
    assert deployment["Properties"]["DistributionId"] == {"Ref": distribution_id}
    assert distribution["DefaultRootObject"] == "index.html"
    assert distribution["Logging"]["Bucket"]


@pytest.mark.parametrize("name", HYBRID)
def test_cloudfront_behaviours_route_and_never_cache_live_traffic(
    synth: Synthesized, name: str
) -> None:
    template = synth.template(name, "frontdoor")
    _, distribution = _distribution(template)
    origins = {o["Id"]: o for o in distribution["Origins"]}
    default = distribution["DefaultCacheBehavior"]
    assert default["ViewerProtocolPolicy"] == "redirect-to-https"
    assert default["CachePolicyId"] != CACHING_DISABLED  # the UI is cached
    behaviours = {b["PathPattern"]: b for b in distribution["CacheBehaviors"]}
    # SigV4 routes (/tasks/*, an unsigned /webhook) cannot pass CloudFront: callers go direct.
    expected = {"/agent/*", "/v1/*"} if _hybrid(name).sync_backend == "container" else {"/agent/*"}
    if CONFIGS[name].webhook.inbound_signature is not None:
        expected.add("/webhook")
    assert set(behaviours) == expected
    for path, behaviour in behaviours.items():
        assert behaviour["ViewerProtocolPolicy"] == "https-only", path
        assert behaviour["CachePolicyId"] == CACHING_DISABLED, path
    websocket = behaviours["/agent/*"]
    assert websocket["OriginRequestPolicyId"] == ALL_VIEWER
    service = origins[websocket["TargetOriginId"]]
    assert f"{name}-container" in json.dumps(service["DomainName"])
    https = CONFIGS[name].container.certificate_arn is not None
    assert service["CustomOriginConfig"]["OriginProtocolPolicy"] == (
        "https-only" if https else "http-only"
    )
    if "/v1/*" in behaviours:
        api = behaviours["/v1/*"]
        assert api["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
        assert api["AllowedMethods"] == [
            "GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"
        ]  # fmt: skip
        api_origin = origins[api["TargetOriginId"]]
        assert api_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
        assert api_origin["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]
        [http_api] = ids_of_type(template, "AWS::ApiGatewayV2::Api")
        assert refers_to(api_origin["DomainName"], http_api)


@pytest.mark.parametrize("name", HYBRID)
def test_every_response_carries_the_security_headers(synth: Synthesized, name: str) -> None:
    template = synth.template(name, "frontdoor")
    [policy_id] = ids_of_type(template, "AWS::CloudFront::ResponseHeadersPolicy")
    config = template["Resources"][policy_id]["Properties"]["ResponseHeadersPolicyConfig"]
    headers = config["SecurityHeadersConfig"]
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31_536_000
    assert headers["StrictTransportSecurity"]["IncludeSubdomains"] is True
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["FrameOptions"] == {"FrameOption": "DENY", "Override": True}
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "strict-origin-when-cross-origin"
    csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    _, distribution = _distribution(template)
    for behaviour in [distribution["DefaultCacheBehavior"], *distribution["CacheBehaviors"]]:
        assert behaviour["ResponseHeadersPolicyId"] == {"Ref": policy_id}


# --- the README's diagram follows the code -------------------------------------------------------


def _readme_hybrid_diagram() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Hybrid pattern") :]
    start = section.index("```mermaid\n") + len("```mermaid\n")
    return section[start : section.index("```", start)]


def test_the_readme_diagram_shows_every_route_behaviour_and_stack(synth: Synthesized) -> None:
    """The hybrid diagram is hand-drawn for readability; this keeps it in step with the app."""
    diagram = _readme_hybrid_diagram()
    # Mermaid labels cannot hold braces: {proxy+} is drawn as proxy+, {task_id} as id.
    drawn = diagram.replace("{", "").replace("}", "")
    front_door = synth.template("agent-hybrid", "frontdoor")
    routes = [
        resource["Properties"]["RouteKey"]
        for resource in front_door["Resources"].values()
        if resource["Type"] == "AWS::ApiGatewayV2::Route"
    ]
    assert routes
    for route in routes:
        method, path = route.split(" ", 1)
        path = path.replace("{task_id}", "id").replace("{", "").replace("}", "")
        assert method in drawn and path in drawn, f"{route} is not in the README's diagram"
    [distribution] = [
        resource["Properties"]["DistributionConfig"]
        for resource in front_door["Resources"].values()
        if resource["Type"] == "AWS::CloudFront::Distribution"
    ]
    patterns = [behaviour["PathPattern"] for behaviour in distribution["CacheBehaviors"]]
    assert patterns
    for pattern in patterns:
        assert pattern in drawn, f"CloudFront's {pattern} is not in the README's diagram"
    # Each store the hybrid stacks create or share appears.
    for store in ("S3 web UI", "Redis", "DynamoDB", "Aurora Serverless v2", "task queue"):
        assert store in drawn, store
