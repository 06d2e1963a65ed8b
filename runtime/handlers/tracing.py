"""The Lambda handlers' tracer: Powertools' X-Ray SDK tracer only when the deployment asks for it.

Lambda active tracing (``LAMBDA_TRACING`` in constructs/secure_defaults.py) already records every
invocation with its initialization, and inside Lambda botocore itself forwards the function's
trace header on every AWS call (``botocore.handlers.add_recursion_detection_header``), so a
webhook's trace links API Gateway, the ingress function, SQS and the workers without any SDK.

The X-Ray SDK adds one subsegment per AWS call and the ``ColdStart`` annotation, but importing it
builds a botocore session and an X-Ray client for centralized sampling, which Lambda never uses
(Lambda decides sampling): about 0.24 s on every cold start on the benchmark machine, close to
``import boto3`` itself (``bench/lambda_cold_start.py``; Powertools' ``Tracer`` imports it even
with ``POWERTOOLS_TRACE_DISABLED``). So it is opt in: config
``observability.xray_sdk_subsegments`` sets ``AGENT_XRAY_SDK=true`` on the functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, cast

ENV_VAR = "AGENT_XRAY_SDK"
_F = TypeVar("_F", bound=Callable[..., Any])


class LambdaTracer(Protocol):
    """What the handlers use of Powertools' ``Tracer``: its two decorators, always with
    keyword options (``@tracer.capture_method(capture_response=False)``)."""

    def capture_lambda_handler(self, **options: Any) -> Callable[[_F], _F]: ...

    def capture_method(self, **options: Any) -> Callable[[_F], _F]: ...


class NoTracer:
    """The decorators without the SDK: they return the function unchanged."""

    def capture_lambda_handler(self, **options: Any) -> Callable[[_F], _F]:
        return _unchanged

    def capture_method(self, **options: Any) -> Callable[[_F], _F]:
        return _unchanged


def _unchanged(function: _F) -> _F:
    return function


def xray_sdk_enabled(environ: Mapping[str, str]) -> bool:
    """``AGENT_XRAY_SDK``: ``true`` or ``false`` (unset: false); anything else is a mistake in
    the deployment, reported by name rather than guessed."""
    value = environ.get(ENV_VAR, "false").strip().lower()
    if value not in ("true", "false"):
        raise ValueError(
            f"{ENV_VAR} must be 'true' or 'false', got {value!r}: set it from config "
            f"observability.xray_sdk_subsegments"
        )
    return value == "true"


def lambda_tracer(environ: Mapping[str, str] | None = None) -> LambdaTracer:
    """Powertools' ``Tracer`` (X-Ray SDK, every module patched) when ``AGENT_XRAY_SDK`` is
    true, else :class:`NoTracer`. Called once per handler module, at import."""
    if not xray_sdk_enabled(os.environ if environ is None else environ):
        return NoTracer()
    # Imported here: importing Powertools' tracing module is cheap, building a Tracer is not.
    from aws_lambda_powertools import Tracer

    return cast(LambdaTracer, Tracer())
