"""Runtime settings read from the environment, validated once at cold start.

The stacks write these variables (``stacks/shared.py``); the Lambda handlers, the container
service and the queue worker read the same ones. A missing or malformed variable fails the cold
start with one line per variable, not deep inside the first request.

Secrets arrive one of two ways: as an ARN the runtime reads (and re-reads, so a rotated key is
picked up without a restart: Lambda), or as a value the platform injects at start (ECS secrets:
``LLM_API_KEY``, ``REDIS_PASSWORD``). Values are ``SecretStr``, so they never print.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator


class SettingsError(Exception):
    """The environment does not describe a runnable agent; the message lists every problem."""


class RuntimeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    # Where sessions live: DynamoDB (serverless, durable) or Redis (the container service's hot
    # state, ElastiCache). Both give the same TTL and optimistic-locking contract.
    session_store: Literal["dynamodb", "redis"] = Field(default="dynamodb", alias="SESSION_STORE")
    session_table_name: str | None = Field(default=None, min_length=3, alias="SESSION_TABLE_NAME")
    # redis:// or rediss:// (TLS, as ElastiCache with in-transit encryption requires).
    redis_url: str | None = Field(default=None, pattern=r"^rediss?://[^\s]+$", alias="REDIS_URL")
    redis_password: SecretStr | None = Field(default=None, alias="REDIS_PASSWORD")
    session_ttl_seconds: int = Field(ge=60, le=31_536_000, alias="SESSION_TTL_SECONDS")
    llm_provider: Literal["bedrock", "openai-compatible"] = Field(alias="LLM_PROVIDER")
    llm_model_id: str = Field(min_length=1, alias="LLM_MODEL_ID")
    llm_base_url: str | None = Field(default=None, alias="LLM_BASE_URL")
    llm_api_key_secret_arn: str | None = Field(default=None, alias="LLM_API_KEY_SECRET_ARN")
    llm_api_key: SecretStr | None = Field(default=None, alias="LLM_API_KEY")
    llm_request_timeout_seconds: float = Field(gt=0, le=900, alias="LLM_REQUEST_TIMEOUT_SECONDS")
    llm_max_attempts: int = Field(ge=1, le=10, alias="LLM_MAX_ATTEMPTS")
    agent_max_iterations: int = Field(ge=1, le=50, alias="AGENT_MAX_ITERATIONS")
    agent_system_prompt: str = Field(default="", alias="AGENT_SYSTEM_PROMPT")
    max_message_chars: int = Field(ge=1, le=1_000_000, alias="MAX_MESSAGE_CHARS")
    max_body_bytes: int = Field(ge=64, le=10_485_760, alias="MAX_BODY_BYTES")
    # LLM usage metrics (runtime.observability.usage); unset namespace: none are written.
    usage_metrics_namespace: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._/#\-]{1,255}$", alias="USAGE_METRICS_NAMESPACE"
    )
    usage_metrics_service: str | None = Field(
        default=None, min_length=1, max_length=255, alias="USAGE_METRICS_SERVICE"
    )
    # USD per million tokens of LLM_MODEL_ID, from costs/prices.yaml at deploy time; unset: the
    # model has no price there, and no EstimatedCostUSD metric is written.
    llm_input_usd_per_million_tokens: float | None = Field(
        default=None, ge=0, le=10_000, alias="LLM_INPUT_PRICE_USD_PER_MILLION"
    )
    llm_output_usd_per_million_tokens: float | None = Field(
        default=None, ge=0, le=10_000, alias="LLM_OUTPUT_PRICE_USD_PER_MILLION"
    )

    @model_validator(mode="after")
    def _provider_needs(self) -> RuntimeSettings:
        if self.llm_provider == "openai-compatible" and not self.llm_base_url:
            raise ValueError("LLM_BASE_URL is required when LLM_PROVIDER is openai-compatible")
        if self.llm_api_key is not None and self.llm_api_key_secret_arn is not None:
            raise ValueError("set LLM_API_KEY or LLM_API_KEY_SECRET_ARN, not both")
        if self.session_store == "dynamodb" and not self.session_table_name:
            raise ValueError("SESSION_TABLE_NAME is required when SESSION_STORE is dynamodb")
        if self.session_store == "redis" and not self.redis_url:
            raise ValueError("REDIS_URL is required when SESSION_STORE is redis")
        if (self.llm_input_usd_per_million_tokens is None) != (
            self.llm_output_usd_per_million_tokens is None
        ):
            raise ValueError(
                "set both LLM_INPUT_PRICE_USD_PER_MILLION and LLM_OUTPUT_PRICE_USD_PER_MILLION "
                "or neither"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RuntimeSettings:
        return parse_environment(cls, environ, "runtime")


SettingsT = TypeVar("SettingsT", bound=BaseModel)


def parse_environment(model: type[SettingsT], environ: Mapping[str, str], what: str) -> SettingsT:
    """``model`` from the environment, or one :class:`SettingsError` listing every problem."""
    try:
        return model.model_validate(dict(environ))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"]) or "environment"
            lines.append(f"{name}: {err['msg']}")
        raise SettingsError(f"invalid {what} environment: " + "; ".join(lines)) from None
