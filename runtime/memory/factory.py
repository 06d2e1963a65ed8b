"""The memory tools the ``MEMORY_*`` environment describes, for ``runtime.wiring``.

psycopg is imported only when memory is on (``MEMORY_STORE=pgvector``), so a deployment without
memory needs no database driver. Nothing connects here; the store creates its table on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from runtime.llm.openai_compat import KeyProvider
from runtime.memory.embedders import (
    BedrockTitanEmbedder,
    Embedder,
    HashingEmbedder,
    OpenAICompatibleEmbedder,
)
from runtime.memory.settings import MemorySettings
from runtime.session_store import Clock, wall_clock
from runtime.tools import Tool

if TYPE_CHECKING:
    import httpx
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient


def build_memory_tools(
    environ: Mapping[str, str],
    *,
    llm_api_key: KeyProvider | None = None,
    http_client: httpx.Client | None = None,
    bedrock_client: BedrockRuntimeClient | None = None,
    secrets_client: SecretsManagerClient | None = None,
    clock: Clock = wall_clock,
) -> list[Tool]:
    """``remember`` and ``recall`` when ``MEMORY_STORE=pgvector``, else no tools.

    ``llm_api_key`` is the LLM's key provider (the openai-compatible embedder calls the same
    provider, ``LLM_BASE_URL``); ``http_client``, ``bedrock_client`` and ``secrets_client`` (the
    one ``MEMORY_DATABASE_SECRET_ARN`` is read with) share the caller's pools.
    Raises :class:`~runtime.settings.SettingsError` listing every problem with the environment.
    """
    settings = MemorySettings.from_env(environ)
    if settings.memory_store == "none":
        return []
    from runtime.memory.credentials import PasswordSource, SecretPassword, StaticPassword
    from runtime.memory.store import PgVectorMemoryStore
    from runtime.memory.tools import memory_tools

    assert settings.memory_database_url is not None  # the settings validator guarantees it
    assert settings.session_ttl_seconds is not None
    password = settings.memory_database_password
    credentials: PasswordSource = (
        SecretPassword(settings.memory_database_secret_arn, client=secrets_client)
        if settings.memory_database_secret_arn
        else StaticPassword(password.get_secret_value() if password is not None else None)
    )
    store = PgVectorMemoryStore.from_url(
        settings.memory_database_url,
        user=settings.memory_database_user,
        credentials=credentials,
        embedder=build_embedder(
            settings,
            llm_api_key=llm_api_key,
            http_client=http_client,
            bedrock_client=bedrock_client,
        ),
        ttl_seconds=settings.session_ttl_seconds,
        clock=clock,
    )
    return memory_tools(store, scope=settings.memory_scope)


def build_embedder(
    settings: MemorySettings,
    *,
    llm_api_key: KeyProvider | None = None,
    http_client: httpx.Client | None = None,
    bedrock_client: BedrockRuntimeClient | None = None,
) -> Embedder:
    if settings.memory_embedder == "hashing":
        return HashingEmbedder(settings.embedding_dimensions)
    if settings.memory_embedder == "openai-compatible":
        assert settings.llm_base_url is not None  # the settings validator guarantees it
        return OpenAICompatibleEmbedder(
            base_url=settings.llm_base_url,
            model=settings.embedding_model,
            dimensions=settings.embedding_dimensions,
            api_key=llm_api_key,
            http_client=http_client,
        )
    return BedrockTitanEmbedder(
        client=bedrock_client,
        model_id=settings.embedding_model,
        dimensions=settings.embedding_dimensions,
    )
