"""The deployment's alerts: the alert topic every alarm publishes to, a monthly budget and
anomaly detection, mailed to people.

Its own stack: it holds no data and references no other stack, so it is deployed first (before
anything costs money, and before the stacks whose alarms publish to its topic) and kept when the
agent stacks are destroyed and redeployed.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_sns as sns

from config.model import DeploymentConfig
from constructs import Construct
from constructs.alarm_topic import AlertTopic
from constructs.cost_alerts import (
    CostAnomalyAlerts,
    CostAnomalyAlertsProps,
    CostPerHourAlarm,
    CostPerHourAlarmProps,
    MonthlyBudget,
    MonthlyBudgetProps,
)
from stacks.shared import llm_usage_metrics, removal_policy


class CostStack(Stack):
    """``self.alerts`` (the deployment's alert topic and its key), ``self.budget``,
    ``self.anomalies``. ``self.alert_topic`` goes to every other stack of the deployment."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        env: Environment | None = None,
    ) -> None:
        operations = config.operations
        if operations is None:
            raise ValueError(
                "CostStack: the config has no operations section; add operations: to the config "
                "or leave this stack out"
            )
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=(
                f"{config.name}: alert topic and cost alerts (monthly budget, cost anomaly "
                "detection)"
            ),
        )
        # Construct id and children unchanged from when only cost alerts used it: no replacement.
        self.alerts = AlertTopic(
            self,
            "Alerts",
            emails=operations.alert_emails,
            removal_policy=removal_policy(config),
        )
        self.budget = MonthlyBudget(
            self,
            "Budget",
            props=MonthlyBudgetProps(
                limit_usd=operations.monthly_budget_usd,
                topic=self.alerts.topic,
                cost_filter=config.cost_filter,
                name=f"{config.name}-monthly",
            ),
        )
        self.anomalies = CostAnomalyAlerts(
            self,
            "Anomalies",
            props=CostAnomalyAlertsProps(
                threshold_usd=operations.anomaly_threshold_usd,
                topic=self.alerts.topic,
                cost_filter=config.cost_filter,
                name=f"{config.name}-spend",
            ),
        )
        # Both services check at creation that they may publish to the topic: create the topic
        # policy first (the key and its grant come before the topic, which references the key).
        self.budget.node.add_dependency(self.alerts.topic_policy)
        self.anomalies.node.add_dependency(self.alerts.topic_policy)
        self.alert_topic: sns.ITopic = self.alerts.topic
        self.cost_alarm: CostPerHourAlarm | None = None
        threshold = config.observability.cost_per_hour_alarm_usd
        usage = llm_usage_metrics(config)
        if threshold is not None and usage is not None:
            # The spend is the deployment's, whichever pattern made the calls: its alarm lives
            # with the other cost alerts.
            self.cost_alarm = CostPerHourAlarm(
                self,
                "LlmCostPerHour",
                props=CostPerHourAlarmProps(usage=usage, threshold_usd=threshold),
            )
        CfnOutput(self, "AlertTopicArn", value=self.alerts.topic.topic_arn)
