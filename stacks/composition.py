"""Build every stack of one deployment into an app, with the cdk-nag packs registered.

``app.py`` calls this for ``cdk synth``; the tests call it to synthesize in-process, so what is
tested is exactly what the CLI synthesizes.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import App, Environment, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from config.model import DeploymentConfig
from constructs.alarm_topic import add_alarm_notifications
from stacks.async_agent_stack import AsyncAgentStack
from stacks.backup_stack import BackupStack
from stacks.container_agent_stack import ContainerAgentStack, MemoryDatabase, TaskPipeline
from stacks.cost_stack import CostStack
from stacks.dr_placement import DrPlacement, primary_environment
from stacks.dr_stacks import build_dr_stacks
from stacks.front_door_stack import FrontDoorBackends, FrontDoorStack
from stacks.memory_stack import MemoryStack
from stacks.network_stack import NetworkStack
from stacks.serverless_agent_stack import ServerlessAgentStack
from stacks.waf_stack import CLOUDFRONT_WAF_REGION, WafStack


def stack_id(config: DeploymentConfig, pattern: str) -> str:
    return f"{config.name}-{pattern}"


def build_deployment(app: App, config: DeploymentConfig) -> list[Stack]:
    """The stacks of one deployment, tagged with its config's tags."""
    # Environment-agnostic unless the config pins both or has dr (which names its regions).
    env = primary_environment(config)
    # Built first: its alert topic receives every other stack's alarms (see the end).
    cost = (
        CostStack(app, stack_id(config, "cost"), config=config, env=env)
        if config.operations is not None
        else None
    )
    # With dr: global tables and replicated secrets (stacks/dr_placement.py).
    dr = DrPlacement(name=config.name, dr=config.dr) if config.dr is not None else None
    # AWS WAF (config waf): one regional web ACL that every regional public entry point shares.
    waf_stacks: list[Stack] = []
    web_acl_arn: str | None = None
    if config.waf is not None:
        waf = WafStack(app, stack_id(config, "waf"), config=config, waf_scope="REGIONAL", env=env)
        waf_stacks.append(waf)
        web_acl_arn = waf.web_acl.arn
    serverless = ServerlessAgentStack(
        app,
        stack_id(config, "serverless"),
        config=config,
        env=env,
        dr=dr,
        web_acl_arn=web_acl_arn,
    )
    # The serverless stack owns the LLM key secret; the async stack reads it by name.
    tasks = AsyncAgentStack(
        app,
        stack_id(config, "async"),
        config=config,
        llm_secret_stack=serverless,
        env=env,
        dr=dr,
        web_acl_arn=web_acl_arn,
    )
    # Every table and database of the deployment, for the backup selection (the data stacks
    # expose each one's ``table_arn`` / ``cluster_arn``; a test counts them in the templates).
    data_arns = [
        serverless.session_table.table_arn,
        tasks.task_table.table_arn,
        tasks.session_table.table_arn,
    ]
    hybrid: list[Stack] = []
    network, memory = None, None
    if config.hybrid is not None:
        # The hybrid architecture: the VPC in a stack of its own, which the vector store and the
        # container tasks both reference (one direction each; see stacks/network_stack.py).
        network_stack = NetworkStack(app, stack_id(config, "network"), config=config, env=env)
        network = network_stack.network
        memory_stack = MemoryStack(
            app,
            stack_id(config, "memory"),
            config=config,
            vpc=network.vpc,
            subnets=network.data_subnets,
            # The password rotation function: the tasks' subnets, which reach Secrets Manager.
            rotation_subnets=network.app_subnets,
            endpoints=network,
            env=env,
        )
        store = memory_stack.store
        memory = MemoryDatabase(
            url=store.url,
            user=store.user,
            secret=store.secret,
            secret_key=memory_stack.data_key,
            connections=store.connections,
        )
        hybrid = [network_stack, memory_stack]
        data_arns.append(store.cluster.cluster_arn)
    # Optional (container.enabled): its NAT gateway, load balancer and Redis bill while idle.
    container: ContainerAgentStack | None = None
    if config.container.enabled:
        container = ContainerAgentStack(
            app,
            stack_id(config, "container"),
            config=config,
            # The worker runs the async stack's tasks; ECS takes the LLM key by its complete ARN.
            tasks=TaskPipeline(
                task_table=tasks.task_table,
                session_table=tasks.session_table,
                task_queue=tasks.task_queue.queue,
                callback_queue=tasks.callback_queue.queue,
                callback_dlq=tasks.callback_queue.dlq,
                signing_secret=tasks.signing_secret,
                inbound_secret=tasks.inbound_secret,
            ),
            llm_secret=serverless.llm_secret,
            network=network,
            memory=memory,
            env=env,
            web_acl_arn=web_acl_arn,
        )
    if config.hybrid is not None and network is not None and container is not None:
        container_backend = config.hybrid.sync_backend == "container"
        # Only what the config routes to: every field is a cross-stack reference.
        backends = FrontDoorBackends(
            tasks_function=tasks.ingress.alias,
            sessions_function=None if container_backend else serverless.agent.alias,
            listener=container.service.listener if container_backend else None,
            load_balancer=(
                container.service.load_balancer
                if container_backend or config.hybrid.cloudfront
                else None
            ),
            vpc=network.vpc if container_backend else None,
            vpc_link_subnets=network.app_subnets if container_backend else None,
        )
        front_door = FrontDoorStack(
            app, stack_id(config, "frontdoor"), config=config, backends=backends, env=env
        )
        if (
            config.waf is not None
            and config.hybrid.cloudfront
            and config.waf.cloudfront_web_acl_arn is None
        ):
            # CloudFront's web ACL lives in us-east-1; the front door reads its ARN there at
            # deploy time (stacks/waf_stack.py), so the edge stack deploys first.
            edge = WafStack(
                app,
                stack_id(config, "edge"),
                config=config,
                waf_scope="CLOUDFRONT",
                env=Environment(account=config.account, region=CLOUDFRONT_WAF_REGION),
            )
            front_door.add_stack_dependency(
                edge, "CloudFront's web ACL is read from its SSM parameter"
            )
            waf_stacks.append(edge)
        hybrid.append(front_door)
    stacks: list[Stack] = [*waf_stacks, serverless, tasks, *hybrid]
    if container is not None:
        stacks.append(container)
    if config.backup is not None:
        # After the stacks that hold the data: it references their tables and database.
        stacks.append(
            BackupStack(
                app, stack_id(config, "backup"), config=config, resource_arns=data_arns, env=env
            )
        )
    if cost is not None:
        # Deployed first (the others' alarms reference its topic); kept across their redeploys.
        stacks.append(cost)
    # With dr: the secondary region's key and standby stacks, ECR replication (stacks/dr_stacks.py).
    stacks.extend(build_dr_stacks(app, config, serverless=serverless, tasks=tasks))
    for stack in stacks:
        for key, value in sorted(config.tags.items()):
            Tags.of(stack).add(key, value)
    if cost is not None:
        # Every CloudWatch alarm of the deployment notifies the alert topic (same region only).
        add_alarm_notifications(stacks, cost.alert_topic)
    return stacks


def build_app(app: App, configs: Sequence[DeploymentConfig]) -> list[Stack]:
    """Every deployment in ``configs`` in one app, checked by the cdk-nag packs."""
    names = [config.name for config in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"config names must be unique within one app; got {names}")
    stacks = [stack for config in configs for stack in build_deployment(app, config)]
    # Both packs run as CDK validation plugins: an unacknowledged finding fails the synth.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return stacks
