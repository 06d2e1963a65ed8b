"""The runtime tests' fixtures and environment, loaded before the e2e modules import handlers.

tests/runtime/conftest.py sets the Powertools variables the Lambda handlers read at import time,
so it must be imported before any handler module is (pytest loads conftest files first)."""

from tests.runtime.conftest import mocked_aws

__all__ = ["mocked_aws"]
