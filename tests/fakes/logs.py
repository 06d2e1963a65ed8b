"""Capture one logger's records as the runtime formats them: JSON lines with correlation ids."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from runtime.observability.correlation import CorrelationIdFilter


@contextmanager
def json_log_lines(logger_name: str, formatter: logging.Formatter) -> Iterator[io.StringIO]:
    """``logger_name``'s records at INFO, through ``formatter`` and the correlation filter."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter)
    handler.addFilter(CorrelationIdFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
