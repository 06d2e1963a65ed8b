"""A VPC for the container pattern: three subnet tiers, flow logs, and the endpoints it needs."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from constructs import Construct
from constructs.secure_defaults import (
    APP_SUBNET_MASK,
    DATA_SUBNET_MASK,
    FLOW_LOG_TRAFFIC,
    GATEWAY_ENDPOINTS,
    PUBLIC_SUBNET_MASK,
    RESTRICT_DEFAULT_SECURITY_GROUP,
    VPC_CIDR,
)


@dataclass(frozen=True)
class AgentVpcProps:
    max_azs: int
    """Subnets in this many AZs; the stack decides which AZs (``Stack.availability_zones``)."""
    nat_gateways: int
    """0: the app subnets are isolated and reach AWS only through ``interface_endpoints``."""
    interface_endpoints: tuple[ec2.InterfaceVpcEndpointAwsService, ...]
    flow_log_retention: logs.RetentionDays
    encryption_key: kms.IKey
    removal_policy: RemovalPolicy


class AgentVpc(Construct):
    """``self.vpc`` with public, app and data subnets; flow logs; gateway and interface endpoints.

    ``self.app_subnets`` (tasks) route to a NAT gateway, or nowhere when there is none;
    ``self.data_subnets`` (the session cache) never route out. Interface endpoints admit nobody
    until the stack calls ``allow_endpoints_from`` for the security groups that use them.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: AgentVpcProps) -> None:
        super().__init__(scope, construct_id)
        if props.nat_gateways > props.max_azs:
            raise ValueError(
                f"AgentVpcProps.nat_gateways ({props.nat_gateways}) cannot exceed max_azs "
                f"({props.max_azs}): there is at most one NAT gateway per AZ"
            )
        if props.nat_gateways == 0 and not props.interface_endpoints:
            raise ValueError(
                "AgentVpcProps.interface_endpoints is empty while nat_gateways is 0: the tasks "
                "could reach no AWS API at all (image pull, logs, secrets)"
            )
        app_type = (
            ec2.SubnetType.PRIVATE_WITH_EGRESS
            if props.nat_gateways
            else ec2.SubnetType.PRIVATE_ISOLATED
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=props.max_azs,
            nat_gateways=props.nat_gateways,
            restrict_default_security_group=RESTRICT_DEFAULT_SECURITY_GROUP,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=PUBLIC_SUBNET_MASK
                ),
                ec2.SubnetConfiguration(
                    name="app", subnet_type=app_type, cidr_mask=APP_SUBNET_MASK
                ),
                ec2.SubnetConfiguration(
                    name="data",
                    subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                    cidr_mask=DATA_SUBNET_MASK,
                ),
            ],
        )
        self.app_subnets = ec2.SubnetSelection(subnet_group_name="app")
        self.data_subnets = ec2.SubnetSelection(subnet_group_name="data")
        self.public_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)

        self.flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=props.flow_log_retention,
            encryption_key=props.encryption_key,
            removal_policy=props.removal_policy,
        )
        stack = Stack.of(self)
        flow_log_role = iam.Role(
            self,
            "FlowLogRole",
            # Only flow logs of this account may assume it (confused-deputy protection).
            assumed_by=iam.ServicePrincipal("vpc-flow-logs.amazonaws.com").with_conditions(
                {
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": (
                            f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}:"
                            "vpc-flow-log/*"
                        )
                    },
                }
            ),
            description="VPC flow logs: writes to the VPC's own flow log group",
        )
        flow_log_role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self.flow_log_group.log_group_arn],
            )
        )
        # The L1 resource: CDK's FlowLog construct adds acknowledgements of its own to CDK's
        # template validation, which this repository's allow-list would then have to carry.
        self.flow_log = ec2.CfnFlowLog(
            self,
            "FlowLog",
            resource_id=self.vpc.vpc_id,
            resource_type="VPC",
            traffic_type=FLOW_LOG_TRAFFIC,
            log_destination_type="cloud-watch-logs",
            log_group_name=self.flow_log_group.log_group_name,
            deliver_logs_permission_arn=flow_log_role.role_arn,
        )

        for service in GATEWAY_ENDPOINTS:
            self.vpc.add_gateway_endpoint(
                _endpoint_id(service.name),
                service=service,
                subnets=[self.app_subnets],
            )
        # One security group for every interface endpoint: HTTPS in from the task groups the
        # stack admits, nothing out (an endpoint never opens connections).
        self.endpoint_security_group = (
            ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=self.vpc,
                description="VPC interface endpoints: HTTPS from the tasks only",
                allow_all_outbound=False,
            )
            if props.interface_endpoints
            else None
        )
        self.interface_endpoints = [
            self.vpc.add_interface_endpoint(
                _endpoint_id(service.short_name),
                service=service,
                subnets=self.app_subnets,
                private_dns_enabled=True,
                security_groups=[self.endpoint_security_group]
                if self.endpoint_security_group
                else None,
                open=False,
            )
            for service in props.interface_endpoints
        ]

    def allow_endpoints_from(self, *peers: ec2.IConnectable) -> None:
        """Let ``peers`` reach every interface endpoint (HTTPS)."""
        if self.endpoint_security_group is None:
            return
        for peer in peers:
            description = "tasks call AWS APIs through the VPC endpoints"
            if isinstance(peer, Construct) and Stack.of(peer) is not Stack.of(self):
                # A peer in another stack opens the path from its side: both rules then live in
                # its stack, and this VPC's stack does not reference the stacks that use it.
                peer.connections.allow_to(
                    self.endpoint_security_group, ec2.Port.tcp(443), description
                )
            else:
                self.endpoint_security_group.connections.allow_from(
                    peer, ec2.Port.tcp(443), description
                )


def _endpoint_id(service_name: str) -> str:
    # "com.amazonaws.eu-west-1.dynamodb" or "ecr.dkr" -> "DynamodbEndpoint", "EcrDkrEndpoint"
    short = service_name.rsplit(".", 1)[-1] if service_name.startswith("com.") else service_name
    words = short.replace("-", ".").split(".")
    return "".join(word.capitalize() for word in words) + "Endpoint"
