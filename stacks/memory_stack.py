"""The agent memory: a vector store (Aurora Serverless v2 PostgreSQL with pgvector).

Chosen for its idle cost: at 0 ACU the writer pauses and only storage is billed, where
OpenSearch Serverless bills its minimum OCUs around the clock (README.md, "Hybrid pattern").
The store knows none of its clients: the container stack admits its own tasks to it and reads
its secret, as it does with the async stack's queue. pgvector is enabled by the runtime
(``CREATE EXTENSION vector``), not by CloudFormation.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, Stack
from aws_cdk import aws_ec2 as ec2

from config.model import DeploymentConfig
from constructs import Construct
from constructs.acknowledgements import acknowledge_nag, skip_checkov
from constructs.agent_vpc import AgentVpc
from constructs.data_key import DataKey
from constructs.vector_store import VectorStore, VectorStoreProps
from stacks.shared import log_retention, removal_policy


class MemoryStack(Stack):
    """``self.store``: the vector store in ``vpc``'s ``subnets`` (no route out), closed to all.

    With ``hybrid.memory.credentials_rotation_days`` set, its password rotates: the hosted
    rotation function runs in ``rotation_subnets`` (a route to Secrets Manager: the VPC's app
    subnets) and, when ``endpoints`` has interface endpoints (no NAT gateway), may call them.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        rotation_subnets: ec2.SubnetSelection | None = None,
        endpoints: AgentVpc | None = None,
        env: Environment | None = None,
    ) -> None:
        if config.hybrid is None:
            raise ValueError(
                "MemoryStack: the config has no hybrid section; add hybrid: to the config or "
                "leave this stack out"
            )
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.name}: agent memory (Aurora Serverless v2 PostgreSQL, pgvector)",
        )
        memory = config.hybrid.memory
        removal = removal_policy(config)
        retain = config.removal_policy == "retain"
        data_key = DataKey(
            self,
            "DataKey",
            description=f"{config.name}: agent memory at rest",
            removal_policy=removal,
        ).key
        self.store = VectorStore(
            self,
            "VectorStore",
            props=VectorStoreProps(
                vpc=vpc,
                subnets=subnets,
                # Derived from the deployment's name (unique per account and region): the log
                # group RDS exports to is named after it and must exist before the cluster.
                cluster_identifier=f"{config.name}-memory",
                database_name=memory.database_name,
                min_acu=memory.min_acu,
                max_acu=memory.max_acu,
                auto_pause=(
                    Duration.seconds(memory.auto_pause_seconds) if memory.min_acu == 0 else None
                ),
                backup_retention=Duration.days(memory.backup_retention_days),
                deletion_protection=retain,
                encryption_key=data_key,
                log_retention=log_retention(config),
                removal_policy=removal,
                description=config.name,
            ),
        )
        self.data_key = data_key
        rotation_days = memory.credentials_rotation_days
        if rotation_days is not None:
            if rotation_subnets is None:
                raise ValueError(
                    "MemoryStack: hybrid.memory.credentials_rotation_days is set, so the rotation "
                    "function needs rotation_subnets (subnets with a route to Secrets Manager); "
                    "pass them, or set credentials_rotation_days: null"
                )
            rotation_group = self.store.rotate_credentials(
                every=Duration.days(rotation_days),
                subnets=rotation_subnets,
                # Lambda names are per account and region, as deployment names are.
                function_name=f"{config.name}-memory-rotation",
            )
            if endpoints is not None:
                # Without a NAT gateway the app subnets reach Secrets Manager only through the
                # VPC's interface endpoint; the rule lands in this stack (allow_endpoints_from).
                endpoints.allow_endpoints_from(rotation_group)
        self._acknowledge(config)
        CfnOutput(self, "MemoryEndpoint", value=self.store.endpoint)
        CfnOutput(self, "MemorySecretArn", value=self.store.secret.secret_arn)

    def _acknowledge(self, config: DeploymentConfig) -> None:
        """The exceptions to security rules this stack needs, each on its resource, with why."""
        cluster = self.store.cluster
        if self.store.rotation is None:
            acknowledge_nag(
                self.store.credentials,
                "AwsSolutions-SMG4",
                "hybrid.memory.credentials_rotation_days is null in this config: the operator "
                "turned the password's hosted rotation off and rotates it by hand "
                "(docs/key-rotation.md)",
            )
        skip_checkov(
            cluster.node.find_child("Writer"),
            "CKV_AWS_118",
            "Enhanced Monitoring adds an OS-metrics agent, an IAM role and per-second log "
            "ingestion to a store that idles at 0 ACU; CloudWatch's standard RDS metrics "
            "(ServerlessDatabaseCapacity, ACUUtilization, connections) cover it",
        )
        if config.removal_policy != "retain":
            no_protection = (
                "removal_policy is destroy: this deployment is meant to be torn down with "
                "`cdk destroy`; removal_policy: retain turns deletion protection on"
            )
            acknowledge_nag(cluster, "AwsSolutions-RDS10", no_protection)
