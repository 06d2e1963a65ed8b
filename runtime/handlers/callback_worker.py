"""Lambda handler for the callback queue: one signed delivery attempt per record.

Failed attempts do not fail the record: :mod:`runtime.tasks.callbacks` schedules the next attempt
as a new, delayed message. A record fails (and is retried by SQS, then dead-lettered) only when
the worker itself could not do its job: an unreadable message, the table or queue unavailable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics

from runtime.handlers.sqs_batch import new_processor, partial_batch, remaining_seconds, run_record
from runtime.handlers.tracing import lambda_tracer
from runtime.tasks.callbacks import CallbackWorker
from runtime.tasks.queues import RetryLaterError
from runtime.tasks.wiring import TaskClients

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = lambda_tracer()
metrics = Metrics()
processor = new_processor()
# Time kept free after an attempt's HTTP timeout to record its outcome and queue the next one.
RECORD_MARGIN_SECONDS = 2.0

_worker: CallbackWorker | None = None
_clients: TaskClients | None = None
_context: LambdaContext | None = None


def worker() -> tuple[CallbackWorker, TaskClients]:
    global _worker, _clients
    if _worker is None or _clients is None:
        _clients = TaskClients.from_env()
        _worker = _clients.callback_worker()
    return _worker, _clients


def set_worker(replacement: tuple[CallbackWorker, TaskClients] | None) -> None:
    """Use ``replacement`` for the following invocations; ``None`` rebuilds the real one."""
    global _worker, _clients
    _worker, _clients = replacement if replacement is not None else (None, None)


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> str:
    callback_worker, clients = worker()

    def work() -> str:
        remaining = remaining_seconds(_context)
        if remaining < clients.settings.callback_timeout_seconds + RECORD_MARGIN_SECONDS:
            raise RetryLaterError("not enough time left for an attempt", delay_seconds=0)
        return callback_worker.process(record.body)

    return run_record(
        record,
        work,
        queue=lambda: clients.callback_queue,
        kind="Callback",
        logger=logger,
        metrics=metrics,
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _context
    _context = context
    return partial_batch(event, context, record_handler, processor)
