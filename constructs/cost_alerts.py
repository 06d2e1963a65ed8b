"""Cost alerts: an encrypted SNS topic that AWS Budgets and Cost Anomaly Detection publish to,
a monthly cost budget, and an anomaly monitor with its subscription."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_ce as ce
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions

from constructs import Construct
from constructs.acknowledgements import acknowledge_nag
from constructs.secure_defaults import (
    BUDGET_ACTUAL_PERCENT,
    BUDGET_FORECAST_PERCENT,
    COST_ALERT_PUBLISHERS,
    KMS_KEY_ROTATION,
    KMS_PENDING_WINDOW,
    TOPIC_ENFORCE_SSL,
)


class CostAlertTopic(Construct):
    """``self.topic``: encrypted with ``self.key``; only AWS Budgets and Cost Anomaly Detection
    of this account may publish (``self.topic_policy``), over TLS; every address in ``emails``
    is subscribed."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        emails: tuple[str, ...],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        publishers = [iam.ServicePrincipal(service) for service in COST_ALERT_PUBLISHERS]
        # Confused-deputy guard: the services publish on behalf of this account only.
        this_account = {"StringEquals": {"aws:SourceAccount": stack.account}}
        self.key = kms.Key(
            self,
            "Key",
            description=f"{stack.stack_name}: cost alert topic at rest",
            enable_key_rotation=KMS_KEY_ROTATION,
            pending_window=KMS_PENDING_WINDOW,
            removal_policy=removal_policy,
        )
        # Publishing to an encrypted topic makes the publisher's service call KMS for a data key.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CostAlertServicesEncrypt",
                principals=publishers,
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
                conditions=this_account,
            )
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=TOPIC_ENFORCE_SSL)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CostAlertServicesPublish",
                principals=publishers,
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=this_account,
            )
        )
        # The topic policy's resource, which the budget and the anomaly subscription wait for.
        self.topic_policy = self.topic.node.find_child("Policy")
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        # On the topic, so it covers one subscription per configured address.
        acknowledge_nag(
            self.topic,
            "Serverless-SNSRedrivePolicy",
            _EMAIL_REDRIVE_REASON,
        )


_EMAIL_REDRIVE_REASON = (
    "the topic's only subscriptions are email addresses from config operations.alert_emails; an "
    "alert that mail delivery drops would sit in a dead-letter queue nobody reads, while the "
    "budget and every anomaly stay listed in the Billing console"
)


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
