"""The handlers' tracer: no X-Ray SDK unless the deployment turns it on (cold start cost)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_lambda_powertools import Tracer

from constructs.secure_defaults import LAMBDA_HANDLERS
from runtime.handlers.tracing import ENV_VAR, NoTracer, lambda_tracer, xray_sdk_enabled

REPO_ROOT = Path(__file__).resolve().parents[2]
HANDLERS = tuple(handler.rpartition(".")[0] for handler in LAMBDA_HANDLERS)


def test_without_the_variable_the_decorators_leave_functions_unchanged() -> None:
    tracer = lambda_tracer({})
    assert isinstance(tracer, NoTracer)

    def handler(event: dict[str, str], context: object) -> dict[str, str]:
        return event

    assert tracer.capture_lambda_handler(capture_response=False)(handler) is handler
    assert tracer.capture_method(capture_response=False)(handler) is handler


def test_true_gives_powertools_tracer() -> None:
    # POWERTOOLS_TRACE_DISABLED (tests/runtime/conftest.py) keeps it from patching this process.
    assert os.environ["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert isinstance(lambda_tracer({ENV_VAR: "true"}), Tracer)
    assert isinstance(lambda_tracer({ENV_VAR: " FALSE "}), NoTracer)


@pytest.mark.parametrize("value", ["1", "yes", "", "on"])
def test_anything_but_true_or_false_is_refused_by_name(value: str) -> None:
    with pytest.raises(ValueError, match=r"AGENT_XRAY_SDK must be 'true' or 'false'.*"
                       r"observability\.xray_sdk_subsegments"):  # fmt: skip
        xray_sdk_enabled({ENV_VAR: value})


def _modules_after_import(module: str, **environ: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    env = {
        **{k: v for k, v in os.environ.items() if k != ENV_VAR},
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "tracing-test",
        "POWERTOOLS_METRICS_NAMESPACE": "tracing-test",
        **environ,
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("module", HANDLERS)
def test_a_cold_start_does_not_import_the_xray_sdk_by_default(module: str) -> None:
    assert "aws_xray_sdk.core" not in _modules_after_import(module)


def test_the_variable_brings_the_sdk_back() -> None:
    modules = _modules_after_import(HANDLERS[0], AGENT_XRAY_SDK="true")
    assert "aws_xray_sdk.core" in modules
