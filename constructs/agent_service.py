"""The agent service: a public ALB in front of a Fargate service that scales on load and time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, TimeZone
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2

from constructs import Construct
from constructs.access_log_bucket import AccessLogBucket
from constructs.container_task import ContainerTask, hardened_fargate_service
from constructs.secure_defaults import (
    ALB_DROP_INVALID_HEADERS,
    ALB_SSL_POLICY,
    HEALTH_CHECK_GRACE_PERIOD,
    SCALE_IN_COOLDOWN,
    SCALE_OUT_COOLDOWN,
    TARGET_HEALTH_CHECK_INTERVAL,
    TARGET_HEALTH_CHECK_PATH,
    TARGET_HEALTH_CHECK_TIMEOUT,
)

HTTP_PORT = 80
HTTPS_PORT = 443


@dataclass(frozen=True)
class ScheduledCapacity:
    """From ``schedule`` (``cron(...)`` or ``at(...)``) on, the task count stays in min-max."""

    name: str
    schedule: str
    min_capacity: int
    max_capacity: int
    time_zone: str = "UTC"


@dataclass(frozen=True)
class AgentServiceProps:
    cluster: ecs.ICluster
    task: ContainerTask
    container_port: int
    vpc: ec2.IVpc
    task_subnets: ec2.SubnetSelection
    load_balancer_subnets: ec2.SubnetSelection
    certificate_arn: str | None
    """HTTPS on 443 with this ACM certificate and HTTP redirecting to it; None: plain HTTP."""
    ingress_cidrs: Sequence[str]
    idle_timeout: Duration
    deregistration_delay: Duration
    deletion_protection: bool
    access_logs: AccessLogBucket
    min_capacity: int
    max_capacity: int
    cpu_target_percent: int
    memory_target_percent: int
    requests_per_target: int
    schedules: Sequence[ScheduledCapacity] = ()


class AgentService(Construct):
    """``self.load_balancer`` -> ``self.target_group`` -> ``self.service`` (``self.scaling``).

    The tasks' security group (``self.security_group``) admits only the load balancer, on the
    container port, and allows no egress: the stack opens what the tasks call. Deployments keep
    100% of the tasks healthy, start new ones first, and roll back when new tasks keep failing.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: AgentServiceProps) -> None:
        super().__init__(scope, construct_id)
        if props.min_capacity < 1 or props.min_capacity > props.max_capacity:
            raise ValueError(
                f"AgentServiceProps: need 1 <= min_capacity <= max_capacity (got "
                f"{props.min_capacity}, {props.max_capacity}); the load balancer needs a target"
            )
        if props.deregistration_delay.to_seconds() > props.task.stop_timeout.to_seconds():
            raise ValueError(
                "AgentServiceProps.deregistration_delay must not exceed the container's stop "
                "timeout: connections still draining at the load balancer would be killed"
            )
        self.security_group = ec2.SecurityGroup(
            self,
            "TasksSecurityGroup",
            vpc=props.vpc,
            description="Agent service tasks: inbound from the load balancer only",
            allow_all_outbound=False,
        )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=props.vpc,
            vpc_subnets=props.load_balancer_subnets,
            internet_facing=True,
            idle_timeout=props.idle_timeout,
            drop_invalid_header_fields=ALB_DROP_INVALID_HEADERS,
            deletion_protection=props.deletion_protection,
        )
        props.access_logs.log_access_of(self.load_balancer, prefix="alb")
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "Targets",
            vpc=props.vpc,
            port=props.container_port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=props.deregistration_delay,
            health_check=elbv2.HealthCheck(
                path=TARGET_HEALTH_CHECK_PATH,
                interval=TARGET_HEALTH_CHECK_INTERVAL,
                timeout=TARGET_HEALTH_CHECK_TIMEOUT,
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
                healthy_http_codes="200",
            ),
        )
        if props.certificate_arn is not None:
            self.listener = self.load_balancer.add_listener(
                "Https",
                port=HTTPS_PORT,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(props.certificate_arn)],
                ssl_policy=ALB_SSL_POLICY,
                default_target_groups=[self.target_group],
                open=False,
            )
            self.load_balancer.add_redirect(
                source_port=HTTP_PORT,
                source_protocol=elbv2.ApplicationProtocol.HTTP,
                target_port=HTTPS_PORT,
                target_protocol=elbv2.ApplicationProtocol.HTTPS,
                open=False,
            )
            ports: tuple[int, ...] = (HTTP_PORT, HTTPS_PORT)
            self.url = f"https://{self.load_balancer.load_balancer_dns_name}"
        else:
            self.listener = self.load_balancer.add_listener(
                "Http",
                port=HTTP_PORT,
                protocol=elbv2.ApplicationProtocol.HTTP,
                default_target_groups=[self.target_group],
                open=False,
            )
            ports = (HTTP_PORT,)
            self.url = f"http://{self.load_balancer.load_balancer_dns_name}"
        for cidr in props.ingress_cidrs:
            for port in ports:
                self.load_balancer.connections.allow_from(
                    ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), f"clients ({cidr})"
                )

        self.service = hardened_fargate_service(
            self,
            "Service",
            cluster=props.cluster,
            task=props.task,
            subnets=props.task_subnets,
            security_group=self.security_group,
            health_check_grace_period=HEALTH_CHECK_GRACE_PERIOD,
        )
        self.service.attach_to_application_target_group(self.target_group)

        self.scaling = self.service.auto_scale_task_count(
            min_capacity=props.min_capacity, max_capacity=props.max_capacity
        )
        self.scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=props.cpu_target_percent,
            scale_in_cooldown=SCALE_IN_COOLDOWN,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
        )
        self.scaling.scale_on_memory_utilization(
            "Memory",
            target_utilization_percent=props.memory_target_percent,
            scale_in_cooldown=SCALE_IN_COOLDOWN,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
        )
        self.scaling.scale_on_request_count(
            "Requests",
            requests_per_target=props.requests_per_target,
            target_group=self.target_group,
            scale_in_cooldown=SCALE_IN_COOLDOWN,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
        )
        for window in props.schedules:
            self.scaling.scale_on_schedule(
                window.name,
                schedule=appscaling.Schedule.expression(window.schedule),
                min_capacity=window.min_capacity,
                max_capacity=window.max_capacity,
                time_zone=TimeZone.of(window.time_zone),
            )
