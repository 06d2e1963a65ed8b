"""The ``MEMORY_*`` environment: whether the agent has long-term memory, and where it lives.

* ``MEMORY_STORE``: ``none`` (default: no memory tools) or ``pgvector``.
* ``MEMORY_DATABASE_URL``: ``postgresql://host:port/dbname``, optionally with libpq options such
  as ``?sslmode=verify-full&sslrootcert=...``; never with a password in it.
* ``MEMORY_DATABASE_USER``: the database user, unless the URL names it (``postgresql://user@...``).
* ``MEMORY_DATABASE_PASSWORD``: the password, fixed for the process's life (local runs, tests).
* ``MEMORY_DATABASE_SECRET_ARN``: instead of the password, the ARN of the database's credentials
  secret (RDS's JSON, whose ``password`` is used), read at run time and re-read when the database
  refuses it, so a rotated password is followed without a restart (``runtime.memory.credentials``;
  what the stacks set). Not both.
* ``MEMORY_EMBEDDER``: ``bedrock`` (default, Titan Text Embeddings V2), ``openai-compatible``
  (``POST {LLM_BASE_URL}/embeddings`` with the LLM's API key) or ``hashing`` (local and lexical
  only: tests and offline development).
* ``MEMORY_EMBEDDING_MODEL``: the model id; defaults to Titan V2 for ``bedrock``, required for
  ``openai-compatible``, ignored for ``hashing``.
* ``MEMORY_EMBEDDING_DIMENSIONS``: the vector size; defaults to 1024 for ``bedrock`` (which takes
  256, 512 or 1024) and 256 for ``hashing``, required for ``openai-compatible``. The table is made
  with it: changing it needs a new table.
* ``MEMORY_SCOPE``: ``session`` (default: each session's own memories) or ``deployment`` (one
  scope shared by every session: single-tenant deployments only).
* ``SESSION_TTL_SECONDS``: memories expire this long after they were written, as sessions do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from runtime.memory.embedders import TITAN_V2_DIMENSIONS, TITAN_V2_MODEL_ID
from runtime.memory.types import MAX_INDEXED_DIMENSIONS, check_database_url
from runtime.settings import parse_environment

_DEFAULT_DIMENSIONS = {"bedrock": 1024, "hashing": 256}


class MemorySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    memory_store: Literal["none", "pgvector"] = Field(default="none", alias="MEMORY_STORE")
    memory_database_url: str | None = Field(default=None, alias="MEMORY_DATABASE_URL")
    memory_database_user: str | None = Field(
        default=None, min_length=1, max_length=63, alias="MEMORY_DATABASE_USER"
    )
    memory_database_password: SecretStr | None = Field(
        default=None, alias="MEMORY_DATABASE_PASSWORD"
    )
    memory_database_secret_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$",
        alias="MEMORY_DATABASE_SECRET_ARN",
    )
    memory_embedder: Literal["bedrock", "openai-compatible", "hashing"] = Field(
        default="bedrock", alias="MEMORY_EMBEDDER"
    )
    memory_embedding_model: str | None = Field(
        default=None, min_length=1, alias="MEMORY_EMBEDDING_MODEL"
    )
    memory_embedding_dimensions: int | None = Field(
        default=None, ge=1, le=MAX_INDEXED_DIMENSIONS, alias="MEMORY_EMBEDDING_DIMENSIONS"
    )
    memory_scope: Literal["session", "deployment"] = Field(default="session", alias="MEMORY_SCOPE")
    # The same knob and bounds as RuntimeSettings: one TTL for sessions and their memories.
    session_ttl_seconds: int | None = Field(
        default=None, ge=60, le=31_536_000, alias="SESSION_TTL_SECONDS"
    )
    llm_base_url: str | None = Field(default=None, alias="LLM_BASE_URL")

    @model_validator(mode="after")
    def _store_needs(self) -> MemorySettings:
        if self.memory_store == "none":
            return self
        if not self.memory_database_url:
            raise ValueError("MEMORY_DATABASE_URL is required when MEMORY_STORE is pgvector")
        # ValueError messages become the SettingsError line; they never echo the URL, which
        # could hold the very password being refused.
        check_database_url(self.memory_database_url, user=self.memory_database_user)
        if self.memory_database_password is not None and self.memory_database_secret_arn:
            raise ValueError(
                "MEMORY_DATABASE_PASSWORD and MEMORY_DATABASE_SECRET_ARN are both set; keep one "
                "(the secret's ARN, when the password rotates)"
            )
        if self.session_ttl_seconds is None:
            raise ValueError("SESSION_TTL_SECONDS is required when MEMORY_STORE is pgvector")
        if self.memory_embedder == "openai-compatible":
            if not self.llm_base_url:
                raise ValueError(
                    "MEMORY_EMBEDDER=openai-compatible sends embeddings to LLM_BASE_URL; set it"
                )
            if self.memory_embedding_model is None:
                raise ValueError(
                    "MEMORY_EMBEDDING_MODEL is required when MEMORY_EMBEDDER is openai-compatible"
                )
            if self.memory_embedding_dimensions is None:
                raise ValueError(
                    "MEMORY_EMBEDDING_DIMENSIONS is required when MEMORY_EMBEDDER is "
                    "openai-compatible (the model's vector size)"
                )
        if (
            self.memory_embedder == "bedrock"
            and self.memory_embedding_dimensions is not None
            and self.memory_embedding_dimensions not in TITAN_V2_DIMENSIONS
        ):
            allowed = ", ".join(str(size) for size in TITAN_V2_DIMENSIONS)
            raise ValueError(f"MEMORY_EMBEDDING_DIMENSIONS must be one of {allowed} for bedrock")
        return self

    @property
    def embedding_dimensions(self) -> int:
        if self.memory_embedding_dimensions is not None:
            return self.memory_embedding_dimensions
        # The validator requires an explicit value for openai-compatible.
        return _DEFAULT_DIMENSIONS[self.memory_embedder]

    @property
    def embedding_model(self) -> str:
        if self.memory_embedding_model is not None:
            return self.memory_embedding_model
        return TITAN_V2_MODEL_ID if self.memory_embedder == "bedrock" else "hashing"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> MemorySettings:
        return parse_environment(cls, environ, "memory")
