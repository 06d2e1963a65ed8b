"""Fixtures for the webhook tests: an httpx client that talks to 127.0.0.1 directly."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    # trust_env=False: a proxy from the environment must not sit between us and the receiver.
    with httpx.Client(trust_env=False) as http_client:
        yield http_client
