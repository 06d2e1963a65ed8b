"""LLM usage metrics: a step's model calls come out as CloudWatch embedded-metric (EMF) lines
with the exact token counts and the cost the deployment's prices give."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from config.environment import model_token_prices
from runtime.agent import run_step
from runtime.dynamodb_store import DynamoDBSessionStore
from runtime.llm.types import LLMTimeoutError, Usage
from runtime.observability.correlation import correlation
from runtime.observability.usage import (
    DIMENSIONS,
    ESTIMATED_COST,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    MeteredLLM,
    TokenPrices,
    UsageMetrics,
    usage_metrics,
)
from runtime.settings import RuntimeSettings, SettingsError
from runtime.tools import default_registry
from tests.runtime.conftest import ScriptedLLM, text, tool_use

NOW = 1_790_000_000.123
GPT_4O = TokenPrices(input_per_million=2.5, output_per_million=10.0)


def meter(
    stream: io.StringIO, *, prices: TokenPrices | None = GPT_4O, model: str = "gpt-4o"
) -> UsageMetrics:
    return UsageMetrics(
        namespace="agent-test",
        service="agent-test",
        model_id=model,
        prices=prices,
        stream=stream,
        clock=lambda: NOW,
    )


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def run(store: DynamoDBSessionStore, llm: Any) -> None:
    run_step(
        store=store,
        llm=llm,
        tools=default_registry(),
        session_id="s-1",
        user_input="What is 6 times 7?",
        max_iterations=4,
    )


def test_each_model_call_of_a_step_is_one_emf_line(store: DynamoDBSessionStore) -> None:
    stream = io.StringIO()
    scripted = ScriptedLLM(
        [
            tool_use("calculator", {"expression": "6 * 7"}, input_tokens=20, output_tokens=5),
            text("It is 42.", input_tokens=30, output_tokens=4),
        ]
    )

    run(store, MeteredLLM(scripted, meter(stream)))

    first, second = lines(stream)
    assert first["_aws"] == {
        "Timestamp": 1_790_000_000_123,
        "CloudWatchMetrics": [
            {
                "Namespace": "agent-test",
                "Dimensions": [["Service", "Model"]],
                "Metrics": [
                    {"Name": "InputTokens", "Unit": "Count"},
                    {"Name": "OutputTokens", "Unit": "Count"},
                    {"Name": "EstimatedCostUSD", "Unit": "None"},
                ],
            }
        ],
    }
    assert (first["Service"], first["Model"]) == ("agent-test", "gpt-4o")
    # 20 x $2.50 + 5 x $10 per million tokens; then 30 x $2.50 + 4 x $10.
    assert (first["InputTokens"], first["OutputTokens"], first["EstimatedCostUSD"]) == (
        20,
        5,
        0.0001,
    )
    assert (second["InputTokens"], second["OutputTokens"], second["EstimatedCostUSD"]) == (
        30,
        4,
        0.000115,
    )


def test_every_declared_dimension_and_metric_has_its_value() -> None:
    stream = io.StringIO()
    meter(stream).record(Usage(1, 1))
    [document] = lines(stream)
    declared = document["_aws"]["CloudWatchMetrics"][0]
    # CloudWatch drops a document whose dimension or metric has no top-level value.
    for name in [*declared["Dimensions"][0], *(m["Name"] for m in declared["Metrics"])]:
        assert name in document
    assert tuple(declared["Dimensions"][0]) == DIMENSIONS


def test_costs_use_the_price_table_of_the_deployment() -> None:
    prices = model_token_prices("gpt-4o")
    assert prices is not None
    stream = io.StringIO()
    meter(stream, prices=TokenPrices(*prices)).record(Usage(1_000_000, 1_000_000))
    [document] = lines(stream)
    assert document[ESTIMATED_COST] == prices[0] + prices[1]


def test_unknown_model_gets_tokens_but_no_cost(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    with caplog.at_level(logging.WARNING, logger="runtime.observability"):
        metrics = meter(stream, prices=None, model="my-private-model")
    metrics.record(Usage(7, 3))

    [document] = lines(stream)
    declared = [m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert declared == [INPUT_TOKENS, OUTPUT_TOKENS]
    assert (document[INPUT_TOKENS], document[OUTPUT_TOKENS]) == (7, 3)
    assert ESTIMATED_COST not in document
    [record] = caplog.records
    assert "EstimatedCostUSD is not" in record.getMessage()
    assert record.__dict__["model"] == "my-private-model"


def test_a_failed_call_writes_nothing(store: DynamoDBSessionStore) -> None:
    stream = io.StringIO()
    scripted = ScriptedLLM([LLMTimeoutError("slow")])

    with pytest.raises(LLMTimeoutError):
        run(store, MeteredLLM(scripted, meter(stream)))

    assert stream.getvalue() == ""


def test_the_correlation_id_rides_along_as_a_property_not_a_dimension() -> None:
    stream = io.StringIO()
    with correlation("req-123"):
        meter(stream).record(Usage(1, 2))
    [document] = lines(stream)
    assert document["correlation_id"] == "req-123"
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "Model"]]


def test_without_an_explicit_stream_lines_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    UsageMetrics(namespace="n", service="s", model_id="m", prices=GPT_4O).record(Usage(2, 2))
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)[INPUT_TOKENS] == 2


# --- settings: the environment the stacks write ------------------------------------------------

BASE_ENV = {
    "SESSION_TABLE_NAME": "sessions",
    "SESSION_TTL_SECONDS": "3600",
    "LLM_PROVIDER": "bedrock",
    "LLM_MODEL_ID": "anthropic.claude-3-haiku-20240307-v1:0",
    "LLM_REQUEST_TIMEOUT_SECONDS": "10",
    "LLM_MAX_ATTEMPTS": "2",
    "AGENT_MAX_ITERATIONS": "4",
    "MAX_MESSAGE_CHARS": "1000",
    "MAX_BODY_BYTES": "65536",
}


def test_no_namespace_means_no_metrics() -> None:
    assert usage_metrics(RuntimeSettings.from_env(BASE_ENV)) is None


def test_settings_build_the_writer_with_prices() -> None:
    settings = RuntimeSettings.from_env(
        {
            **BASE_ENV,
            "USAGE_METRICS_NAMESPACE": "agent-prod",
            "USAGE_METRICS_SERVICE": "agent-prod",
            "LLM_INPUT_PRICE_USD_PER_MILLION": "0.25",
            "LLM_OUTPUT_PRICE_USD_PER_MILLION": "1.25",
        }
    )
    metrics = usage_metrics(settings)
    assert metrics is not None
    assert (metrics.namespace, metrics.service, metrics.model_id) == (
        "agent-prod",
        "agent-prod",
        "anthropic.claude-3-haiku-20240307-v1:0",
    )
    assert metrics.prices == TokenPrices(0.25, 1.25)


def test_one_price_without_the_other_is_refused() -> None:
    with pytest.raises(SettingsError, match="set both LLM_INPUT_PRICE_USD_PER_MILLION"):
        RuntimeSettings.from_env({**BASE_ENV, "LLM_INPUT_PRICE_USD_PER_MILLION": "1"})


def test_a_negative_price_is_refused() -> None:
    with pytest.raises(SettingsError, match="LLM_OUTPUT_PRICE_USD_PER_MILLION"):
        RuntimeSettings.from_env(
            {
                **BASE_ENV,
                "LLM_INPUT_PRICE_USD_PER_MILLION": "1",
                "LLM_OUTPUT_PRICE_USD_PER_MILLION": "-1",
            }
        )


def test_every_adapter_gets_metered_clients(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lambda handlers, the queue worker and the service all build their model clients
    through ``build_dependencies``: its factory is where metering is added."""
    from runtime.wiring import build_dependencies

    monkeypatch.delenv("MEMORY_STORE", raising=False)
    settings = RuntimeSettings.from_env({**BASE_ENV, "USAGE_METRICS_NAMESPACE": "agent-test"})
    assert isinstance(build_dependencies(settings).llm_factory(5.0), MeteredLLM)
    off = RuntimeSettings.from_env(BASE_ENV)
    assert not isinstance(build_dependencies(off).llm_factory(5.0), MeteredLLM)
