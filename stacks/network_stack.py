"""The hybrid architecture's network: one VPC that the container, memory and front door share.

Its own stack so that the stacks inside it reference it in one direction only: the vector store
(memory stack) needs the VPC's data subnets, and the container tasks need the vector store's
endpoint and secret. With the VPC in the container stack those two would reference each other,
which CloudFormation cannot deploy. Dev and prod, without a vector store, keep the VPC in the
container stack.
"""

from __future__ import annotations

from aws_cdk import Environment, Stack

from config.model import DeploymentConfig
from constructs import Construct
from constructs.agent_vpc import AgentVpc, AgentVpcProps
from constructs.data_key import DataKey
from stacks.container_agent_stack import interface_endpoints
from stacks.shared import deploy_time_azs, log_retention, removal_policy


class NetworkStack(Stack):
    """``self.network``: the container pattern's VPC (public, app and data subnets, flow logs)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.name}: network of the hybrid architecture (VPC, flow logs)",
        )
        container = config.container
        self._max_azs = container.max_azs
        removal = removal_policy(config)
        data_key = DataKey(
            self,
            "DataKey",
            description=f"{config.name}: network logs at rest",
            removal_policy=removal,
        ).key
        self.network = AgentVpc(
            self,
            "Network",
            props=AgentVpcProps(
                max_azs=container.max_azs,
                nat_gateways=container.nat_gateways,
                interface_endpoints=interface_endpoints(config),
                flow_log_retention=log_retention(config),
                encryption_key=data_key,
                removal_policy=removal,
            ),
        )

    @property
    def availability_zones(self) -> list[str]:
        return deploy_time_azs(self._max_azs)
