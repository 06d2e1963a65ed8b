"""One CloudWatch dashboard per pattern stack, built with cdk-monitoring-constructs.

The library lays out the usual widgets per resource (API Gateway latency p50/p90/p99, 4xx/5xx;
Lambda duration, errors, throttles; SQS depth and oldest-message age, DLQ; ECS CPU and memory,
ALB latency and 5xx; ElastiCache CPU and memory) from the construct objects, so the metric
dimensions are right by construction. It creates no alarms here: the alarms are explicit
(constructs/function_alarms.py, task_queue.py, ``CostPerHourAlarm``) and notify the alert topic.
Each dashboard ends with the LLM usage the runtime writes (runtime/observability/usage.py).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from cdk_monitoring_constructs import (
    CustomMetricGroup,
    DashboardRenderingPreference,
    DefaultDashboardFactory,
    ElastiCacheClusterType,
    MonitoringFacade,
)

from constructs import Construct
from constructs.cost_alerts import LlmUsageMetrics

# What a dashboard opens on; anyone can widen it in the console.
DASHBOARD_RANGE = Duration.hours(24)


class PatternDashboard(Construct):
    """``self.dashboard``: one interactive dashboard named ``name``; ``self.monitoring`` is the
    cdk-monitoring-constructs facade the ``monitor_*`` methods add sections through."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str) -> None:
        super().__init__(scope, construct_id)
        factory = DefaultDashboardFactory(
            self,
            "Factory",
            dashboard_name_prefix=name,
            # One dashboard: the library's summary and alarm dashboards would triple the cost.
            create_dashboard=True,
            create_summary_dashboard=False,
            create_alarm_dashboard=False,
            # Interactive only: the bitmap variant duplicates every graph as a second widget.
            rendering_preference=DashboardRenderingPreference.INTERACTIVE_ONLY,
            detail_dashboard_range=DASHBOARD_RANGE,
        )
        self.monitoring = MonitoringFacade(self, "Monitoring", dashboard_factory=factory)
        dashboard = factory.dashboard
        if dashboard is None:  # create_dashboard=True above
            raise RuntimeError("cdk-monitoring-constructs created no dashboard")
        self.dashboard: cloudwatch.Dashboard = dashboard

    def header(self, text: str) -> None:
        self.monitoring.add_large_header(text)

    def lambda_function(self, function: lambda_.IFunction, name: str) -> None:
        self.monitoring.monitor_lambda_function(lambda_function=function, human_readable_name=name)

    def rest_api(self, api: apigateway.RestApi, name: str) -> None:
        self.monitoring.monitor_api_gateway(
            api=api, api_stage=api.deployment_stage.stage_name, human_readable_name=name
        )

    def table(self, table: dynamodb.ITable, name: str) -> None:
        self.monitoring.monitor_dynamo_table(table=table, human_readable_name=name)

    def queue(self, queue: sqs.IQueue, dlq: sqs.IQueue, name: str) -> None:
        self.monitoring.monitor_sqs_queue_with_dlq(
            queue=queue, dead_letter_queue=dlq, human_readable_name=name
        )

    def fargate_service(self, service: ecs.FargateService, name: str) -> None:
        """CPU and memory (average and p100), running and desired tasks."""
        self.monitoring.monitor_simple_fargate_service(
            fargate_service=service, human_readable_name=name
        )

    def fargate_behind_load_balancer(
        self,
        service: ecs.FargateService,
        name: str,
        *,
        load_balancer: elbv2.IApplicationLoadBalancer,
        target_group: elbv2.IApplicationTargetGroup,
    ) -> None:
        """The service's CPU and memory plus its load balancer: latency p50/p90/p99, 5xx,
        healthy and unhealthy targets."""
        self.monitoring.monitor_fargate_application_load_balancer(
            fargate_service=service,
            application_load_balancer=load_balancer,
            application_target_group=target_group,
            human_readable_name=name,
        )
        # The library's load balancer section shows task health and traffic only: latency and
        # errors as the client sees them are added here.
        metrics = load_balancer.metrics
        self.monitoring.monitor_custom(
            alarm_friendly_name=f"{name.replace(' ', '')}LoadBalancer",
            human_readable_name=f"{name}: load balancer",
            metric_groups=[
                CustomMetricGroup(
                    title="Target response time (seconds)",
                    metrics=[
                        metrics.target_response_time(statistic="p50", label="p50"),
                        metrics.target_response_time(statistic="p99", label="p99"),
                    ],
                ),
                CustomMetricGroup(
                    title="5xx responses",
                    metrics=[
                        metrics.http_code_elb(
                            code=elbv2.HttpCodeElb.ELB_5XX_COUNT,
                            statistic="Sum",
                            label="from the load balancer (no healthy target, timeouts)",
                        ),
                        metrics.http_code_target(
                            code=elbv2.HttpCodeTarget.TARGET_5XX_COUNT,
                            statistic="Sum",
                            label="from the service",
                        ),
                    ],
                ),
            ],
        )

    def redis(self, replication_group: elasticache.CfnReplicationGroup, nodes: int) -> None:
        # ElastiCache publishes per node; a replication group's nodes are <group id>-001, -002...
        for index in range(1, nodes + 1):
            self.monitoring.monitor_elasti_cache_cluster(
                cluster_type=ElastiCacheClusterType.REDIS,
                cluster_id=f"{replication_group.ref}-{index:03d}",
                human_readable_name=f"Session cache node {index}",
                alarm_friendly_name=f"SessionCacheNode{index}",
            )

    def llm_usage(self, usage: LlmUsageMetrics) -> None:
        self.monitoring.monitor_custom(
            alarm_friendly_name="LlmUsage",
            human_readable_name=(
                f"LLM usage of {usage.model_id} (the whole deployment: every pattern's calls)"
            ),
            metric_groups=[
                CustomMetricGroup(
                    title="Tokens per 5 minutes",
                    metrics=[usage.input_tokens(), usage.output_tokens()],
                ),
                CustomMetricGroup(
                    title="Estimated cost per 5 minutes (USD, costs/prices.yaml)",
                    metrics=[usage.estimated_cost()],
                ),
            ],
        )
