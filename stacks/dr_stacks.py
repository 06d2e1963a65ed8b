"""Multi-region disaster recovery: the stacks a config's ``dr`` section adds.

See docs/disaster-recovery.md. The primary region keeps the usual stacks, with global tables
and replicated secrets (``stacks/dr_placement.py``). Added:

* ``<name>-dr-keys`` (secondary region): the KMS key of the replica tables and secrets there.
  Deployed first: the primary's global tables name it (by alias) when they create the replicas.
* ``<name>-serverless-<secondary>`` and ``<name>-async-<secondary>``: the same two stacks on the
  replicas, a warm standby (API Gateway and Lambda cost nothing while idle).
* ``<name>-dr-registry`` (primary region): ECR replication to the secondary region.

The container stack is not copied: its NAT gateways, load balancer and Redis bill while idle.
"""

from __future__ import annotations

from aws_cdk import App, Environment, Stack
from aws_cdk import aws_kms as kms

from config.model import DeploymentConfig
from constructs import Construct
from constructs.data_key import DataKey
from constructs.image_replication import ImageReplication
from stacks.async_agent_stack import AsyncAgentStack
from stacks.dr_placement import (
    DrPlacement,
    dr_key_alias_name,
    primary_environment,
    secondary_environment,
)
from stacks.serverless_agent_stack import ServerlessAgentStack
from stacks.shared import removal_policy
from stacks.waf_stack import WafStack


class DrKeyStack(Stack):
    """``self.key``: the secondary region's key for the replica tables and replicated secrets.

    Its alias ``alias/<name>/dr-data`` is how the primary region's stacks name it.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, env: Environment
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.name}: key of the disaster recovery replicas in this region",
        )
        self.key = DataKey(
            self,
            "DataKey",
            description=f"{config.name}: replica tables and secrets (disaster recovery)",
            removal_policy=removal_policy(config),
        ).key
        self.alias = kms.Alias(
            self, "Alias", alias_name=dr_key_alias_name(config.name), target_key=self.key
        )


class DrRegistryStack(Stack):
    """``self.replication``: the primary region's ECR replication to the secondary region.

    Registry-level (one per account and region): deploy one DR deployment per account.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, env: Environment
    ) -> None:
        dr = config.dr
        if dr is None:
            raise ValueError("DrRegistryStack: the config has no dr section")
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.name}: ECR image replication to {dr.secondary_region}",
        )
        self.replication = ImageReplication(
            self,
            "ImageReplication",
            destination_region=dr.secondary_region,
            repository_prefixes=dr.image_repository_prefixes,
        )


def build_dr_stacks(
    app: App,
    config: DeploymentConfig,
    *,
    serverless: ServerlessAgentStack,
    tasks: AsyncAgentStack,
) -> list[Stack]:
    """The DR stacks of ``config`` (none without ``dr``), ordered after and before the primary's.

    Deploy order (``cdk deploy --all`` follows the dependencies): keys, then the primary stacks
    (they create the replicas under that key), then the standby stacks (they read the replicas).
    """
    dr = config.dr
    if dr is None:
        return []
    secondary = dr.secondary_region
    keys = DrKeyStack(
        app, f"{config.name}-dr-keys", config=config, env=secondary_environment(config)
    )
    for primary in (serverless, tasks):
        primary.add_stack_dependency(
            keys, f"its replicas in {secondary} are encrypted with that key"
        )
    primary_env = primary_environment(config)
    assert primary_env is not None  # a dr section always names the primary region
    registry = DrRegistryStack(app, f"{config.name}-dr-registry", config=config, env=primary_env)
    standby = DrPlacement(name=config.name, dr=dr, standby_key_arn=keys.key.key_arn)
    # The standby's REST APIs are public entry points too: their own regional web ACL (a web
    # ACL protects resources of its own region only).
    standby_waf: list[Stack] = []
    standby_web_acl: str | None = None
    if config.waf is not None:
        waf = WafStack(
            app,
            f"{config.name}-waf-{secondary}",
            config=config,
            waf_scope="REGIONAL",
            env=secondary_environment(config),
        )
        standby_waf.append(waf)
        standby_web_acl = waf.web_acl.arn
    standby_serverless = ServerlessAgentStack(
        app,
        f"{config.name}-serverless-{secondary}",
        config=config,
        env=secondary_environment(config),
        dr=standby,
        web_acl_arn=standby_web_acl,
    )
    standby_tasks = AsyncAgentStack(
        app,
        f"{config.name}-async-{secondary}",
        config=config,
        llm_secret_stack=standby_serverless,
        env=secondary_environment(config),
        dr=standby,
        web_acl_arn=standby_web_acl,
    )
    standby_serverless.add_stack_dependency(
        serverless, "reads the session replica and secret replicas"
    )
    standby_tasks.add_stack_dependency(
        tasks, "reads the task and session replicas and secret replicas"
    )
    return [keys, registry, *standby_waf, standby_serverless, standby_tasks]
