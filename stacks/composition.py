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
from stacks.container_agent_stack import ContainerAgentStack, TaskPipeline
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
        env=env,
    )
    stacks: list[Stack] = [serverless, tasks, container]
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
