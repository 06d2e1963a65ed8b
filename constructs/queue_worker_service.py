"""A Fargate service that consumes an SQS queue, scaled on the queue's backlog per running task."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Names, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs

from constructs import Construct
from constructs.alarm_topic import exempt_from_alerts
from constructs.container_task import ContainerTask, hardened_fargate_service
from constructs.secure_defaults import (
    SCALE_IN_COOLDOWN,
    SCALE_OUT_COOLDOWN,
)

# Application Auto Scaling's service-linked role for ECS (created by AWS on first use).
_SCALING_ROLE = (
    "role/aws-service-role/ecs.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_ECSService"
)
_ONE_MINUTE = Duration.minutes(1)
# Long enough for a started task to pull its image and show up as running.
_START_COOLDOWN = Duration.seconds(120)


@dataclass(frozen=True)
class QueueWorkerServiceProps:
    cluster: ecs.ICluster
    task: ContainerTask
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    queue: sqs.IQueue
    """The queue the tasks consume; its backlog drives the scaling."""
    min_capacity: int
    """0 is allowed: a start-from-zero policy starts one task when messages wait."""
    max_capacity: int
    backlog_per_task: int


class QueueWorkerService(Construct):
    """``self.service`` with ``self.scalable_target`` tracking messages waiting per task.

    Target tracking keeps ``ApproximateNumberOfMessagesVisible / RunningTaskCount`` (metric math;
    RunningTaskCount is Container Insights') at ``backlog_per_task``. With no task running the
    ratio has no value, so a step policy starts one task whenever messages wait and none runs.
    Tasks protect themselves from scale-in while they hold a message (ECS task scale-in
    protection, through the agent endpoint); the stack grants the permission for that.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, props: QueueWorkerServiceProps
    ) -> None:
        super().__init__(scope, construct_id)
        if not 0 <= props.min_capacity <= props.max_capacity or props.max_capacity < 1:
            raise ValueError(
                f"QueueWorkerServiceProps: need 0 <= min_capacity <= max_capacity and "
                f"max_capacity >= 1 (got {props.min_capacity}, {props.max_capacity})"
            )
        if props.backlog_per_task < 1:
            raise ValueError("QueueWorkerServiceProps.backlog_per_task must be at least 1")
        stack = Stack.of(self)
        self.security_group = ec2.SecurityGroup(
            self,
            "TasksSecurityGroup",
            vpc=props.vpc,
            description="Queue worker tasks: no inbound; outbound opened by the stack",
            allow_all_outbound=False,
        )
        self.service = hardened_fargate_service(
            self,
            "Service",
            cluster=props.cluster,
            task=props.task,
            subnets=props.subnets,
            security_group=self.security_group,
        )
        self.scalable_target = appscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=appscaling.ServiceNamespace.ECS,
            resource_id=f"service/{props.cluster.cluster_name}/{self.service.service_name}",
            scalable_dimension="ecs:service:DesiredCount",
            min_capacity=props.min_capacity,
            max_capacity=props.max_capacity,
            role=iam.Role.from_role_arn(
                self,
                "ScalingRole",
                stack.format_arn(service="iam", region="", resource=_SCALING_ROLE),
            ),
        )
        dimensions = {
            "ClusterName": props.cluster.cluster_name,
            "ServiceName": self.service.service_name,
        }
        queue_name = props.queue.queue_name

        def query(
            query_id: str, namespace: str, metric: str, dims: dict[str, str], stat: str
        ) -> appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty:
            return appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
                id=query_id,
                return_data=False,
                metric_stat=appscaling.CfnScalingPolicy.TargetTrackingMetricStatProperty(
                    stat=stat,
                    metric=appscaling.CfnScalingPolicy.TargetTrackingMetricProperty(
                        namespace=namespace,
                        metric_name=metric,
                        dimensions=[
                            appscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty(
                                name=name, value=value
                            )
                            for name, value in dims.items()
                        ],
                    ),
                ),
            )

        # CDK's target tracking takes a plain metric only; metric math needs the L1 policy.
        self.backlog_policy = appscaling.CfnScalingPolicy(
            self,
            "BacklogPerTask",
            policy_name=f"{Names.unique_id(self)}BacklogPerTask",
            policy_type="TargetTrackingScaling",
            scaling_target_id=self.scalable_target.scalable_target_id,
            target_tracking_scaling_policy_configuration=appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(props.backlog_per_task),
                scale_out_cooldown=int(SCALE_OUT_COOLDOWN.to_seconds()),
                scale_in_cooldown=int(SCALE_IN_COOLDOWN.to_seconds()),
                customized_metric_specification=appscaling.CfnScalingPolicy.CustomizedMetricSpecificationProperty(
                    metrics=[
                        query(
                            "backlog", "AWS/SQS", "ApproximateNumberOfMessagesVisible",
                            {"QueueName": queue_name}, "Average",
                        ),
                        query(
                            "running", "ECS/ContainerInsights", "RunningTaskCount",
                            dimensions, "Average",
                        ),
                        appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty(
                            id="backlog_per_task",
                            expression="backlog / running",
                            label="Messages waiting per running task",
                            return_data=True,
                        ),
                    ]
                ),
            ),
        )  # fmt: skip

        # Start from zero: with no task running, backlog / running has no value and target
        # tracking does nothing, so this alarm starts one task when messages wait.
        start = appscaling.StepScalingAction(
            self,
            "StartFromZero",
            scaling_target=self.scalable_target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=_START_COOLDOWN,
            metric_aggregation_type=appscaling.MetricAggregationType.MAXIMUM,
        )
        start.add_adjustment(adjustment=1, lower_bound=0)
        self.start_alarm = cloudwatch.Alarm(
            self,
            "WorkWaitingWithoutTasks",
            metric=cloudwatch.MathExpression(
                expression="IF(FILL(running, 0) == 0, backlog, 0)",
                using_metrics={
                    "backlog": props.queue.metric_approximate_number_of_messages_visible(
                        period=_ONE_MINUTE, statistic="Maximum"
                    ),
                    "running": cloudwatch.Metric(
                        namespace="ECS/ContainerInsights",
                        metric_name="RunningTaskCount",
                        dimensions_map=dimensions,
                        period=_ONE_MINUTE,
                        statistic="Maximum",
                    ),
                },
                period=_ONE_MINUTE,
                label="Messages waiting while no worker task runs",
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Tasks wait in the queue and no worker runs: start one",
        )
        self.start_alarm.add_alarm_action(cloudwatch_actions.ApplicationScalingAction(start))
        exempt_from_alerts(
            self.start_alarm,
            "a scaling trigger: it fires whenever work arrives for a worker scaled to zero, "
            "which is routine; the task queue's age and DLQ alarms page when work is stuck",
        )
