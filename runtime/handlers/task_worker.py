"""Lambda handler for the task queue: runs agent tasks, reports partial batch failures.

The event source mapping has ``ReportBatchItemFailures``: a record that raises is reported in
``batchItemFailures`` and only that message stays on the queue; the others are deleted. What a
record's outcome means is decided in :mod:`runtime.tasks.worker`; here it only becomes a
visibility change (the back-off) and metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics

from runtime.handlers.sqs_batch import new_processor, partial_batch, remaining_seconds, run_record
from runtime.handlers.tracing import lambda_tracer
from runtime.settings import RuntimeSettings
from runtime.tasks.queues import RetryLaterError
from runtime.tasks.wiring import TaskClients
from runtime.tasks.worker import TaskWorker
from runtime.wiring import LLM_SAFETY_MARGIN_SECONDS, DeadlineLLM, Dependencies, build_dependencies

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = lambda_tracer()
metrics = Metrics()
processor = new_processor()


@dataclass(frozen=True)
class WorkerDependencies:
    agent: Dependencies
    tasks: TaskClients
    worker: TaskWorker


_dependencies: WorkerDependencies | None = None
_context: LambdaContext | None = None


@cache
def _settings() -> RuntimeSettings:
    return RuntimeSettings.from_env(os.environ)


def dependencies() -> WorkerDependencies:
    global _dependencies
    if _dependencies is None:
        agent = build_dependencies(_settings())
        tasks = TaskClients.from_env()
        _dependencies = WorkerDependencies(
            agent=agent, tasks=tasks, worker=tasks.task_worker(agent)
        )
    return _dependencies


def set_dependencies(replacement: WorkerDependencies | None) -> None:
    """Use ``replacement`` for the following invocations; ``None`` rebuilds the real ones."""
    global _dependencies
    _dependencies = replacement
    if replacement is None:
        _settings.cache_clear()


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> str:
    deps = dependencies()

    def work() -> str:
        remaining = remaining_seconds(_context)
        if remaining < deps.agent.settings.llm_request_timeout_seconds + LLM_SAFETY_MARGIN_SECONDS:
            # Earlier records of the batch used the time; this one waits for a fresh invocation
            # instead of starting a model call that cannot finish.
            raise RetryLaterError("not enough time left in this invocation", delay_seconds=0)
        return deps.worker.process(
            record.body,
            receive_count=int(record.attributes.approximate_receive_count or 1),
            llm=DeadlineLLM(deps.agent.llm_factory, lambda: remaining_seconds(_context)),
        )

    return run_record(
        record,
        work,
        queue=lambda: deps.tasks.task_queue,
        kind="Task",
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
