"""ElastiCache (Valkey or Redis OSS) for session state: TLS, AUTH, encrypted, private, closed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager

from constructs import Construct
from constructs.secure_defaults import (
    CACHE_AUTH_TOKEN_EXCLUDE_PUNCTUATION,
    CACHE_AUTH_TOKEN_LENGTH,
    CACHE_ENGINE_VERSIONS,
    CACHE_PORT,
)


@dataclass(frozen=True)
class SessionCacheProps:
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    """Where the nodes go: subnets without a route out (the VPC's data tier)."""
    engine: Literal["valkey", "redis"]
    node_type: str
    num_replicas: int
    """0: one node. 1 or more: replicas in other AZs with Multi-AZ automatic failover."""
    snapshot_retention_days: int
    encryption_key: kms.IKey
    removal_policy: RemovalPolicy
    """``RETAIN`` keeps a final snapshot when the cache is deleted (and keeps the AUTH secret)."""
    description: str
    snapshot_name: str | None = None
    """Seed a new cache from this ElastiCache snapshot (a restore); changing it replaces the
    cache."""


class SessionCache(Construct):
    """A replication group reachable only by what the stack admits with ``allow_from``.

    ``self.auth_secret`` holds the AUTH token (generated, never in the template: the replication
    group reads it through a dynamic reference); ``self.url`` is ``rediss://<primary>:<port>/0``.
    Encryption in transit is required (no plaintext connections), at rest with the given key.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: SessionCacheProps) -> None:
        super().__init__(scope, construct_id)
        if not 0 <= props.num_replicas <= 5:
            raise ValueError(
                f"SessionCacheProps.num_replicas must be 0-5 (got {props.num_replicas})"
            )
        self.auth_secret = secretsmanager.Secret(
            self,
            "AuthToken",
            description=f"{props.description}: ElastiCache AUTH token",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=CACHE_AUTH_TOKEN_LENGTH,
                exclude_punctuation=CACHE_AUTH_TOKEN_EXCLUDE_PUNCTUATION,
            ),
            encryption_key=props.encryption_key,
            removal_policy=props.removal_policy,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description=f"{props.description}: session cache, reachable only from the service",
            # A cache never opens connections; the only rules are the ingress the stack adds.
            allow_all_outbound=False,
        )
        self.connections = ec2.Connections(
            security_groups=[self.security_group], default_port=ec2.Port.tcp(CACHE_PORT)
        )
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description=f"{props.description}: session cache subnets (no route out)",
            subnet_ids=props.vpc.select_subnets(
                subnet_group_name=props.subnets.subnet_group_name
            ).subnet_ids,
        )
        replicated = props.num_replicas > 0
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description=f"{props.description}: sessions",
            engine=props.engine,
            engine_version=CACHE_ENGINE_VERSIONS[props.engine],
            cache_node_type=props.node_type,
            num_cache_clusters=1 + props.num_replicas,
            automatic_failover_enabled=replicated,
            multi_az_enabled=replicated,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[self.security_group.security_group_id],
            port=CACHE_PORT,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            at_rest_encryption_enabled=True,
            kms_key_id=props.encryption_key.key_arn,
            auth_token=self.auth_secret.secret_value.unsafe_unwrap(),
            snapshot_retention_limit=props.snapshot_retention_days,
            snapshot_name=props.snapshot_name,
            auto_minor_version_upgrade=True,
        )
        self.replication_group.apply_removal_policy(_cache_removal(props.removal_policy))
        self.endpoint_address = self.replication_group.attr_primary_end_point_address
        self.endpoint_port = self.replication_group.attr_primary_end_point_port
        self.url = f"rediss://{self.endpoint_address}:{self.endpoint_port}/0"

    def allow_from(self, peer: ec2.IConnectable, description: str) -> None:
        """Let ``peer`` connect to the cache port (and nothing else)."""
        self.connections.allow_default_port_from(peer, description)


def _cache_removal(policy: RemovalPolicy) -> RemovalPolicy:
    # ElastiCache supports a final snapshot: a retained deployment keeps its sessions' data
    # without paying for nodes nobody uses.
    return RemovalPolicy.SNAPSHOT if policy == RemovalPolicy.RETAIN else policy
