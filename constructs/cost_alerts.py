"""Cost alerts: a monthly cost budget and an anomaly monitor with its subscription, both
publishing to the deployment's alert topic (constructs/alarm_topic.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_ce as ce
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns

from constructs import Construct
from constructs.secure_defaults import BUDGET_ACTUAL_PERCENT, BUDGET_FORECAST_PERCENT
from runtime.observability.usage import (
    ESTIMATED_COST,
    INPUT_TOKENS,
    MODEL_DIMENSION,
    OUTPUT_TOKENS,
    SERVICE_DIMENSION,
)

# Token and cost graphs: one point per 5 minutes reads well over a day.
USAGE_PERIOD = Duration.minutes(5)


@dataclass(frozen=True)
class MonthlyBudgetProps:
    limit_usd: float
    topic: sns.ITopic
    # (key, value) of a cost allocation tag; None: every cost of the account.
    cost_filter: tuple[str, str] | None
    name: str


class MonthlyBudget(Construct):
    """``self.budget``: a monthly cost budget that warns on forecast and on actual spend."""

    def __init__(self, scope: Construct, construct_id: str, *, props: MonthlyBudgetProps) -> None:
        super().__init__(scope, construct_id)
        # The topic emails everyone; listing the addresses here as well would send each alert
        # twice.
        subscribers = [
            budgets.CfnBudget.SubscriberProperty(
                address=props.topic.topic_arn, subscription_type="SNS"
            )
        ]
        notifications = [
            budgets.CfnBudget.NotificationWithSubscribersProperty(
                notification=budgets.CfnBudget.NotificationProperty(
                    notification_type=kind,
                    comparison_operator="GREATER_THAN",
                    threshold=percent,
                    threshold_type="PERCENTAGE",
                ),
                subscribers=subscribers,
            )
            # Forecast first: a warning while there is still part of the month to act in.
            for kind, percent in (
                ("FORECASTED", BUDGET_FORECAST_PERCENT),
                ("ACTUAL", BUDGET_ACTUAL_PERCENT),
            )
        ]
        cost_filters = None
        if props.cost_filter is not None:
            key, value = props.cost_filter
            # Budgets name a user-defined cost allocation tag as "user:<key>$<value>"; the tag
            # must be activated as a cost allocation tag, or nothing matches and the budget
            # stays at $0.
            cost_filters = {"TagKeyValue": [f"user:{key}${value}"]}
        self.budget = budgets.CfnBudget(
            self,
            "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=props.name,
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=props.limit_usd, unit="USD"),
                cost_filters=cost_filters,
            ),
            notifications_with_subscribers=notifications,
        )


@dataclass(frozen=True)
class CostAnomalyAlertsProps:
    threshold_usd: float
    topic: sns.ITopic
    cost_filter: tuple[str, str] | None
    name: str


class CostAnomalyAlerts(Construct):
    """``self.monitor`` and ``self.subscription``: each anomaly whose total impact reaches the
    threshold is published to the topic as soon as it is detected."""

    def __init__(
        self, scope: Construct, construct_id: str, *, props: CostAnomalyAlertsProps
    ) -> None:
        super().__init__(scope, construct_id)
        if props.cost_filter is None:
            # The whole account, per AWS service.
            self.monitor = ce.CfnAnomalyMonitor(
                self,
                "Monitor",
                monitor_name=props.name,
                monitor_type="DIMENSIONAL",
                monitor_dimension="SERVICE",
            )
        else:
            # A tag monitor watches this deployment's spend only, the same scope as the budget,
            # and several deployments can share an account without sharing alerts.
            key, value = props.cost_filter
            self.monitor = ce.CfnAnomalyMonitor(
                self,
                "Monitor",
                monitor_name=props.name,
                monitor_type="CUSTOM",
                monitor_specification=json.dumps(
                    {"Tags": {"Key": key, "Values": [value], "MatchOptions": ["EQUALS"]}}
                ),
            )
        self.subscription = ce.CfnAnomalySubscription(
            self,
            "Subscription",
            subscription_name=props.name,
            # IMMEDIATE delivers each anomaly when found; AWS allows it for SNS subscribers only.
            frequency="IMMEDIATE",
            monitor_arn_list=[self.monitor.attr_monitor_arn],
            subscribers=[
                ce.CfnAnomalySubscription.SubscriberProperty(
                    address=props.topic.topic_arn, type="SNS"
                )
            ],
            threshold_expression=json.dumps(
                {
                    "Dimensions": {
                        "Key": "ANOMALY_TOTAL_IMPACT_ABSOLUTE",
                        "MatchOptions": ["GREATER_THAN_OR_EQUAL"],
                        "Values": [_amount(props.threshold_usd)],
                    }
                }
            ),
        )


def _amount(usd: float) -> str:
    """``20.0`` as ``"20"``, ``12.5`` as ``"12.5"``: the threshold as Cost Explorer shows it."""
    return str(int(usd)) if usd.is_integer() else repr(usd)


@dataclass(frozen=True)
class LlmUsageMetrics:
    """The runtime's usage metrics of one deployment: namespace and dimension values exactly as
    ``runtime.observability.usage`` writes them (namespace and Service: the deployment name)."""

    namespace: str
    service: str
    model_id: str

    def metric(self, name: str, *, period: Duration, label: str | None) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=name,
            dimensions_map={SERVICE_DIMENSION: self.service, MODEL_DIMENSION: self.model_id},
            statistic="Sum",
            period=period,
            label=label,
        )

    def input_tokens(self, period: Duration = USAGE_PERIOD) -> cloudwatch.Metric:
        return self.metric(INPUT_TOKENS, period=period, label="input tokens")

    def output_tokens(self, period: Duration = USAGE_PERIOD) -> cloudwatch.Metric:
        return self.metric(OUTPUT_TOKENS, period=period, label="output tokens")

    def estimated_cost(self, period: Duration = USAGE_PERIOD) -> cloudwatch.Metric:
        return self.metric(ESTIMATED_COST, period=period, label="estimated cost (USD)")


@dataclass(frozen=True)
class CostPerHourAlarmProps:
    usage: LlmUsageMetrics
    threshold_usd: float


class CostPerHourAlarm(Construct):
    """``self.alarm``: the runtime's estimated model spend (EstimatedCostUSD, summed over one
    hour) reached the threshold. Budgets and anomaly detection see the bill hours to a day
    late; this sees a runaway loop or a leaked key within the hour.

    No data (idle) is healthy. The metric is the exact namespace, name and dimension set the
    runtime writes (``LlmUsageMetrics``): a different dimension set would never fire.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, props: CostPerHourAlarmProps
    ) -> None:
        super().__init__(scope, construct_id)
        # No label: a labelled metric makes CloudFormation's alarm a metric-math one.
        metric = props.usage.metric(ESTIMATED_COST, period=Duration.hours(1), label=None)
        self.alarm = metric.create_alarm(
            self,
            "Alarm",
            threshold=props.threshold_usd,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"Estimated LLM spend of {props.usage.model_id} reached "
                f"${_amount(props.threshold_usd)} in one hour (runtime EstimatedCostUSD, "
                "costs/prices.yaml prices): look for a looping agent or unexpected traffic"
            ),
        )
