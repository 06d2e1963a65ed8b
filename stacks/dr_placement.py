"""Where a serverless or async stack of a multi-region deployment sits (config ``dr``).

The agent stacks take a ``DrPlacement``; it turns their tables into global tables (primary) or
replicas (standby), replicates or reads their secrets, and adds the Route 53 failover record.
The stacks that exist only for disaster recovery are in ``stacks/dr_stacks.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from aws_cdk import ArnFormat, Duration, Environment, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager

from config.model import DeploymentConfig, DrConfig
from constructs import Construct
from constructs.failover_dns import FailoverDns, FailoverDnsProps
from constructs.session_table import GlobalTable, GlobalTablePrimary, GlobalTableReplica

# The global tables' names: fixed, so the secondary region finds each replica by it.
TablePurpose = Literal["sessions", "async-sessions", "tasks"]


def dr_key_alias_name(name: str) -> str:
    """The secondary region's replica key, by which the primary region's stacks name it."""
    return f"alias/{name}/dr-data"


def primary_environment(config: DeploymentConfig) -> Environment | None:
    """The primary stacks' environment: the config's, or with DR its primary region.

    Environment-agnostic unless the config pins account and region (no lookups at synth time).
    With DR the regions are part of the design, so the stacks name them; the account may stay
    open (the credentials' account at deploy time).
    """
    if config.dr is not None:
        return Environment(account=config.account, region=config.dr.primary_region)
    if config.account and config.region:
        return Environment(account=config.account, region=config.region)
    return None


def secondary_environment(config: DeploymentConfig) -> Environment:
    if config.dr is None:
        raise ValueError("secondary_environment: the config has no dr section")
    return Environment(account=config.account, region=config.dr.secondary_region)


@dataclass(frozen=True)
class DrPlacement:
    """A stack's part in a DR deployment.

    ``standby_key_arn`` is None in the primary region; in the secondary region it is the ARN of
    the DR key stack's key, which encrypts the replica tables and the replicated secrets there.
    Each stack imports it by ARN, so grants go into the functions' policies only: a grant on the
    key object itself would add the roles to the key stack's key policy, a reference cycle.
    """

    name: str
    dr: DrConfig
    standby_key_arn: str | None = None

    @property
    def standby(self) -> bool:
        return self.standby_key_arn is not None

    def standby_key(self, scope: Construct) -> kms.IKey:
        if self.standby_key_arn is None:
            raise ValueError("DrPlacement.standby_key: the primary region has no standby key")
        stack = Stack.of(scope)
        existing = stack.node.try_find_child("DrStandbyKey")
        if existing is not None:
            return cast(kms.IKey, existing)
        return kms.Key.from_key_arn(stack, "DrStandbyKey", self.standby_key_arn)

    @property
    def failover_role(self) -> Literal["PRIMARY", "SECONDARY"]:
        return "SECONDARY" if self.standby else "PRIMARY"

    def table_name(self, purpose: TablePurpose) -> str:
        return f"{self.name}-{purpose}"

    def global_table(self, scope: Construct, purpose: TablePurpose) -> GlobalTable:
        name = self.table_name(purpose)
        if self.standby:
            return GlobalTableReplica(table_name=name, encryption_key=self.standby_key(scope))
        return GlobalTablePrimary(
            table_name=name,
            replica_region=self.dr.secondary_region,
            replica_key_arn=self.replica_key_arn(scope),
            max_replication_latency=Duration.minutes(self.dr.rpo_minutes),
        )

    def secret_replicas(self, scope: Construct) -> list[secretsmanager.ReplicaRegion]:
        """The primary's secrets replicate (same name, same value) under the secondary's key.

        Replication rather than a second secret per region: the signing secret must be the
        same everywhere (callback receivers know one), and the LLM key is put in once.
        """
        if self.standby:
            raise ValueError(
                "DrPlacement.secret_replicas: a standby stack reads the replicas (see "
                "replicated_secret); only the primary region's stack creates secrets"
            )
        stack = Stack.of(scope)
        # One import per stack, shared by its secrets.
        existing = stack.node.try_find_child("DrReplicaKey")
        key = (
            cast(kms.IKey, existing)
            if existing is not None
            else kms.Key.from_key_arn(stack, "DrReplicaKey", self.replica_key_arn(stack))
        )
        return [secretsmanager.ReplicaRegion(region=self.dr.secondary_region, encryption_key=key)]

    def replicated_secret(
        self, scope: Construct, construct_id: str, secret_name: str
    ) -> secretsmanager.ISecret:
        """In the secondary region: the replica of the primary's secret ``secret_name``.

        By partial ARN (the replica's random suffix is unknown here): grants end in ``-??????``
        and the key grant lets the functions decrypt through Secrets Manager only.
        """
        if not self.standby:
            raise ValueError(
                "DrPlacement.replicated_secret: only a standby stack reads replicas; the "
                "primary region's stack creates the secret"
            )
        partial_arn = Stack.of(scope).format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=secret_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        return secretsmanager.Secret.from_secret_attributes(
            scope,
            construct_id,
            secret_partial_arn=partial_arn,
            encryption_key=self.standby_key(scope),
        )

    def failover_dns(self, scope: Construct, api: apigw.RestApi) -> FailoverDns | None:
        """Route 53 failover for ``api`` when the config names a domain; else None."""
        domain = self.dr.domain
        if domain is None:
            return None
        return FailoverDns(
            scope,
            "FailoverDns",
            props=FailoverDnsProps(
                api=api,
                hosted_zone_id=domain.hosted_zone_id,
                hosted_zone_name=domain.hosted_zone_name,
                record_name=domain.record_name,
                role=self.failover_role,
                health_check_interval=Duration.seconds(domain.health_check_interval_seconds),
                health_check_failure_threshold=domain.health_check_failure_threshold,
            ),
        )

    def replica_key_arn(self, scope: Construct) -> str:
        # By alias ARN: the key is in another region's stack, whose ids this one cannot reference
        # (DynamoDB and Secrets Manager both accept an alias ARN for a replica's key).
        return Stack.of(scope).format_arn(
            service="kms",
            region=self.dr.secondary_region,
            resource="alias",
            resource_name=dr_key_alias_name(self.name).removeprefix("alias/"),
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
