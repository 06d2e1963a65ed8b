"""Cost alerts for one deployment: a monthly budget and anomaly detection, mailed to people.

Its own stack: it holds no data and references no other stack, so it can be deployed first
(before anything costs money) and kept when the agent stacks are destroyed and redeployed.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack

from config.model import DeploymentConfig
from constructs import Construct
from constructs.cost_alerts import (
    CostAlertTopic,
    CostAnomalyAlerts,
    CostAnomalyAlertsProps,
    MonthlyBudget,
    MonthlyBudgetProps,
)
from stacks.shared import removal_policy


class CostStack(Stack):
    """``self.alerts`` (topic and key), ``self.budget``, ``self.anomalies``."""

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
            description=f"{config.name}: cost alerts (monthly budget, cost anomaly detection)",
        )
        self.alerts = CostAlertTopic(
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
        CfnOutput(self, "AlertTopicArn", value=self.alerts.topic.topic_arn)
