"""The container queue worker: every log line of a message, and the usage metrics of the task it
runs, carry the task id as the correlation id (also on the handler's own thread)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from runtime.observability.correlation import CorrelationIdFilter
from runtime.observability.usage import MeteredLLM, TokenPrices, UsageMetrics
from runtime.queue_worker import JsonFormatter, ReceivedMessage, configure_logging
from tests.fakes.logs import json_log_lines
from tests.runtime.async_env import AsyncEnv
from tests.runtime.conftest import ScriptedLLM, text
from tests.runtime.test_queue_worker import (  # noqa: F401 - fixtures used by name
    env,
    make_env,
    start_consumer,
    submit,
    task_status,
    wait_for,
)


@pytest.fixture
def worker_log() -> Iterator[io.StringIO]:
    with json_log_lines("runtime.queue_worker", JsonFormatter()) as buffer:
        yield buffer


def test_a_task_is_traced_by_its_task_id(env: AsyncEnv, worker_log: io.StringIO) -> None:  # noqa: F811
    emf = io.StringIO()
    metrics = UsageMetrics(
        namespace="agent-test",
        service="agent-test",
        model_id="gpt-4o",
        prices=TokenPrices(2.5, 10.0),
        stream=emf,
    )
    llm = MeteredLLM(ScriptedLLM([text("done", input_tokens=11, output_tokens=2)]), metrics)
    running, app = start_consumer(env, llm)
    task_id = submit(app, "work")
    wait_for(lambda: task_status(env, task_id) == "succeeded")
    running.stop.set()
    running.join()

    records = [json.loads(line) for line in worker_log.getvalue().splitlines()]
    per_message = [r for r in records if r.get("task_id") == task_id]
    assert {r["message"] for r in per_message} >= {"message started", "message done"}
    assert {r["correlation_id"] for r in per_message} == {task_id}
    [document] = [json.loads(line) for line in emf.getvalue().splitlines()]
    assert (document["InputTokens"], document["OutputTokens"]) == (11, 2)
    assert document["correlation_id"] == task_id


def test_a_message_without_a_task_id_is_traced_by_its_message_id() -> None:
    message = ReceivedMessage(
        message_id="m-1", receipt_handle="r", body="not json", receive_count=1
    )
    assert message.correlation_id == "m-1"
    tagged = ReceivedMessage(
        message_id="m-2", receipt_handle="r", body='{"task_id": "t-9"}', receive_count=1
    )
    assert tagged.correlation_id == "t-9"


def test_the_process_handler_adds_the_correlation_filter() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        handler = configure_logging(io.StringIO())
        assert any(isinstance(f, CorrelationIdFilter) for f in handler.filters)
    finally:
        for existing in list(root.handlers):
            root.removeHandler(existing)
        for original in saved[0]:
            root.addHandler(original)
        root.setLevel(saved[1])
