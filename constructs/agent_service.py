"""The agent service: a public ALB in front of a Fargate service that scales on load and time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from aws_cdk import Duration, Names, Stack, TimeZone
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam

from constructs import Construct
from constructs.access_log_bucket import AccessLogBucket
from constructs.acknowledgements import acknowledge_nag
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
class ServiceRelease:
    """How the service takes a new task definition, and the alarms that roll it back.

    Rolling (``blue_green`` False): new tasks join the one target group while old ones drain.
    Blue/green: ECS starts a full green fleet in the other target group, switches the
    production listener rule to it, and keeps blue for ``bake_time``; a deployment alarm in
    that time (or the circuit breaker) switches traffic straight back to blue.
    """

    blue_green: bool
    bake_time: Duration
    errors_per_period: int
    """5xx responses (targets' and the load balancer's own) per period that roll back."""
    p99_response_ms: int
    period: Duration


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
    release: ServiceRelease | None = None
    """None: rolling with the circuit breaker only, and no rollback alarms."""


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
        self._props = props
        self.target_group = self._target_group("Targets")
        blue_green = props.release is not None and props.release.blue_green
        # Blue/green: the fleet ECS deploys next registers here, then traffic switches to it.
        self.green_target_group = self._target_group("GreenTargets") if blue_green else None
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
            deployment_strategy=ecs.DeploymentStrategy.BLUE_GREEN if blue_green else None,
            bake_time=props.release.bake_time if blue_green and props.release else None,
        )
        self.production_rule: elbv2.ApplicationListenerRule | None = None
        if self.green_target_group is not None:
            self._attach_blue_green(self.green_target_group)
        else:
            self.service.attach_to_application_target_group(self.target_group)
        self.rollback_alarms: list[cloudwatch.Alarm] = []
        if props.release is not None:
            self.rollback_alarms = self._rollback_alarms(props.release)
            self.service.enable_deployment_alarms(
                # The literal names (the L1's), not alarm_name's Ref: see _rollback_alarms.
                [
                    cast(cloudwatch.CfnAlarm, alarm.node.default_child).alarm_name or ""
                    for alarm in self.rollback_alarms
                ],
                behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM,
            )

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
        if self.green_target_group is None:
            self.scaling.scale_on_request_count(
                "Requests",
                requests_per_target=props.requests_per_target,
                target_group=self.target_group,
                scale_in_cooldown=SCALE_IN_COOLDOWN,
                scale_out_cooldown=SCALE_OUT_COOLDOWN,
            )
        else:
            self._scale_on_requests_of_both(self.green_target_group)
        for window in props.schedules:
            self.scaling.scale_on_schedule(
                window.name,
                schedule=appscaling.Schedule.expression(window.schedule),
                min_capacity=window.min_capacity,
                max_capacity=window.max_capacity,
                time_zone=TimeZone.of(window.time_zone),
            )

    def _target_group(self, construct_id: str) -> elbv2.ApplicationTargetGroup:
        props = self._props
        return elbv2.ApplicationTargetGroup(
            self,
            construct_id,
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

    def _attach_blue_green(self, green: elbv2.ApplicationTargetGroup) -> None:
        """ECS-native blue/green: a production rule whose weights ECS moves between the groups.

        The rule matches every request, so the listener's default action (blue) only answers
        while the stack is first created; ECS owns the weights from the first deployment on.
        """
        blue = self.target_group
        self.production_rule = elbv2.ApplicationListenerRule(
            self,
            "ProductionRule",
            listener=self.listener,
            priority=1,
            conditions=[elbv2.ListenerCondition.path_patterns(["*"])],
            action=elbv2.ListenerAction.weighted_forward(
                [
                    elbv2.WeightedTargetGroup(target_group=blue, weight=1),
                    elbv2.WeightedTargetGroup(target_group=green, weight=0),
                ]
            ),
        )
        # ECS moves the rule's weights and registers tasks in either group with this role;
        # scoped to this listener, rule and the two groups (the AWS-managed
        # AmazonECSInfrastructureRolePolicyForLoadBalancers spans every load balancer).
        role = iam.Role(
            self,
            "BlueGreenRole",
            assumed_by=iam.ServicePrincipal("ecs.amazonaws.com"),
            description="ECS blue/green: switches the agent service's listener rule",
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "elasticloadbalancing:DescribeListeners",
                    "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeTargetGroups",
                    "elasticloadbalancing:DescribeTargetHealth",
                ],
                resources=["*"],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "elasticloadbalancing:RegisterTargets",
                    "elasticloadbalancing:DeregisterTargets",
                ],
                resources=[blue.target_group_arn, green.target_group_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["elasticloadbalancing:ModifyRule"],
                resources=[self.production_rule.listener_rule_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["elasticloadbalancing:ModifyListener"],
                resources=[self.listener.listener_arn],
            )
        )
        acknowledge_nag(
            role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5[Resource::*]",
            "the Elastic Load Balancing Describe* actions have no resource-level permissions "
            "(AWS documents Resource * as the only option); every change is scoped to this "
            "listener, its production rule and the two target groups",
        )
        target = self.service.load_balancer_target(
            container_name=self._props.task.container.container_name,
            container_port=self._props.container_port,
            alternate_target=ecs.AlternateTarget(
                "AlternateTarget",
                alternate_target_group=green,
                production_listener=ecs.ListenerRuleConfiguration.application_listener_rule(
                    self.production_rule
                ),
                role=role,
            ),
        )
        target.attach_to_application_target_group(blue)
        # ECS checks at creation that both groups sit behind the listener (through the rule)
        # and that it may use the role.
        self.service.node.add_dependency(self.production_rule, role)

    def _rollback_alarms(self, release: ServiceRelease) -> list[cloudwatch.Alarm]:
        """5xx and p99 response time at the load balancer: whichever fleet takes traffic."""
        metrics = self.load_balancer.metrics
        # Named, not left to CloudFormation: the service refers to its deployment alarms by name,
        # and a generated name would be a Ref that CDK warns can close a dependency cycle.
        prefix = Stack.of(self).stack_name
        errors = cloudwatch.Alarm(
            self,
            "Deployment5xx",
            alarm_name=f"{prefix}-service-deployment-5xx",
            metric=cloudwatch.MathExpression(
                expression="FILL(target, 0) + FILL(balancer, 0)",
                using_metrics={
                    "target": metrics.http_code_target(
                        elbv2.HttpCodeTarget.TARGET_5XX_COUNT,
                        period=release.period,
                        statistic="Sum",
                    ),
                    "balancer": metrics.http_code_elb(
                        elbv2.HttpCodeElb.ELB_5XX_COUNT, period=release.period, statistic="Sum"
                    ),
                },
                period=release.period,
                label="5xx responses (tasks and load balancer)",
            ),
            threshold=release.errors_per_period,
            # One period: a rollback has to decide inside the bake time.
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            alarm_description="Agent service 5xx responses; rolls an ECS deployment back",
        )
        latency = cloudwatch.Alarm(
            self,
            "DeploymentP99Response",
            alarm_name=f"{prefix}-service-deployment-p99",
            metric=metrics.target_response_time(period=release.period, statistic="p99"),
            # TargetResponseTime is in seconds.
            threshold=release.p99_response_ms / 1000,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            alarm_description="Agent service p99 response time; rolls an ECS deployment back",
        )
        return [errors, latency]

    def _scale_on_requests_of_both(self, green: elbv2.ApplicationTargetGroup) -> None:
        """Requests per task over both target groups, whichever holds the live fleet.

        ALBRequestCountPerTarget names one target group, which after a blue/green switch has no
        traffic, and scaling would fall to the minimum. The sum of both groups' per-target
        counts is the live group's (the idle one reports nothing). CDK's target tracking takes
        a plain metric only; metric math needs the L1 policy.
        """
        balancer = self.load_balancer.load_balancer_full_name

        def per_target(
            query_id: str, group: elbv2.ApplicationTargetGroup
        ) -> appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty:
            dimensions = {"TargetGroup": group.target_group_full_name, "LoadBalancer": balancer}
            return appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
                id=query_id,
                return_data=False,
                metric_stat=appscaling.CfnScalingPolicy.TargetTrackingMetricStatProperty(
                    stat="Sum",
                    metric=appscaling.CfnScalingPolicy.TargetTrackingMetricProperty(
                        namespace="AWS/ApplicationELB",
                        metric_name="RequestCountPerTarget",
                        dimensions=[
                            appscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty(
                                name=name, value=value
                            )
                            for name, value in dimensions.items()
                        ],
                    ),
                ),
            )

        scalable_target = self.scaling.node.find_child("Target")
        assert isinstance(scalable_target, appscaling.ScalableTarget)
        appscaling.CfnScalingPolicy(
            self,
            "Requests",
            policy_name=f"{Names.unique_id(self)}Requests",
            policy_type="TargetTrackingScaling",
            scaling_target_id=scalable_target.scalable_target_id,
            target_tracking_scaling_policy_configuration=appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(self._props.requests_per_target),
                scale_in_cooldown=int(SCALE_IN_COOLDOWN.to_seconds()),
                scale_out_cooldown=int(SCALE_OUT_COOLDOWN.to_seconds()),
                customized_metric_specification=appscaling.CfnScalingPolicy.CustomizedMetricSpecificationProperty(
                    metrics=[
                        per_target("blue", self.target_group),
                        per_target("green", green),
                        appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
                            id="requests_per_task",
                            expression="FILL(blue, 0) + FILL(green, 0)",
                            label="Requests per task (live target group)",
                            return_data=True,
                        ),
                    ]
                ),
            ),
        )  # fmt: skip
