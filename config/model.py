"""The deployment config model. Every field a stack reads is declared and checked here.

Limits come from AWS, not taste: API Gateway's REST integration timeout is 29 s, CloudWatch Logs
accepts only a fixed set of retention periods, Lambda memory is 128-10240 MB.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

# API Gateway REST APIs cut every integration at 29 s, so the function must answer before that.
API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS = 29

# The values CloudWatch Logs accepts for RetentionInDays.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")]


class _Strict(BaseModel):
    # frozen: a config is a value; extra=forbid: a misspelt key is an error, not a silent default.
    model_config = ConfigDict(frozen=True, extra="forbid")


class LlmConfig(_Strict):
    provider: Literal["bedrock", "openai-compatible"]
    model_id: str = Field(min_length=1, max_length=200)
    base_url: AnyHttpUrl | None = None
    api_key_secret_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$")
    request_timeout_seconds: float = Field(default=20, gt=0, le=600)
    max_attempts: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _provider_fields(self) -> LlmConfig:
        if self.provider == "openai-compatible":
            if self.base_url is None:
                raise ValueError("base_url is required when provider is openai-compatible")
            if self.base_url.scheme != "https":
                raise ValueError("base_url must use https (the API key travels in a header)")
            if self.api_key_secret_name is None:
                raise ValueError(
                    "api_key_secret_name is required when provider is openai-compatible"
                )
        if self.provider == "bedrock":
            if self.base_url is not None or self.api_key_secret_name is not None:
                raise ValueError(
                    "bedrock uses IAM, not a key: remove base_url and api_key_secret_name"
                )
            if not re.fullmatch(r"[a-z0-9-]+(\.[A-Za-z0-9-]+)+(:[0-9]+)?", self.model_id):
                raise ValueError(
                    "model_id must be a Bedrock model or inference-profile id such as "
                    "anthropic.claude-3-5-haiku-20241022-v1:0"
                )
        return self


class AgentConfig(_Strict):
    max_iterations: int = Field(default=6, ge=1, le=50)
    system_prompt: str = Field(default="You are a helpful agent.", max_length=8000)
    max_message_chars: int = Field(default=8000, ge=1, le=200_000)
    max_body_bytes: int = Field(default=65_536, ge=1024, le=6_291_456)


class LambdaConfig(_Strict):
    memory_mb: int = Field(default=512, ge=128, le=10_240)
    timeout_seconds: int = Field(default=25, ge=3)
    reserved_concurrency: int = Field(default=10, ge=1, le=10_000)
    provisioned_concurrency: int | None = Field(default=None, ge=1)
    # Powertools' public layer version for the function's runtime and architecture.
    powertools_layer_version: int = Field(default=38, ge=1)

    @field_validator("timeout_seconds")
    @classmethod
    def _below_api_gateway_limit(cls, value: int) -> int:
        if value >= API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS:
            raise ValueError(
                f"must be below {API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS} (API Gateway's "
                f"integration timeout), so the function answers before the API gives up"
            )
        return value

    @model_validator(mode="after")
    def _provisioned_within_reserved(self) -> LambdaConfig:
        if (
            self.provisioned_concurrency is not None
            and self.provisioned_concurrency > self.reserved_concurrency
        ):
            raise ValueError("provisioned_concurrency cannot exceed reserved_concurrency")
        return self


class SessionConfig(_Strict):
    ttl_seconds: int = Field(default=3600, ge=60, le=31_536_000)


class ApiConfig(_Strict):
    throttle_rate_limit: float = Field(default=10, gt=0, le=10_000)
    throttle_burst_limit: int = Field(default=20, ge=1, le=5000)
    auth: Literal["iam", "api_key"] = "iam"
    # Only with auth: api_key; requests per day per key.
    quota_per_day: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _quota_needs_keys(self) -> ApiConfig:
        if self.quota_per_day is not None and self.auth != "api_key":
            raise ValueError("quota_per_day applies to auth: api_key only")
        if self.throttle_burst_limit < self.throttle_rate_limit:
            raise ValueError("throttle_burst_limit must be at least throttle_rate_limit")
        return self


class LogsConfig(_Strict):
    retention_days: int = 30

    @field_validator("retention_days")
    @classmethod
    def _allowed_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            allowed = ", ".join(str(v) for v in LOG_RETENTION_DAYS)
            raise ValueError(f"must be one of CloudWatch's retention periods: {allowed}")
        return value


class AlarmConfig(_Strict):
    errors_per_period: int = Field(default=5, ge=1)
    throttles_per_period: int = Field(default=1, ge=1)
    p99_duration_ms: int = Field(default=20_000, ge=100)
    period_minutes: int = Field(default=5, ge=1, le=60)
    evaluation_periods: int = Field(default=1, ge=1, le=24)


class DeploymentConfig(_Strict):
    """One agent deployment. ``name`` prefixes stack ids; tags land on every resource."""

    name: Name
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    llm: LlmConfig
    agent: AgentConfig = AgentConfig()
    lambda_: LambdaConfig = Field(default=LambdaConfig(), alias="lambda")
    session: SessionConfig = SessionConfig()
    api: ApiConfig = ApiConfig()
    logs: LogsConfig = LogsConfig()
    removal_policy: Literal["destroy", "retain"] = "retain"
    alarms: AlarmConfig = AlarmConfig()
    tags: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=128)],
        Annotated[str, StringConstraints(max_length=256)],
    ] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_field(self) -> DeploymentConfig:
        timeout_ms = self.lambda_.timeout_seconds * 1000
        if self.alarms.p99_duration_ms >= timeout_ms:
            raise ValueError(
                f"alarms.p99_duration_ms must be below lambda.timeout_seconds "
                f"({timeout_ms} ms), or the alarm fires only after invocations time out"
            )
        if self.llm.request_timeout_seconds >= self.lambda_.timeout_seconds:
            raise ValueError(
                "llm.request_timeout_seconds must be below lambda.timeout_seconds, so a slow "
                "model turns into a clean 504 instead of a killed invocation"
            )
        return self
