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
# Lambda's longest timeout; a task worker must finish one agent run within it.
LAMBDA_MAX_TIMEOUT_SECONDS = 900
# SQS keeps a message at most 14 days, and a visibility timeout can be at most 12 hours.
SQS_MAX_RETENTION_DAYS = 14
SQS_MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200
# AWS's guidance for SQS event sources: visibility timeout >= 6 x the function's timeout (plus the
# batching window). The same value as constructs/secure_defaults.py's
# QUEUE_VISIBILITY_TIMEOUT_FACTOR, which builds the queue (config never imports CDK; a test checks
# that the two agree).
SQS_VISIBILITY_TIMEOUT_FACTOR = 6

# The values CloudWatch Logs accepts for RetentionInDays.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")]
# The characters Secrets Manager accepts in a secret's name.
SecretName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$")]
# An HTTP header name (RFC 9110 token).
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")]


def _below_api_gateway_limit(timeout_seconds: int) -> int:
    if timeout_seconds >= API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS:
        raise ValueError(
            f"must be below {API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS} (API Gateway's "
            f"integration timeout), so the function answers before the API gives up"
        )
    return timeout_seconds


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
        return _below_api_gateway_limit(value)

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


# --- webhook / async pattern (stacks/async_agent_stack.py) ----------------------------------------


class WebhookIngressConfig(_Strict):
    """Behind ``POST /webhook`` and ``GET /tasks/{task_id}``: validate, store, enqueue, answer."""

    memory_mb: int = Field(default=256, ge=128, le=10_240)
    # Behind API Gateway like the agent API, so the same 29 s integration limit applies.
    timeout_seconds: int = Field(default=10, ge=3)
    reserved_concurrency: int = Field(default=5, ge=1, le=10_000)

    @field_validator("timeout_seconds")
    @classmethod
    def _below_api_gateway_limit(cls, value: int) -> int:
        return _below_api_gateway_limit(value)


class WebhookWorkerConfig(_Strict):
    """The task queue's consumer: runs one agent task per message."""

    memory_mb: int = Field(default=512, ge=128, le=10_240)
    # One agent run (every model call and tool) must fit; also the task's lease.
    timeout_seconds: int = Field(default=300, ge=1, le=LAMBDA_MAX_TIMEOUT_SECONDS)
    reserved_concurrency: int = Field(default=5, ge=1, le=10_000)
    # Agent tasks are long: one message per invocation, so one slow task never holds others back.
    batch_size: int = Field(default=1, ge=1, le=10)
    max_batching_window_seconds: int = Field(default=0, ge=0, le=300)
    # The event source's scaling cap (AWS allows 2-1000); at most reserved_concurrency, or the
    # poller invokes past the function's limit and throttled messages burn their receive count.
    max_concurrency: int = Field(default=5, ge=2, le=1000)
    # Back-off before a failed try is retried: base doubled per receive, capped at max (seconds;
    # SQS allows at most 12 hours of invisibility).
    retry_base_seconds: int = Field(default=10, ge=0, le=SQS_MAX_VISIBILITY_TIMEOUT_SECONDS)
    retry_max_seconds: int = Field(default=900, ge=0, le=SQS_MAX_VISIBILITY_TIMEOUT_SECONDS)

    @model_validator(mode="after")
    def _consistent(self) -> WebhookWorkerConfig:
        if self.max_concurrency > self.reserved_concurrency:
            raise ValueError(
                "max_concurrency cannot exceed reserved_concurrency: raise reserved_concurrency "
                "or lower max_concurrency, or throttled messages count as failed tries"
            )
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_seconds must be at least retry_base_seconds")
        return self


class WebhookQueueConfig(_Strict):
    """Both queues (tasks and callbacks) and their dead-letter queues."""

    retention_days: int = Field(default=4, ge=1, le=SQS_MAX_RETENTION_DAYS)
    # Receives before SQS moves a message to the dead-letter queue.
    max_receive_count: int = Field(default=5, ge=1, le=1000)
    dlq_retention_days: int = Field(default=14, ge=1, le=SQS_MAX_RETENTION_DAYS)
    # Alarm when the oldest waiting message is this old: the consumers are not keeping up.
    oldest_message_age_alarm_seconds: int = Field(default=900, ge=60, le=1_209_600)

    @model_validator(mode="after")
    def _dlq_outlives_source(self) -> WebhookQueueConfig:
        # SQS keeps a message's original enqueue time when it moves it to the DLQ.
        if self.dlq_retention_days <= self.retention_days:
            raise ValueError(
                "dlq_retention_days must be greater than retention_days: a message must not "
                "expire in the DLQ before it could have expired in the source"
            )
        return self


class InboundSignatureConfig(_Strict):
    """Webhook sources that sign their requests (HMAC); then ``POST /webhook`` needs no API auth."""

    # github: X-Hub-Signature-256 "sha256=<hex>"; standard: Standard Webhooks (webhook-id,
    # webhook-timestamp, webhook-signature "v1,<base64>").
    style: Literal["github", "standard"]
    # None: the style's usual header, which the runtime knows (X-Hub-Signature-256 for github,
    # webhook-signature for standard); only a source that renames it needs this.
    header: HeaderName | None = None
    # Secrets Manager name; the stack creates a placeholder, you put the source's secret in it.
    secret_name: SecretName
    # Standard Webhooks: reject timestamps further than this from now (replay protection).
    tolerance_seconds: int = Field(default=300, ge=1, le=3600)


class CallbackConfig(_Strict):
    """Signed result callbacks to ``callback_url``, retried through the callback queue."""

    # Per attempt; a receiver slower than this counts as failed and is retried.
    timeout_seconds: int = Field(default=10, ge=1, le=60)
    max_attempts: int = Field(default=8, ge=1, le=50)
    # Full-jitter exponential back-off between attempts (SQS per-message DelaySeconds).
    base_delay_seconds: int = Field(default=5, ge=0, le=86_400)
    max_delay_seconds: int = Field(default=3600, ge=0, le=86_400)
    # After a rotation of the signing secret, callbacks carry both signatures this long.
    rotation_overlap_seconds: int = Field(default=86_400, ge=0, le=2_592_000)
    # None: "<name>/webhook-signing-secret". A default keeps one line less in every config and
    # still gives each deployment its own, predictable name (receivers are told where to look);
    # set it when an organisation's naming scheme says otherwise.
    signing_secret_name: SecretName | None = None
    # Plain http to 127.0.0.1/::1 for callbacks: local development only, never in a deployment.
    allow_http_loopback: bool = False
    # An endpoint that answered 410 Gone gets no callbacks (and no new tasks) for this long.
    gone_ttl_seconds: int = Field(default=604_800, ge=60, le=31_536_000)
    # Callbacks per invocation; the function's timeout is derived from it and timeout_seconds
    # (stacks/async_agent_stack.py), at most 10 x 62 + 5 = 625 s, within Lambda's 900 s.
    batch_size: int = Field(default=5, ge=1, le=10)
    memory_mb: int = Field(default=256, ge=128, le=10_240)
    # Also the event source's scaling cap, whose minimum AWS sets at 2.
    reserved_concurrency: int = Field(default=5, ge=2, le=10_000)

    @model_validator(mode="after")
    def _delays(self) -> CallbackConfig:
        if self.max_delay_seconds < self.base_delay_seconds:
            raise ValueError("max_delay_seconds must be at least base_delay_seconds")
        return self


class WebhookConfig(_Strict):
    """The asynchronous pattern: accept a task, answer 202, run it from a queue, call back."""

    # Task records and their results expire this long after the last change.
    task_ttl_seconds: int = Field(default=604_800, ge=300, le=31_536_000)
    # The same Idempotency-Key returns the same task for this long.
    idempotency_window_seconds: int = Field(default=86_400, ge=60, le=31_536_000)
    ingress: WebhookIngressConfig = WebhookIngressConfig()
    worker: WebhookWorkerConfig = WebhookWorkerConfig()
    queue: WebhookQueueConfig = WebhookQueueConfig()
    # None: webhook callers use the API's auth (api.auth) like every other method.
    inbound_signature: InboundSignatureConfig | None = None
    callback: CallbackConfig = CallbackConfig()

    @model_validator(mode="after")
    def _consistent(self) -> WebhookConfig:
        if self.idempotency_window_seconds > self.task_ttl_seconds:
            raise ValueError(
                "idempotency_window_seconds must not exceed task_ttl_seconds, so a replayed "
                "Idempotency-Key always finds its task; raise task_ttl_seconds"
            )
        # Worst case before SQS dead-letters a message: every receive waits the longer of the
        # visibility timeout and the back-off. It must fit in the queue's retention, or a failing
        # task silently expires instead of reaching the DLQ.
        per_receive = max(self.worker_visibility_timeout_seconds, self.worker.retry_max_seconds)
        retention = self.queue.retention_days * 86_400
        if self.queue.max_receive_count * per_receive >= retention:
            raise ValueError(
                f"queue.max_receive_count x max(worker visibility timeout, "
                f"worker.retry_max_seconds) = {self.queue.max_receive_count * per_receive} s "
                f"must be below queue.retention_days ({retention} s): a failing task would "
                f"expire before it reaches the DLQ; raise retention_days or lower the others"
            )
        return self

    @property
    def worker_visibility_timeout_seconds(self) -> int:
        """The task queue's visibility timeout, as ``constructs/task_queue.py`` computes it."""
        return (
            SQS_VISIBILITY_TIMEOUT_FACTOR * self.worker.timeout_seconds
            + self.worker.max_batching_window_seconds
        )


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
    # The asynchronous pattern; its defaults need nothing from the yaml (secret names derive
    # from ``name``), so a config written before the pattern existed stays valid.
    webhook: WebhookConfig = WebhookConfig()
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
        worker_timeout = self.webhook.worker.timeout_seconds
        if self.llm.request_timeout_seconds >= worker_timeout:
            raise ValueError(
                f"llm.request_timeout_seconds must be below webhook.worker.timeout_seconds "
                f"({worker_timeout} s), so a slow model fails the try instead of killing the "
                f"worker; raise the worker's timeout or lower the LLM's"
            )
        if self.alarms.p99_duration_ms >= worker_timeout * 1000:
            raise ValueError(
                f"alarms.p99_duration_ms must be below webhook.worker.timeout_seconds "
                f"({worker_timeout * 1000} ms): the task worker's p99 alarm uses the same "
                f"threshold and would fire only after tasks time out"
            )
        names = [
            ("llm.api_key_secret_name", self.llm.api_key_secret_name),
            ("webhook.callback.signing_secret_name", self.callback_signing_secret_name),
            (
                "webhook.inbound_signature.secret_name",
                self.webhook.inbound_signature.secret_name
                if self.webhook.inbound_signature
                else None,
            ),
        ]
        given = [(field, value) for field, value in names if value is not None]
        for i, (field, value) in enumerate(given):
            for other, other_value in given[i + 1 :]:
                if value == other_value:
                    raise ValueError(
                        f"{field} and {other} are both {value!r}: Secrets Manager names are "
                        f"unique per account and region, so give each secret its own name"
                    )
        return self

    @property
    def callback_signing_secret_name(self) -> str:
        return self.webhook.callback.signing_secret_name or f"{self.name}/webhook-signing-secret"
