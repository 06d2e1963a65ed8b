"""Build the configured :class:`~runtime.llm.types.LLMClient` from :class:`RuntimeSettings`.

Each backend's module, and with it httpx or boto3, is imported only in the branch that needs it:
a Lambda cold start should not pay for the SDK of the provider it does not use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runtime.settings import RuntimeSettings

if TYPE_CHECKING:
    import httpx
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from runtime.llm.types import LLMClient


def build_llm_client(
    settings: RuntimeSettings,
    *,
    secrets_client: SecretsManagerClient | None = None,
    bedrock_client: BedrockRuntimeClient | None = None,
    http_client: httpx.Client | None = None,
    total_budget_seconds: float | None = None,
    api_key: Callable[[], str] | None = None,
) -> LLMClient:
    """The client for ``settings.llm_provider``.

    The injected clients replace the ones the backends would create (tests, shared pools).
    ``api_key`` replaces the :class:`SecretCache` built here from ``LLM_API_KEY_SECRET_ARN``: pass
    one long-lived cache when building a client per call, so the key is fetched once per TTL.
    ``total_budget_seconds`` bounds a whole ``complete`` call, retries included, for the
    OpenAI-compatible client; for Bedrock, whose retries botocore runs, it caps the per-attempt
    read timeout of a client built here (an injected client keeps its own configuration).
    """
    if settings.llm_provider == "bedrock":
        from runtime.llm.bedrock import BedrockConverseClient

        read_timeout = settings.llm_request_timeout_seconds
        if total_budget_seconds is not None:
            read_timeout = min(read_timeout, total_budget_seconds)
        return BedrockConverseClient(
            model_id=settings.llm_model_id,
            client=bedrock_client,
            request_timeout_seconds=read_timeout,
            max_attempts=settings.llm_max_attempts,
        )

    from runtime.llm.openai_compat import OpenAICompatibleClient
    from runtime.llm.retry import RetryPolicy
    from runtime.llm.secrets import SecretCache

    if settings.llm_base_url is None:
        # RuntimeSettings already refuses this combination; kept for a precise type below.
        raise ValueError("LLM_BASE_URL is required when LLM_PROVIDER is openai-compatible")
    if api_key is None and settings.llm_api_key_secret_arn:
        api_key = SecretCache(settings.llm_api_key_secret_arn, client=secrets_client)
    return OpenAICompatibleClient(
        base_url=settings.llm_base_url,
        model=settings.llm_model_id,
        api_key=api_key,
        policy=RetryPolicy(
            max_attempts=settings.llm_max_attempts,
            request_timeout_seconds=settings.llm_request_timeout_seconds,
            total_budget_seconds=total_budget_seconds,
        ),
        http_client=http_client,
    )
