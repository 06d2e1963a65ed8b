"""Fixtures shared by the LLM client tests: a moto Secrets Manager with fake credentials."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


@pytest.fixture
def secretsmanager(aws_env: None) -> Iterator[SecretsManagerClient]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")
