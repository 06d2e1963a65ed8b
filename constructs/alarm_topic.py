"""The deployment's alert topic: one KMS-encrypted SNS topic for every alarm and cost alert.

AWS Budgets, Cost Anomaly Detection and CloudWatch alarms (of this account only) publish to it;
the people in ``operations.alert_emails`` are subscribed. The ``<name>-cost`` stack owns it and
``stacks/composition.py`` adds :class:`AlarmNotifications` with it, as an object, to every stack
of the deployment in the topic's region, so every CloudWatch alarm notifies the topic.
"""

from __future__ import annotations

from collections.abc import Iterable

import jsii
from aws_cdk import Aspects, IAspect, RemovalPolicy, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions

from constructs import Construct, IConstruct
from constructs.acknowledgements import acknowledge_nag
from constructs.secure_defaults import (
    ALERT_TOPIC_PUBLISHERS,
    KMS_KEY_ROTATION,
    KMS_PENDING_WINDOW,
    TOPIC_ENFORCE_SSL,
)


class AlertTopic(Construct):
    """``self.topic``: encrypted with ``self.key``; only the services in
    ``ALERT_TOPIC_PUBLISHERS`` (Budgets, Cost Anomaly Detection, CloudWatch) publish, for this
    account only and over TLS (``self.topic_policy``); every address in ``emails`` is
    subscribed. :meth:`allow_service` admits one more AWS service (AWS Backup, say)."""

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
        self._account = stack.account
        self.key = kms.Key(
            self,
            "Key",
            description=f"{stack.stack_name}: alert topic at rest",
            enable_key_rotation=KMS_KEY_ROTATION,
            pending_window=KMS_PENDING_WINDOW,
            removal_policy=removal_policy,
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=TOPIC_ENFORCE_SSL)
        self._allow("AlertPublishers", ALERT_TOPIC_PUBLISHERS)
        # The topic policy's resource, which the budget and the anomaly subscription wait for
        # (both services check at creation that they may publish).
        self.topic_policy = self.topic.node.find_child("Policy")
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        # On the topic, so it covers one subscription per configured address.
        acknowledge_nag(self.topic, "Serverless-SNSRedrivePolicy", _EMAIL_REDRIVE_REASON)

    def allow_service(self, service: str) -> None:
        """Let ``service`` (``"backup.amazonaws.com"``) publish on behalf of this account."""
        name = "".join(part.capitalize() for part in service.split(".")[0].split("-"))
        self._allow(name, (service,))

    def _allow(self, sid: str, services: tuple[str, ...]) -> None:
        principals = [iam.ServicePrincipal(service) for service in services]
        # Confused-deputy guard: the services publish on behalf of this account only.
        this_account = {"StringEquals": {"aws:SourceAccount": self._account}}
        # Publishing to an encrypted topic makes the publisher's service call KMS for a data key.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"{sid}Encrypt",
                principals=principals,
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
                conditions=this_account,
            )
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"{sid}Publish",
                principals=principals,
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=this_account,
            )
        )


# Node metadata type marking an alarm that drives automation only (see exempt_from_alerts).
_EXEMPT = "agent:alert-topic-exempt"


def exempt_from_alerts(alarm: cloudwatch.Alarm, reason: str) -> None:
    """Keep ``alarm`` off the alert topic: it drives automation (a scaling step), and its
    ALARM state is routine, not a problem for a person. ``reason`` says why, for reviewers."""
    if len(reason) < 25:
        raise ValueError("exempt_from_alerts: give a specific reason (at least 25 characters)")
    alarm.node.add_metadata(_EXEMPT, reason)


def is_exempt(alarm: Construct) -> bool:
    return any(entry.type == _EXEMPT for entry in alarm.node.metadata)


@jsii.implements(IAspect)
class AlarmNotifications:
    """Sends the ALARM and OK transitions of every CloudWatch alarm below the scope it is added
    to (``Aspects.of(stack).add(...)``) to ``topic``, except :func:`exempt_from_alerts` ones.

    An aspect, applied by ``stacks/composition.py`` to each stack of the deployment, so an alarm
    any construct adds, now or later, notifies people without each stack wiring it; the
    infrastructure tests assert every alarm has the action. The OK action tells whoever was
    paged that the problem cleared. The topic must be in the alarm's region (CloudWatch cannot
    notify a topic in another region): composition applies it to same-region stacks only.
    """

    def __init__(self, topic: sns.ITopic) -> None:
        self._action = cloudwatch_actions.SnsAction(topic)
        self._done: set[str] = set()

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, cloudwatch.Alarm) or is_exempt(node):
            return
        path = node.node.path
        if path in self._done:
            return
        self._done.add(path)
        node.add_alarm_action(self._action)
        node.add_ok_action(self._action)


def add_alarm_notifications(stacks: Iterable[Stack], topic: sns.ITopic) -> list[Stack]:
    """Add :class:`AlarmNotifications` for ``topic`` to each of ``stacks`` in the topic's region;
    the stacks it covers. A stack in another region (the us-east-1 edge stack, a disaster-recovery
    standby) keeps its alarms without actions: CloudWatch cannot notify a topic in another region.
    """
    aspect = AlarmNotifications(topic)
    covered = []
    for stack in stacks:
        if _same_region(stack, Stack.of(topic)):
            Aspects.of(stack).add(aspect)
            covered.append(stack)
    return covered


def _same_region(a: Stack, b: Stack) -> bool:
    # Environment-agnostic stacks (region unresolved) of one app deploy to the same region.
    if Token.is_unresolved(a.region) or Token.is_unresolved(b.region):
        return Token.is_unresolved(a.region) and Token.is_unresolved(b.region)
    return a.region == b.region


_EMAIL_REDRIVE_REASON = (
    "the topic's only subscriptions are email addresses from config operations.alert_emails; an "
    "alert that mail delivery drops would sit in a dead-letter queue nobody reads, while every "
    "alarm stays visible in the CloudWatch console and the budget in the Billing console"
)
