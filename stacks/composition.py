"""Build every stack of one deployment into an app, with the cdk-nag packs registered.

``app.py`` calls this for ``cdk synth``; the tests call it to synthesize in-process, so what is
tested is exactly what the CLI synthesizes.
"""

from __future__ import annotations

from aws_cdk import App, Environment, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from config.model import DeploymentConfig
from stacks.serverless_agent_stack import ServerlessAgentStack


def stack_id(config: DeploymentConfig, pattern: str) -> str:
    return f"{config.name}-{pattern}"


def build_app(app: App, config: DeploymentConfig) -> list[Stack]:
    # Environment-agnostic unless the config pins both: no account lookups at synth time.
    env = (
        Environment(account=config.account, region=config.region)
        if config.account and config.region
        else None
    )
    stacks: list[Stack] = [
        ServerlessAgentStack(app, stack_id(config, "serverless"), config=config, env=env),
    ]
    for stack in stacks:
        for key, value in sorted(config.tags.items()):
            Tags.of(stack).add(key, value)
    # Both packs run as CDK validation plugins: an unacknowledged finding fails the synth.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return stacks
