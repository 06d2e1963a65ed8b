"""Correlation ids in the container service: X-Request-Id in, echoed out, on every log line of
the request and on the usage metrics of the step it ran (a worker thread runs the step)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import uuid
from collections.abc import Iterator

import pytest

from runtime.observability.correlation import new_request_id
from runtime.observability.usage import MeteredLLM, TokenPrices, UsageMetrics
from runtime.service.server import JsonFormatter
from tests.fakes.logs import json_log_lines
from tests.fakes.memory_store import InMemorySessionStore
from tests.fakes.openai_server import FakeOpenAIServer, TextReply
from tests.service.conftest import openai_dependencies, serve


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The service's log handler (JSON, correlation filter) on a buffer, for the test only."""
    with json_log_lines("runtime.service", JsonFormatter()) as buffer:
        yield buffer


def test_a_step_is_traced_by_the_callers_request_id(
    fake_openai: FakeOpenAIServer, store: InMemorySessionStore
) -> None:
    fake_openai.add(TextReply("Paris.", prompt_tokens=30, completion_tokens=8))
    deps, _ = openai_dependencies(fake_openai.base_url, store)
    emf = io.StringIO()
    metrics = UsageMetrics(
        namespace="agent-test",
        service="agent-test",
        model_id=deps.settings.llm_model_id,
        prices=TokenPrices(2.5, 10.0),
        stream=emf,
    )
    factory = deps.llm_factory
    metered = dataclasses.replace(
        deps, llm_factory=lambda budget: MeteredLLM(factory(budget), metrics)
    )

    with serve(metered) as service, service.http() as client:
        response = client.post(
            "/sessions/rid-1/messages",
            json={"message": "Capital of France?"},
            headers={"X-Request-Id": "req-7f3a"},
        )

    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-7f3a"
    [document] = [json.loads(line) for line in emf.getvalue().splitlines()]
    # The real client's usage (prompt/completion tokens) reaches the metric line, and the step's
    # thread still knows which request it serves.
    assert (document["InputTokens"], document["OutputTokens"]) == (30, 8)
    assert document["EstimatedCostUSD"] == 0.000155
    assert document["correlation_id"] == "req-7f3a"


@pytest.mark.parametrize("given", [None, "has spaces", "x" * 129, 'quote"inject'])
def test_a_missing_or_unsafe_request_id_is_replaced(
    store: InMemorySessionStore, fake_openai: FakeOpenAIServer, given: str | None
) -> None:
    deps, _ = openai_dependencies(fake_openai.base_url, store)
    headers = {} if given is None else {"X-Request-Id": given}
    with serve(deps) as service, service.http() as client:
        response = client.get("/healthz", headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_log_lines_of_a_request_carry_its_id(
    store: InMemorySessionStore, fake_openai: FakeOpenAIServer, log_lines: io.StringIO
) -> None:
    deps, _ = openai_dependencies(fake_openai.base_url, store)
    # No reply scripted: the model call fails, and the service logs the failure.
    with serve(deps) as service, service.http() as client:
        response = client.post(
            "/sessions/rid-2/messages",
            json={"message": "hi"},
            headers={"X-Request-Id": "req-log-1"},
        )
    assert response.headers["x-request-id"] == "req-log-1"
    records = {
        record["message"]: record for record in map(json.loads, log_lines.getvalue().splitlines())
    }
    assert records["agent step failed"]["correlation_id"] == "req-log-1"
    # The shutdown belongs to no request.
    assert "correlation_id" not in records["draining"]


def test_new_request_ids_are_distinct_version_4_uuids() -> None:
    ids = {new_request_id() for _ in range(10_000)}

    assert len(ids) == 10_000
    for value in list(ids)[:100]:
        assert re.fullmatch(r"[0-9a-f]{32}", value)
        parsed = uuid.UUID(hex=value)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
