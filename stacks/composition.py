"""Build every stack of one deployment into an app, with the cdk-nag packs registered.

``app.py`` calls this for ``cdk synth``; the tests call it to synthesize in-process, so what is
tested is exactly what the CLI synthesizes.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import App, Environment, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from config.model import DeploymentConfig
from stacks.async_agent_stack import AsyncAgentStack
from stacks.container_agent_stack import ContainerAgentStack, MemoryDatabase, TaskPipeline
from stacks.cost_stack import CostStack
from stacks.front_door_stack import FrontDoorBackends, FrontDoorStack
from stacks.memory_stack import MemoryStack
from stacks.network_stack import NetworkStack
from stacks.serverless_agent_stack import ServerlessAgentStack


def stack_id(config: DeploymentConfig, pattern: str) -> str:
    return f"{config.name}-{pattern}"


def build_deployment(app: App, config: DeploymentConfig) -> list[Stack]:
    """The stacks of one deployment, tagged with its config's tags."""
    # Environment-agnostic unless the config pins both: no account lookups at synth time.
    env = (
        Environment(account=config.account, region=config.region)
        if config.account and config.region
        else None
    )
    serverless = ServerlessAgentStack(app, stack_id(config, "serverless"), config=config, env=env)
    # The serverless stack owns the LLM key secret; the async stack reads it by name.
    tasks = AsyncAgentStack(
        app, stack_id(config, "async"), config=config, llm_secret_stack=serverless, env=env
    )
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
    )
    if config.hybrid is not None and network is not None:
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
        hybrid.append(
            FrontDoorStack(
                app, stack_id(config, "frontdoor"), config=config, backends=backends, env=env
            )
        )
    stacks: list[Stack] = [serverless, tasks, *hybrid, container]
    if config.operations is not None:
        # Independent of the others: deploy it first, keep it across redeploys of the rest.
        stacks.append(CostStack(app, stack_id(config, "cost"), config=config, env=env))
    for stack in stacks:
        for key, value in sorted(config.tags.items()):
            Tags.of(stack).add(key, value)
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
