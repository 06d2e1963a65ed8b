"""CloudWatch alarms for one Lambda function: errors, throttles and p99 duration."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_

from constructs import Construct


@dataclass(frozen=True)
class FunctionAlarmProps:
    function: lambda_.IFunction
    errors_per_period: int
    throttles_per_period: int
    p99_duration_ms: int
    period: Duration
    evaluation_periods: int


class FunctionAlarms(Construct):
    """``self.errors``, ``self.throttles``, ``self.p99_duration``; ``self.alarms`` lists them.

    Missing data is "not breaching": an idle function is healthy. The stack sends them to the
    deployment's alert topic (``constructs.alarm_topic.notify``).
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: FunctionAlarmProps) -> None:
        super().__init__(scope, construct_id)
        fn = props.function
        self._props = props
        self.errors = self._alarm(
            "Errors",
            fn.metric_errors(period=props.period, statistic="Sum"),
            props.errors_per_period,
            "Agent function errors (unhandled exceptions, timeouts)",
        )
        self.throttles = self._alarm(
            "Throttles",
            fn.metric_throttles(period=props.period, statistic="Sum"),
            props.throttles_per_period,
            "Invocations rejected by reserved concurrency",
        )
        self.p99_duration = self._alarm(
            "P99Duration",
            fn.metric_duration(period=props.period, statistic="p99"),
            props.p99_duration_ms,
            "p99 duration near the timeout: the model or a tool is slow",
        )
        self.alarms: tuple[cloudwatch.Alarm, ...] = (self.errors, self.throttles, self.p99_duration)

    def _alarm(
        self, alarm_id: str, metric: cloudwatch.Metric, threshold: float, description: str
    ) -> cloudwatch.Alarm:
        return metric.create_alarm(
            self,
            alarm_id,
            threshold=threshold,
            evaluation_periods=self._props.evaluation_periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            alarm_description=description,
        )
