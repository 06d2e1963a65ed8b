"""An SQS work queue with its dead-letter queue and the alarms that say when work is stuck."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs

from constructs import Construct
from constructs.secure_defaults import (
    DLQ_ALARM_PERIOD,
    DLQ_ALARM_THRESHOLD,
    QUEUE_DATA_KEY_REUSE,
    QUEUE_ENCRYPTION,
    QUEUE_ENFORCE_SSL,
    QUEUE_VISIBILITY_TIMEOUT_FACTOR,
)

# SQS limits: a visibility timeout of at most 12 hours; retention 1 minute to 14 days.
_MAX_VISIBILITY_TIMEOUT = Duration.hours(12)
_MAX_RETENTION = Duration.days(14)
# CloudWatch publishes SQS metrics once a minute.
_AGE_ALARM_PERIOD = Duration.minutes(1)


@dataclass(frozen=True)
class TaskQueueProps:
    purpose: str
    """What the queue carries, for alarm descriptions ("agent tasks")."""
    consumer_timeout: Duration
    """The consuming Lambda function's timeout; the visibility timeout is derived from it."""
    max_batching_window: Duration
    """The event source's batching window (zero when it has none)."""
    max_receive_count: int
    retention: Duration
    dlq_retention: Duration
    oldest_message_age_alarm: Duration
    encryption_key: kms.IKey
    removal_policy: RemovalPolicy


class TaskQueue(Construct):
    """``self.queue`` redriving to ``self.dlq``; ``self.dlq_alarm`` and ``self.age_alarm``.

    Both queues are encrypted with the given key and refuse requests without TLS. The visibility
    timeout follows AWS's guidance for Lambda event sources: at least six times the consumer's
    timeout plus the batching window. After ``max_receive_count`` receives a message moves to the
    DLQ, which keeps it longer than the source would have (SQS keeps a message's original enqueue
    time when it moves it), and alarms on the first one.
    """

    def __init__(self, scope: Construct, construct_id: str, *, props: TaskQueueProps) -> None:
        super().__init__(scope, construct_id)
        visibility_timeout = Duration.seconds(
            QUEUE_VISIBILITY_TIMEOUT_FACTOR * props.consumer_timeout.to_seconds()
            + props.max_batching_window.to_seconds()
        )
        _check(props, visibility_timeout)
        self.dlq = self._queue("Dlq", props, retention_period=props.dlq_retention)
        self.queue = self._queue(
            "Queue",
            props,
            retention_period=props.retention,
            visibility_timeout=visibility_timeout,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dlq, max_receive_count=props.max_receive_count
            ),
        )
        self.visibility_timeout = visibility_timeout

        self.dlq_alarm = self.dlq.metric_approximate_number_of_messages_visible(
            period=DLQ_ALARM_PERIOD, statistic="Maximum"
        ).create_alarm(
            self,
            "DlqAlarm",
            threshold=DLQ_ALARM_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # An empty queue publishes nothing while idle; that is the healthy state.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"Dead-lettered {props.purpose}: failed after {props.max_receive_count} receives; "
                "inspect, fix, then redrive (start-message-move-task)"
            ),
        )
        self.age_alarm = self.queue.metric_approximate_age_of_oldest_message(
            period=_AGE_ALARM_PERIOD, statistic="Maximum"
        ).create_alarm(
            self,
            "AgeAlarm",
            threshold=props.oldest_message_age_alarm.to_seconds(),
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"Oldest waiting {props.purpose} message is old: the consumer is not keeping up, "
                "failing, or throttled"
            ),
        )

    def _queue(
        self,
        queue_id: str,
        props: TaskQueueProps,
        *,
        retention_period: Duration,
        visibility_timeout: Duration | None = None,
        dead_letter_queue: sqs.DeadLetterQueue | None = None,
    ) -> sqs.Queue:
        return sqs.Queue(
            self,
            queue_id,
            encryption=QUEUE_ENCRYPTION,
            encryption_master_key=props.encryption_key,
            data_key_reuse=QUEUE_DATA_KEY_REUSE,
            enforce_ssl=QUEUE_ENFORCE_SSL,
            retention_period=retention_period,
            visibility_timeout=visibility_timeout,
            dead_letter_queue=dead_letter_queue,
            removal_policy=props.removal_policy,
        )


def _check(props: TaskQueueProps, visibility_timeout: Duration) -> None:
    """Refuse values SQS would refuse at deploy time, or that would lose messages silently."""
    if props.max_receive_count < 1:
        raise ValueError(
            f"TaskQueueProps.max_receive_count must be at least 1 (got {props.max_receive_count})"
        )
    if visibility_timeout.to_seconds() > _MAX_VISIBILITY_TIMEOUT.to_seconds():
        raise ValueError(
            f"TaskQueueProps.consumer_timeout: {QUEUE_VISIBILITY_TIMEOUT_FACTOR} x the consumer "
            f"timeout plus the batching window is {visibility_timeout.to_seconds()} s, above "
            f"SQS's 12-hour visibility limit; shorten the consumer's timeout"
        )
    for field, value in (("retention", props.retention), ("dlq_retention", props.dlq_retention)):
        if not 60 <= value.to_seconds() <= _MAX_RETENTION.to_seconds():
            raise ValueError(
                f"TaskQueueProps.{field} must be between 1 minute and 14 days "
                f"(got {value.to_seconds()} s)"
            )
    if props.dlq_retention.to_seconds() <= props.retention.to_seconds():
        raise ValueError(
            "TaskQueueProps.dlq_retention must be longer than retention: SQS keeps a message's "
            "original enqueue time in the DLQ, so a shorter DLQ retention drops it on arrival"
        )
