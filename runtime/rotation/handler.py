"""Lambda handler Secrets Manager invokes for each step of an LLM API key rotation.

Thin on purpose: the steps live in :mod:`runtime.rotation.protocol`. A raised exception fails
the step; Secrets Manager records the rotation as failed and retries it, and the secret keeps its
current key (``AWSCURRENT`` moves only in a successful finishSecret).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from runtime.handlers.tracing import lambda_tracer
from runtime.rotation.protocol import KeyRotator, RotationEvent
from runtime.rotation.settings import RotationSettings, build_rotator

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = lambda_tracer()
# The steps log through the standard "runtime.rotation" logger; give it Powertools' JSON format.
copy_config_to_registered_loggers(source_logger=logger, include={"runtime.rotation"})

_rotator: KeyRotator | None = None


def rotator() -> KeyRotator:
    global _rotator
    if _rotator is None:
        import boto3
        import httpx

        _rotator = build_rotator(
            RotationSettings.from_env(os.environ),
            secrets=boto3.client("secretsmanager"),
            http=httpx.Client(),
        )
    return _rotator


def set_rotator(replacement: KeyRotator | None) -> None:
    """Use ``replacement`` for the following invocations; ``None`` rebuilds the real one."""
    global _rotator
    _rotator = replacement


# log_event stays off: the event carries no key, but keeping every event out of the logs means a
# future field never leaks by default.
@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    parsed = RotationEvent.parse(event)
    logger.append_keys(secret_id=parsed.secret_id, step=parsed.step, token=parsed.token)
    rotator().handle(parsed)
