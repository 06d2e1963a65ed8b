"""What the two SQS-triggered handlers share: one record's outcome, and the batch response.

A record handler returns an outcome label (a metric), raises
:class:`~runtime.tasks.queues.RetryLaterError` to have its message come back after a delay (its
visibility is set here, then the record is reported failed), or raises anything else to be
reported failed and come back after the queue's visibility timeout (SQS dead-letters it after
``maxReceiveCount`` receives).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from runtime.tasks.queues import RetryLaterError, SqsQueue

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext


def new_processor() -> BatchProcessor:
    # Report every failed record, even when all of a batch failed, rather than raising: the
    # response then names exactly the messages to retry, the same way for 1 failure or 10.
    return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def run_record(
    record: SQSRecord,
    work: Callable[[], str],
    *,
    queue: Callable[[], SqsQueue],
    kind: str,
    logger: Logger,
    metrics: Metrics,
) -> str:
    """Run ``work`` for ``record`` and turn its ending into a visibility change, logs, metrics."""
    receives = record.attributes.approximate_receive_count
    context = {"message_id": record.message_id, "receives": receives}
    try:
        outcome = work()
    except RetryLaterError as exc:
        queue().change_visibility(record.receipt_handle, exc.delay_seconds)
        metrics.add_metric(name=f"{kind}Retries", unit=MetricUnit.Count, value=1)
        logger.warning(f"{kind} record postponed", extra={**context, "reason": str(exc)})
        raise
    except Exception:
        metrics.add_metric(name=f"{kind}RecordFailures", unit=MetricUnit.Count, value=1)
        logger.exception(f"{kind} record failed", extra=context)
        raise
    metrics.add_metric(name=f"{kind}_{outcome}", unit=MetricUnit.Count, value=1)
    logger.info(f"{kind} record done", extra={**context, "outcome": outcome})
    return outcome


def partial_batch(
    event: dict[str, Any],
    context: LambdaContext,
    record_handler: Callable[[SQSRecord], str],
    processor: BatchProcessor,
) -> dict[str, Any]:
    """``{"batchItemFailures": [...]}`` naming exactly the records that raised."""
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )


def remaining_seconds(context: LambdaContext | None) -> float:
    if context is None:
        raise RuntimeError("record handler called outside an invocation")
    return float(context.get_remaining_time_in_millis()) / 1000.0
