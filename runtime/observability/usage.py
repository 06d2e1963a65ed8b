"""LLM token usage and estimated cost as CloudWatch metrics, written as embedded-metric log lines.

Every model call writes one JSON line in CloudWatch Embedded Metric Format (EMF) to stdout:
``InputTokens``, ``OutputTokens`` and, when the model's prices are known, ``EstimatedCostUSD``,
in the namespace ``USAGE_METRICS_NAMESPACE`` with the dimensions ``Service`` and ``Model``.
CloudWatch Logs turns the line into metrics wherever stdout reaches it without an agent: Lambda
and ECS with the awslogs driver. No metrics API call, no extra latency, no extra IAM.

The prices come from the deployment (``costs/prices.yaml`` at synth time, see
``config.environment.usage_environment``), so the estimate and ``python -m costs`` read one
table. The CDK cost alarm (``constructs/dashboards.py``) imports the names below, so alarm and
runtime cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from runtime.llm.types import LLMClient, LLMResponse, Message, ToolSpec, Usage
from runtime.observability.correlation import LOG_FIELD, current_correlation_id
from runtime.settings import RuntimeSettings

INPUT_TOKENS = "InputTokens"
OUTPUT_TOKENS = "OutputTokens"
ESTIMATED_COST = "EstimatedCostUSD"
SERVICE_DIMENSION = "Service"
MODEL_DIMENSION = "Model"
# The one dimension set every line declares; an alarm on any other set would never fire.
DIMENSIONS: tuple[str, ...] = (SERVICE_DIMENSION, MODEL_DIMENSION)
TOKENS_PER_PRICE_UNIT = 1_000_000

logger = logging.getLogger("runtime.observability")


@dataclass(frozen=True)
class TokenPrices:
    """USD per million input and output tokens."""

    input_per_million: float
    output_per_million: float

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input_per_million
            + usage.output_tokens * self.output_per_million
        ) / TOKENS_PER_PRICE_UNIT


class UsageMetrics:
    """Writes one EMF line per :meth:`record`; thread-safe (the service runs steps on threads)."""

    def __init__(
        self,
        *,
        namespace: str,
        service: str,
        model_id: str,
        prices: TokenPrices | None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self.service = service
        self.model_id = model_id
        self.prices = prices
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        if prices is None:
            logger.warning(
                "no token prices for this model: InputTokens and OutputTokens are emitted, "
                "EstimatedCostUSD is not (add the model to costs/prices.yaml and redeploy)",
                extra={"model": model_id},
            )

    def document(self, usage: Usage) -> dict[str, Any]:
        """The EMF document for one model call's ``usage``."""
        metrics: list[dict[str, str]] = [
            {"Name": INPUT_TOKENS, "Unit": "Count"},
            {"Name": OUTPUT_TOKENS, "Unit": "Count"},
        ]
        values: dict[str, Any] = {
            INPUT_TOKENS: usage.input_tokens,
            OUTPUT_TOKENS: usage.output_tokens,
        }
        if self.prices is not None:
            # EMF has no currency unit; "None" keeps the value a plain number of dollars.
            metrics.append({"Name": ESTIMATED_COST, "Unit": "None"})
            values[ESTIMATED_COST] = self.prices.cost(usage)
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [list(DIMENSIONS)],
                        "Metrics": metrics,
                    }
                ],
            },
            SERVICE_DIMENSION: self.service,
            MODEL_DIMENSION: self.model_id,
            **values,
        }
        correlation_id = current_correlation_id()
        if correlation_id is not None:
            # Not a dimension (that would be one metric per request): a searchable log field.
            document[LOG_FIELD] = correlation_id
        return document

    def record(self, usage: Usage) -> None:
        line = json.dumps(self.document(usage), separators=(",", ":")) + "\n"
        with self._lock:
            # One write per line: concurrent steps never interleave inside a document.
            stream = self._stream if self._stream is not None else sys.stdout
            stream.write(line)
            stream.flush()


class MeteredLLM:
    """An :class:`LLMClient` that records each answered call's usage; failures record nothing
    (a provider bills no tokens for a refused or timed-out request)."""

    def __init__(self, inner: LLMClient, metrics: UsageMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        system: str | None = None,
    ) -> LLMResponse:
        response = self._inner.complete(messages, tools=tools, system=system)
        self._metrics.record(response.usage)
        return response


def usage_metrics(settings: RuntimeSettings) -> UsageMetrics | None:
    """The process's metrics writer, or None when the deployment turned usage metrics off."""
    if settings.usage_metrics_namespace is None:
        return None
    prices = None
    if (
        settings.llm_input_usd_per_million_tokens is not None
        and settings.llm_output_usd_per_million_tokens is not None
    ):
        prices = TokenPrices(
            input_per_million=settings.llm_input_usd_per_million_tokens,
            output_per_million=settings.llm_output_usd_per_million_tokens,
        )
    return UsageMetrics(
        namespace=settings.usage_metrics_namespace,
        service=settings.usage_metrics_service or settings.usage_metrics_namespace,
        model_id=settings.llm_model_id,
        prices=prices,
    )
