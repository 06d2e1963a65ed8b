"""Environment contract of the asynchronous (webhook) pattern, validated once per cold start.

``stacks/async_agent_stack.py`` gives the same variables to all three functions (ingress, task
worker, callback worker) and grants each only what it uses; the container worker of the
container pattern reads the same variables. The agent itself (model, session table, limits) is
described by :class:`runtime.settings.RuntimeSettings`, which the task worker also reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from runtime.settings import parse_environment


class TaskSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    # --- state and queues
    task_table_name: str = Field(min_length=3, alias="TASK_TABLE_NAME")
    task_queue_url: str = Field(min_length=1, alias="TASK_QUEUE_URL")
    callback_queue_url: str = Field(min_length=1, alias="CALLBACK_QUEUE_URL")
    callback_dlq_url: str = Field(min_length=1, alias="CALLBACK_DLQ_URL")
    # The AUTH token of the queues given as redis:// or rediss:// URLs (runtime.tasks.redis_queue),
    # the same secret the Redis session store reads; never part of a URL.
    redis_password: SecretStr | None = Field(default=None, alias="REDIS_PASSWORD")
    # Task records (and their results) expire this long after the last change.
    task_ttl_seconds: int = Field(ge=300, le=31_536_000, alias="TASK_TTL_SECONDS")
    # The same Idempotency-Key returns the same task for this long.
    idempotency_window_seconds: int = Field(
        ge=60, le=31_536_000, alias="IDEMPOTENCY_WINDOW_SECONDS"
    )
    # The task queue's redrive maxReceiveCount: the worker's last try marks the task failed.
    max_receive_count: int = Field(ge=1, le=1000, alias="TASK_MAX_RECEIVE_COUNT")
    # A worker's claim on a task; the task worker's timeout, so a crashed run can be taken over.
    task_lease_seconds: int = Field(ge=1, le=43_200, alias="TASK_LEASE_SECONDS")
    # Back-off before a failed try is retried (visibility change; doubled per receive, capped).
    task_retry_base_seconds: int = Field(
        default=10, ge=0, le=43_200, alias="TASK_RETRY_BASE_SECONDS"
    )
    task_retry_max_seconds: int = Field(
        default=900, ge=0, le=43_200, alias="TASK_RETRY_MAX_SECONDS"
    )
    max_body_bytes: int = Field(ge=64, le=10_485_760, alias="MAX_BODY_BYTES")
    max_message_chars: int = Field(ge=1, le=1_000_000, alias="MAX_MESSAGE_CHARS")

    # --- inbound signatures (webhook sources such as GitHub or a Standard Webhooks sender)
    inbound_signature_style: Literal["none", "github", "standard"] = Field(
        default="none", alias="INBOUND_SIGNATURE_STYLE"
    )
    inbound_signature_header: str | None = Field(default=None, alias="INBOUND_SIGNATURE_HEADER")
    inbound_signature_secret_arn: str | None = Field(
        default=None, alias="INBOUND_SIGNATURE_SECRET_ARN"
    )
    inbound_signature_tolerance_seconds: int = Field(
        default=300, ge=1, le=3600, alias="INBOUND_SIGNATURE_TOLERANCE_SECONDS"
    )

    # --- callbacks
    callback_signing_secret_arn: str = Field(min_length=1, alias="CALLBACK_SIGNING_SECRET_ARN")
    callback_timeout_seconds: float = Field(gt=0, le=60, alias="CALLBACK_TIMEOUT_SECONDS")
    callback_max_attempts: int = Field(ge=1, le=50, alias="CALLBACK_MAX_ATTEMPTS")
    callback_base_delay_seconds: int = Field(ge=0, le=86_400, alias="CALLBACK_BASE_DELAY_SECONDS")
    callback_max_delay_seconds: int = Field(ge=0, le=86_400, alias="CALLBACK_MAX_DELAY_SECONDS")
    # After a rotation, callbacks carry signatures by the new and the previous secret this long.
    callback_rotation_overlap_seconds: int = Field(
        ge=0, le=2_592_000, alias="CALLBACK_ROTATION_OVERLAP_SECONDS"
    )
    # Plain http to 127.0.0.1/::1 only: for local development and tests, never in a deployment.
    callback_allow_http_loopback: bool = Field(default=False, alias="CALLBACK_ALLOW_HTTP_LOOPBACK")
    # An endpoint that answered 410 Gone gets no callbacks (and no new tasks) for this long.
    callback_gone_ttl_seconds: int = Field(
        default=604_800, ge=60, le=31_536_000, alias="CALLBACK_GONE_TTL_SECONDS"
    )

    @field_validator("task_queue_url", "callback_queue_url", "callback_dlq_url")
    @classmethod
    def _queue_url(cls, url: str, info: ValidationInfo) -> str:
        # SQS checks its own URLs; a Redis one is checked here, so a typo fails the start rather
        # than the first send.
        from runtime.tasks.redis_queue import is_redis_queue_url, parse_queue_url

        if is_redis_queue_url(url):
            parse_queue_url(url, variable=cls.model_fields[str(info.field_name)].alias or "URL")
        return url

    @model_validator(mode="after")
    def _consistent(self) -> TaskSettings:
        if self.inbound_signature_style != "none" and not self.inbound_signature_secret_arn:
            raise ValueError(
                "INBOUND_SIGNATURE_SECRET_ARN is required when INBOUND_SIGNATURE_STYLE is set"
            )
        if self.task_ttl_seconds < self.idempotency_window_seconds:
            raise ValueError(
                "TASK_TTL_SECONDS must be at least IDEMPOTENCY_WINDOW_SECONDS, so a replayed "
                "Idempotency-Key always finds its task"
            )
        if self.callback_max_delay_seconds < self.callback_base_delay_seconds:
            raise ValueError("CALLBACK_MAX_DELAY_SECONDS must be at least the base delay")
        if self.task_retry_max_seconds < self.task_retry_base_seconds:
            raise ValueError("TASK_RETRY_MAX_SECONDS must be at least TASK_RETRY_BASE_SECONDS")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TaskSettings:
        return parse_environment(cls, environ, "task")
