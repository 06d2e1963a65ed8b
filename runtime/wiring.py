"""Building the agent's dependencies from the environment: session store, model, tools.

Every adapter that runs agent steps (the API Gateway handler, the webhook task worker, the
container service) builds them here, once per process, so they share one HTTP pool, one Secrets
Manager key cache and one time-budget rule.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runtime.llm.types import LLMClient, LLMResponse, LLMTimeoutError, Message, ToolSpec
from runtime.session_store import SessionStore
from runtime.settings import RuntimeSettings
from runtime.tools import Tool, ToolRegistry, default_registry

# Left for the work after the last model call (tools, the DynamoDB save, the response) so that a
# slow model ends in a clean timeout error rather than in the platform killing the process
# mid-save.
LLM_SAFETY_MARGIN_SECONDS = 3.0

LLMFactory = Callable[[float], LLMClient]
"""Builds an LLM client whose calls give up after the given number of seconds."""


@dataclass(frozen=True)
class Dependencies:
    settings: RuntimeSettings
    store: SessionStore
    llm_factory: LLMFactory
    tools: ToolRegistry


def build_dependencies(config: RuntimeSettings) -> Dependencies:
    import boto3

    from runtime.llm.factory import build_llm_client
    from runtime.observability.usage import MeteredLLM, usage_metrics

    store = build_session_store(config)
    secrets_client = (
        boto3.client("secretsmanager") if config.llm_api_key_secret_arn is not None else None
    )
    http_client = None
    if config.llm_provider == "openai-compatible":
        import httpx

        # One pool per process, reused by every invocation's client: no new TLS handshake per
        # request. Timeouts are set per request by the client from its time budget.
        http_client = httpx.Client()

    # One key cache per process: clients are built per model call (for the time budget), and
    # a cache per client would fetch the secret on every call.
    api_key: Callable[[], str] | None = None
    if config.llm_api_key is not None:
        # Injected by the platform at start (ECS secrets); a rotation reaches it on restart.
        # ECS injects the whole secret, which after a rotation is the JSON record
        # ({"api_key": ...}): parse it exactly as the Secrets Manager cache does.
        from runtime.llm.secrets import parse_api_key

        raw_key = config.llm_api_key.get_secret_value()
        static_key = parse_api_key(raw_key, "LLM_API_KEY") if raw_key.strip() else raw_key
        api_key = lambda: static_key  # noqa: E731 - a key provider is any callable
    elif config.llm_api_key_secret_arn is not None:
        from runtime.llm.secrets import SecretCache

        api_key = SecretCache(config.llm_api_key_secret_arn, client=secrets_client)

    # One writer per process; every client the factory builds reports its calls' tokens to it.
    metrics = usage_metrics(config)

    def llm_factory(budget_seconds: float) -> LLMClient:
        # No shared Bedrock client on purpose: the factory only applies the budget to the
        # read timeout of a client it builds itself.
        client = build_llm_client(
            config,
            secrets_client=secrets_client,
            http_client=http_client,
            total_budget_seconds=budget_seconds,
            api_key=api_key,
        )
        return client if metrics is None else MeteredLLM(client, metrics)

    memory: list[Tool] = []
    if os.environ.get("MEMORY_STORE", "none") != "none":
        # Imported only when configured: the Lambda functions never pay for it at cold start.
        from runtime.memory.factory import build_memory_tools

        memory = build_memory_tools(
            os.environ,
            llm_api_key=api_key,
            http_client=http_client,
            secrets_client=secrets_client,
        )
    return Dependencies(
        settings=config, store=store, llm_factory=llm_factory, tools=default_registry(extra=memory)
    )


def build_session_store(config: RuntimeSettings) -> SessionStore:
    """The session store ``SESSION_STORE`` names, with the configured TTL."""
    if config.session_store == "redis":
        from runtime.redis_store import RedisSessionStore

        assert config.redis_url is not None  # the settings validator guarantees it
        return RedisSessionStore.from_url(
            config.redis_url,
            password=config.redis_password.get_secret_value() if config.redis_password else None,
            ttl_seconds=config.session_ttl_seconds,
        )
    import boto3

    from runtime.dynamodb_store import DynamoDBSessionStore

    assert config.session_table_name is not None  # the settings validator guarantees it
    return DynamoDBSessionStore(
        config.session_table_name,
        ttl_seconds=config.session_ttl_seconds,
        client=boto3.client("dynamodb"),
    )


class DeadlineLLM:
    """Gives every model call of a step only the time the invocation has left.

    The factory's budget bounds one ``complete`` call; a step makes several, so each call gets a
    client built with what remains right now, and none starts once the time is gone.
    """

    def __init__(self, factory: LLMFactory, remaining_seconds: Callable[[], float]) -> None:
        self._factory = factory
        self._remaining_seconds = remaining_seconds

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        system: str | None = None,
    ) -> LLMResponse:
        budget = self._remaining_seconds() - LLM_SAFETY_MARGIN_SECONDS
        if budget <= 0:
            raise LLMTimeoutError("the invocation's time budget for model calls is spent")
        return self._factory(budget).complete(messages, tools=tools, system=system)
