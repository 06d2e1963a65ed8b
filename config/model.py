"""The deployment config model. Every field a stack reads is declared and checked here.

Limits come from AWS, not taste: API Gateway's REST integration timeout is 29 s, CloudWatch Logs
accepts only a fixed set of retention periods, Lambda memory is 128-10240 MB.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

# Fargate's task sizes: CPU units and the memory (MiB) each allows. ECS refuses other pairs at
# deploy time, after the stack has started updating; the config refuses them at synth.
FARGATE_MEMORY_BY_CPU: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16_385, 1024)),
    4096: tuple(range(8192, 30_721, 1024)),
    8192: tuple(range(16_384, 61_441, 4096)),
    16_384: tuple(range(32_768, 122_881, 8192)),
}
# ECS waits at most this long between SIGTERM and SIGKILL on Fargate (stopTimeout's maximum).
FARGATE_MAX_STOP_TIMEOUT_SECONDS = 120
# The container's stop timeout is its drain time plus this margin (logs flushed, process exit).
CONTAINER_STOP_MARGIN_SECONDS = 10
# The runtime's own limit (runtime/service/settings.py, SERVICE_MAX_CONCURRENT_SESSIONS).
SERVICE_MAX_CONCURRENT_SESSIONS = 10_000

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


# Each tenant adds an API key, a usage plan and their link to every REST API's stack; 50 keeps
# two APIs' worth well inside CloudFormation's 500 resources per stack and API Gateway's default
# 300 usage plans per account and region.
MAX_API_TENANTS = 50


class TenantQuotaConfig(_Strict):
    """Requests one tenant may make per period, counted by API Gateway across every method."""

    limit: int = Field(ge=1, le=2_000_000_000)
    period: Literal["day", "week", "month"] = "day"


class TenantConfig(_Strict):
    """One API consumer: its own API key, and a usage plan that throttles and meters it."""

    # Also the API key's and usage plan's name (prefixed by the API's) and the construct id.
    name: Name
    # Steady-state requests per second and burst for this tenant's key; within the stage's.
    throttle_rate_limit: float = Field(gt=0, le=10_000)
    throttle_burst_limit: int = Field(ge=1, le=5000)
    # null: throttled only, no quota.
    quota: TenantQuotaConfig | None = None

    @model_validator(mode="after")
    def _burst_covers_rate(self) -> TenantConfig:
        if self.throttle_burst_limit < self.throttle_rate_limit:
            raise ValueError(
                f"tenant {self.name}: throttle_burst_limit ({self.throttle_burst_limit}) must be "
                f"at least throttle_rate_limit ({self.throttle_rate_limit:g})"
            )
        return self


class ApiConfig(_Strict):
    throttle_rate_limit: float = Field(default=10, gt=0, le=10_000)
    throttle_burst_limit: int = Field(default=20, ge=1, le=5000)
    auth: Literal["iam", "api_key"] = "iam"
    # Only with auth: api_key and no tenants; requests per day for the one default key.
    quota_per_day: int | None = Field(default=None, ge=1)
    # Per-tenant API keys with usage plans on the REST APIs (agent and webhook). Set: every
    # method with the API's auth also requires a tenant's key (x-api-key) on top of IAM, and the
    # single default key of auth: api_key is not created.
    tenants: tuple[TenantConfig, ...] = Field(default=(), max_length=MAX_API_TENANTS)

    @model_validator(mode="after")
    def _quota_needs_keys(self) -> ApiConfig:
        if self.quota_per_day is not None and self.auth != "api_key":
            raise ValueError("quota_per_day applies to auth: api_key only")
        if self.throttle_burst_limit < self.throttle_rate_limit:
            raise ValueError("throttle_burst_limit must be at least throttle_rate_limit")
        self._tenants_fit()
        return self

    def _tenants_fit(self) -> None:
        names = [tenant.name for tenant in self.tenants]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"api.tenants names must be unique (each names an API key and a usage plan); "
                f"{', '.join(repeated)} appears more than once"
            )
        if self.tenants and self.quota_per_day is not None:
            raise ValueError(
                "api.quota_per_day is the quota of the single default key, which is not created "
                "when api.tenants is set: remove quota_per_day and give each tenant a quota"
            )
        for tenant in self.tenants:
            # API Gateway applies the stricter of stage and plan, so a larger plan limit would
            # promise the tenant throughput the stage never gives.
            if tenant.throttle_rate_limit > self.throttle_rate_limit:
                raise ValueError(
                    f"api.tenants {tenant.name}: throttle_rate_limit "
                    f"({tenant.throttle_rate_limit:g}) exceeds the stage's api.throttle_rate_limit "
                    f"({self.throttle_rate_limit:g}); lower the tenant's or raise the stage's"
                )
            if tenant.throttle_burst_limit > self.throttle_burst_limit:
                raise ValueError(
                    f"api.tenants {tenant.name}: throttle_burst_limit "
                    f"({tenant.throttle_burst_limit}) exceeds the stage's api.throttle_burst_limit "
                    f"({self.throttle_burst_limit}); lower the tenant's or raise the stage's"
                )

    @property
    def requires_api_key(self) -> bool:
        """Methods with the API's own auth require a usage-plan key (x-api-key)."""
        return self.auth == "api_key" or bool(self.tenants)


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


# --- container pattern (stacks/container_agent_stack.py) ------------------------------------------

# Application Auto Scaling's schedule expressions: cron with six fields, or a one-time at().
_CRON = re.compile(r"^cron\(\S+( \S+){5}\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
# An image reference pinned to something: registry/repository with a tag, a digest, or both.
_IMAGE_URI = re.compile(
    r"^(?P<repository>[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9][a-z0-9._/-]*)+)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
# A private ECR repository: reachable through the ECR VPC endpoints without internet egress.
ECR_IMAGE_URI = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")


def _iana_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as UTC or Europe/Berlin") from None
    return value


def _pinned_image(value: str) -> str:
    match = _IMAGE_URI.match(value)
    if match is None or not (match.group("tag") or match.group("digest")):
        raise ValueError(
            "must be registry/repository:tag or registry/repository@sha256:<digest>, e.g. "
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/agent:1.4.2"
        )
    if match.group("tag") == "latest" and not match.group("digest"):
        raise ValueError("must not use the tag 'latest': pin a version or a digest")
    return value


def _digest_pinned_image(value: str) -> str:
    _pinned_image(value)
    if "@sha256:" not in value:
        raise ValueError(
            "must be pinned by digest: registry/repository[:tag]@sha256:<digest>, e.g. "
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/agent:1.4.2@sha256:<64 hex digits> "
            "(`docker buildx imagetools inspect <image>` prints it)"
        )
    return value


def _fargate_size(cpu: int, memory_mib: int) -> None:
    allowed = FARGATE_MEMORY_BY_CPU.get(cpu)
    if allowed is None:
        raise ValueError(
            f"cpu must be one of Fargate's sizes: {', '.join(map(str, FARGATE_MEMORY_BY_CPU))}"
        )
    if memory_mib not in allowed:
        choices = (
            ", ".join(map(str, allowed))
            if len(allowed) <= 4
            else f"{allowed[0]}-{allowed[-1]} in steps of {allowed[1] - allowed[0]}"
        )
        raise ValueError(f"memory_mib {memory_mib} is not a Fargate size for cpu {cpu}: {choices}")


class ScalingWindow(_Strict):
    """One scheduled action: from ``cron`` on, the capacity bounds are ``min``-``max``.

    An action holds until the next one runs, so a window is usually two entries: one that raises
    the bounds (weekday mornings) and one that restores them (evenings).
    """

    # Also the construct id of the scheduled action.
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
    # cron(minutes hours day-of-month month day-of-week year), or at(yyyy-mm-ddThh:mm:ss).
    cron: str
    min_capacity: int = Field(ge=0, le=1000)
    max_capacity: int = Field(ge=1, le=1000)
    # IANA time zone the expression is read in.
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _schedule_expression(cls, value: str) -> str:
        at = _AT.match(value)
        if at is not None:
            try:
                datetime.fromisoformat(at.group(1))
            except ValueError:
                raise ValueError(f"{value!r} is not a valid date and time") from None
            return value
        if not _CRON.match(value):
            raise ValueError(
                "must be an Application Auto Scaling schedule: cron(minutes hours day-of-month "
                "month day-of-week year), e.g. cron(0 8 ? * MON-FRI *), or at(2030-01-31T08:00:00)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _iana_zone(value)

    @model_validator(mode="after")
    def _bounds(self) -> ScalingWindow:
        if self.min_capacity > self.max_capacity:
            raise ValueError("min_capacity cannot exceed max_capacity")
        return self


class ContainerServiceConfig(_Strict):
    """The ALB-fronted Fargate service (HTTP and WebSocket sessions)."""

    cpu: int = 512
    memory_mib: int = 1024
    # Autoscaling owns the task count between these; the template sets no desired count, so a
    # deploy never resets a scaled-out service (registering the bounds lifts it to min_capacity).
    # At least 1: the load balancer needs a target.
    min_capacity: int = Field(default=2, ge=1, le=1000)
    max_capacity: int = Field(default=10, ge=1, le=1000)
    # Target tracking: average CPU and memory utilization (%), and ALB requests per task a minute.
    cpu_target_percent: int = Field(default=60, ge=10, le=90)
    memory_target_percent: int = Field(default=70, ge=10, le=90)
    requests_per_target: int = Field(default=600, ge=1, le=1_000_000)
    scheduled_scaling: tuple[ScalingWindow, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ContainerServiceConfig:
        _fargate_size(self.cpu, self.memory_mib)
        if self.min_capacity > self.max_capacity:
            raise ValueError("min_capacity cannot exceed max_capacity")
        names = [window.name for window in self.scheduled_scaling]
        if len(set(names)) != len(names):
            raise ValueError(f"scheduled_scaling names must be unique; got {names}")
        for window in self.scheduled_scaling:
            if window.min_capacity < 1:
                raise ValueError(
                    f"scheduled_scaling {window.name}: min_capacity must be at least 1, or the "
                    f"load balancer is left without a target"
                )
        return self


class ContainerWorkerConfig(_Strict):
    """The queue worker service: runs the async stack's tasks, scaled on the queue's backlog."""

    cpu: int = 512
    memory_mib: int = 1024
    # 0 lets an idle worker service cost nothing; the first queued task starts one again.
    min_capacity: int = Field(default=1, ge=0, le=1000)
    max_capacity: int = Field(default=10, ge=1, le=1000)
    # Target of messages waiting per running task; agent tasks take minutes, so keep it small.
    backlog_per_task: int = Field(default=2, ge=1, le=1000)
    # How long a held message stays hidden; the worker renews it while the task runs, so this is
    # how soon a crashed worker's task is picked up again, not a limit on the task's duration.
    visibility_seconds: int = Field(default=60, ge=10, le=SQS_MAX_VISIBILITY_TIMEOUT_SECONDS)

    @model_validator(mode="after")
    def _consistent(self) -> ContainerWorkerConfig:
        _fargate_size(self.cpu, self.memory_mib)
        if self.min_capacity > self.max_capacity:
            raise ValueError("min_capacity cannot exceed max_capacity")
        return self


class RedisConfig(_Strict):
    """ElastiCache for the service's sessions: TLS, AUTH, encrypted at rest, private subnets."""

    # valkey: the open-source fork ElastiCache prices about 20% below redis for the same node.
    engine: Literal["valkey", "redis"] = "valkey"
    node_type: str = Field(default="cache.t4g.small", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
    # Read replicas in other AZs; with at least one, Multi-AZ automatic failover is on.
    num_replicas: int = Field(default=1, ge=0, le=5)
    # Daily snapshots kept this many days (0: none).
    snapshot_retention_days: int = Field(default=7, ge=0, le=35)
    # Restore (docs/restore-runbook.md): the name of an ElastiCache snapshot to seed the cache
    # from. Setting or changing it REPLACES the cache (a new endpoint, the service redeploys;
    # with removal_policy retain the old one leaves a final snapshot). Leave it set afterwards:
    # removing it replaces the cache again, with an empty one.
    restore_from_snapshot: str | None = Field(
        default=None, pattern=r"^[A-Za-z][A-Za-z0-9-]{0,254}$"
    )


class ContainerConfig(_Strict):
    """The container pattern: VPC, ALB, Fargate service and worker, ElastiCache sessions."""

    # false: the ``<name>-container`` stack is not built. Its NAT gateway, load balancer and
    # Redis node bill every hour whether or not anyone calls the agent (about $80/month at the
    # smallest sizes); a profile that should cost nothing when idle runs the serverless and
    # async patterns only. The rest of this section is still validated, so switching it on is
    # a one-line change.
    enabled: bool = True
    # At most one per AZ. 0: no internet egress at all; the tasks reach AWS through VPC
    # endpoints, so the model must be Bedrock (see DeploymentConfig's checks).
    nat_gateways: int = Field(default=2, ge=0, le=3)
    # Subnets in this many AZs (2 or 3). Stacks are environment-agnostic, so the AZs are the
    # region's first ones, chosen at deploy time; 3 needs a region with three AZs.
    max_azs: int = Field(default=2, ge=2, le=3)
    # Graviton (arm64) costs about 20% less; the image is built for this platform at deploy.
    architecture: Literal["arm64", "x86_64"] = "arm64"
    # ACM certificate for the load balancer's domain: HTTPS on 443, and HTTP 80 redirects to it.
    # Without one the load balancer listens on plain HTTP 80 (development only).
    certificate_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$",
    )
    # Plain HTTP without a certificate: development only. The service's bearer token would cross
    # the network in clear text, so without certificate_arn this must be set explicitly.
    allow_plain_http: bool = False
    # Who may connect to the load balancer (IPv4 CIDRs). Every request also needs the service's
    # bearer token (runtime/service/auth.py); narrowing this keeps scanners off the endpoint.
    ingress_cidrs: tuple[str, ...] = Field(default=("0.0.0.0/0",), min_length=1)
    # A pre-built image (tag or digest, never "latest"); unset: the repository's Dockerfile,
    # built and pushed by `cdk deploy` (which then needs Docker).
    image_uri: str | None = None
    # After SIGTERM: in-flight steps finish, WebSockets close. The container's stop timeout is
    # this plus 10 s, within Fargate's 120 s; the target group's deregistration delay equals it.
    drain_seconds: int = Field(
        default=30, ge=1, le=FARGATE_MAX_STOP_TIMEOUT_SECONDS - CONTAINER_STOP_MARGIN_SECONDS
    )
    # WebSocket ping interval; the load balancer's idle timeout must be longer.
    ws_heartbeat_seconds: int = Field(default=20, ge=1, le=3600)
    alb_idle_timeout_seconds: int = Field(default=120, ge=1, le=4000)
    # Per task: HTTP steps in flight plus open WebSockets; beyond it the service answers 503.
    max_concurrent_sessions: int = Field(default=100, ge=1, le=SERVICE_MAX_CONCURRENT_SESSIONS)
    service: ContainerServiceConfig = ContainerServiceConfig()
    worker: ContainerWorkerConfig = ContainerWorkerConfig()
    redis: RedisConfig = RedisConfig()

    @field_validator("ingress_cidrs")
    @classmethod
    def _ipv4_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                network = ipaddress.IPv4Network(cidr, strict=False)
            except ValueError:
                raise ValueError(
                    f"{cidr!r} is not an IPv4 network such as 203.0.113.0/24"
                ) from None
            if str(network) != cidr:
                raise ValueError(f"{cidr!r} has host bits set; did you mean {network}?")
        return value

    @field_validator("image_uri")
    @classmethod
    def _pinned_image(cls, value: str | None) -> str | None:
        return value if value is None else _pinned_image(value)

    @model_validator(mode="after")
    def _consistent(self) -> ContainerConfig:
        if self.certificate_arn is None and not self.allow_plain_http:
            raise ValueError(
                "certificate_arn is required: clients send the service's bearer token, which "
                "must not cross the network in clear text; for development only, set "
                "allow_plain_http: true instead"
            )
        if self.nat_gateways > self.max_azs:
            raise ValueError(
                f"nat_gateways ({self.nat_gateways}) cannot exceed max_azs ({self.max_azs}): "
                f"there is at most one NAT gateway per AZ"
            )
        if self.ws_heartbeat_seconds >= self.alb_idle_timeout_seconds:
            raise ValueError(
                f"alb_idle_timeout_seconds ({self.alb_idle_timeout_seconds}) must be greater "
                f"than ws_heartbeat_seconds ({self.ws_heartbeat_seconds}), or the load balancer "
                f"closes idle WebSockets between heartbeats; raise the timeout or lower the "
                f"heartbeat"
            )
        return self

    @property
    def stop_timeout_seconds(self) -> int:
        """The containers' stop timeout: the drain plus a margin, at most Fargate's 120 s."""
        return self.drain_seconds + CONTAINER_STOP_MARGIN_SECONDS


# --- Kubernetes (k8s/: cdk8s charts, Pulumi deployment, Cloud Run) -------------------------------

# The time a pod's preStop hook waits before the process gets SIGTERM: endpoint controllers and
# ingress controllers need a few seconds to stop routing new requests to a terminating pod.
K8S_PRE_STOP_SECONDS = 5
# What a pod gets beyond preStop + drain before SIGKILL: log flush and process exit.
K8S_TERMINATION_MARGIN_SECONDS = 10
# Cloud Run's largest containerConcurrency.
CLOUD_RUN_MAX_CONCURRENCY = 1000
# Kubernetes object names and label values used as names: DNS-1123 labels.
K8sName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
# Quantities in the forms this project writes: CPU as millicores or cores, memory in Ki/Mi/Gi.
CpuQuantity = Annotated[str, StringConstraints(pattern=r"^([1-9][0-9]*m|[0-9]+(\.[0-9]{1,3})?)$")]
MemoryQuantity = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*(Ki|Mi|Gi)$")]
_MEMORY_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
# Five-field cron (minute hour day-of-month month day-of-week), as KEDA's cron scaler reads it.
_FIVE_FIELD_CRON = re.compile(r"^\S+( \S+){4}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_SQS_QUEUE_URL = re.compile(
    r"^https://sqs\.(?P<region>[a-z]{2}(-[a-z]+)+-\d)\.amazonaws\.com(\.cn)?/\d{12}/[A-Za-z0-9_-]{1,80}$"
)
_IAM_ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"
# A Secrets Manager secret's complete ARN: the name, then the six characters Secrets Manager
# appends to it (a partial ARN, without them, also matches a secret named "<name>-XXXXXX").
_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:secretsmanager:(?P<region>[a-z]{2}(-[a-z]+)+-\d):\d{12}:"
    r"secret:(?P<name>[A-Za-z0-9/_+=.@-]{1,512})-[A-Za-z0-9]{6}$"
)


def _networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for cidr in value:
        try:
            network = ipaddress.ip_network(cidr)
        except ValueError:
            raise ValueError(f"{cidr!r} is not a network such as 10.0.0.0/16") from None
        if str(network) != cidr:
            raise ValueError(f"{cidr!r} has host bits set; did you mean {network}?")
    return value


def cpu_millis(quantity: str) -> int:
    """``250m`` -> 250, ``1.5`` -> 1500."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return round(float(quantity) * 1000)


def memory_bytes(quantity: str) -> int:
    """``512Mi`` -> 536870912."""
    return int(quantity[:-2]) * _MEMORY_UNITS[quantity[-2:]]


class PodResources(_Strict):
    """Requests (what the scheduler reserves, what HPA percentages are of) and limits."""

    cpu_request: CpuQuantity = "250m"
    memory_request: MemoryQuantity = "512Mi"
    cpu_limit: CpuQuantity = "1"
    # Memory limit = request by default would OOM-kill a long agent run that grows; the limit
    # leaves headroom and the VPA's recommendation tells when the request is too low.
    memory_limit: MemoryQuantity = "1Gi"

    @model_validator(mode="after")
    def _requests_within_limits(self) -> PodResources:
        if cpu_millis(self.cpu_request) > cpu_millis(self.cpu_limit):
            raise ValueError(
                f"cpu_request ({self.cpu_request}) cannot exceed cpu_limit ({self.cpu_limit})"
            )
        if memory_bytes(self.memory_request) > memory_bytes(self.memory_limit):
            raise ValueError(
                f"memory_request ({self.memory_request}) cannot exceed memory_limit "
                f"({self.memory_limit})"
            )
        return self


class IngressControllerConfig(_Strict):
    """Where the ingress controller's pods run: the service's NetworkPolicy admits only them."""

    namespace: K8sName = "ingress-nginx"
    pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "ingress-nginx"}, min_length=1
    )
    # Where proxied requests come from: the controller pods' network (X-Forwarded-* are believed
    # only from here). An AWS ALB in IP target mode sends from the VPC's subnets, not from pods,
    # so the NetworkPolicy admits these networks too.
    source_cidrs: tuple[str, ...] = Field(default=("10.0.0.0/8",), min_length=1)

    @field_validator("source_cidrs")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _networks(value)


class K8sIngressConfig(_Strict):
    """An Ingress for the service; its timeouts are sized for WebSocket sessions."""

    # nginx: ingress-nginx annotations and a TLS secret; alb: AWS Load Balancer Controller
    # annotations and an ACM certificate.
    controller: Literal["nginx", "alb"] = "nginx"
    class_name: K8sName = "nginx"
    host: str
    # nginx: the Secret holding the host's certificate (cert-manager or by hand).
    tls_secret_name: K8sName | None = None
    # alb: the ACM certificate for host.
    certificate_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$",
    )
    # Development only, as container.allow_plain_http: the bearer token would cross in clear.
    allow_plain_http: bool = False

    @field_validator("host")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not _HOSTNAME.match(value):
            raise ValueError(f"{value!r} is not a DNS name such as agent.example.com")
        return value

    @model_validator(mode="after")
    def _tls(self) -> K8sIngressConfig:
        if self.controller == "nginx" and self.certificate_arn is not None:
            raise ValueError("certificate_arn is for controller alb; nginx uses tls_secret_name")
        if self.controller == "alb" and self.tls_secret_name is not None:
            raise ValueError("tls_secret_name is for controller nginx; alb uses certificate_arn")
        has_tls = self.tls_secret_name is not None or self.certificate_arn is not None
        if not has_tls and not self.allow_plain_http:
            field = "tls_secret_name" if self.controller == "nginx" else "certificate_arn"
            raise ValueError(
                f"{field} is required: clients send the service's bearer token, which must not "
                f"cross the network in clear text; for development only, set "
                f"allow_plain_http: true instead"
            )
        return self


class K8sServiceConfig(_Strict):
    """The agent service Deployment and its HPA."""

    # At least 2 in production: the PodDisruptionBudget then keeps one serving during drains.
    min_replicas: int = Field(default=2, ge=1, le=1000)
    max_replicas: int = Field(default=10, ge=1, le=1000)
    resources: PodResources = PodResources()
    # HPA targets: average utilization in % of the requests.
    cpu_target_percent: int = Field(default=60, ge=10, le=95)
    memory_target_percent: int = Field(default=70, ge=10, le=95)
    # Scale-down: the HPA waits this long at a lower recommendation (short dips do not end
    # sessions), then removes at most scale_down_pods pods per scale_down_period_seconds.
    scale_down_stabilization_seconds: int = Field(default=600, ge=0, le=3600)
    scale_down_pods: int = Field(default=1, ge=1, le=100)
    scale_down_period_seconds: int = Field(default=120, ge=1, le=1800)
    # Voluntary disruptions (node drains, upgrades) take at most this many pods at once.
    pdb_max_unavailable: int = Field(default=1, ge=1, le=100)
    # VerticalPodAutoscaler mode. Off: recommendations only (read them with kubectl describe);
    # Initial: applied when a pod is created, never by evicting a running one. Neither fights
    # the HPA, which scales on the same CPU and memory ("Auto"/"Recreate" would).
    vpa_mode: Literal["Off", "Initial"] = "Off"

    @model_validator(mode="after")
    def _consistent(self) -> K8sServiceConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas cannot exceed max_replicas")
        return self


class CronScalingWindow(_Strict):
    """A KEDA cron trigger: between start and end, at least desired_replicas workers."""

    name: K8sName
    # Five-field cron (minute hour day-of-month month day-of-week).
    start: str
    end: str
    timezone: str = "UTC"
    desired_replicas: int = Field(ge=1, le=1000)

    @field_validator("start", "end")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if not _FIVE_FIELD_CRON.match(value):
            raise ValueError(
                "must be a five-field cron expression (minute hour day-of-month month "
                "day-of-week), e.g. 0 8 * * 1-5"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _iana_zone(value)


class K8sWorkerConfig(_Strict):
    """The queue worker, scaled by KEDA on the task queue's length."""

    # sqs: the async stack's task queue (KEDA aws-sqs-queue scaler, pod identity);
    # redis: a Redis list (KEDA redis scaler), for clusters without SQS.
    queue: Literal["sqs", "redis"] = "sqs"
    # 0: no worker runs while the queue is empty.
    min_replicas: int = Field(default=0, ge=0, le=1000)
    max_replicas: int = Field(default=10, ge=1, le=1000)
    resources: PodResources = PodResources()
    # Messages per worker KEDA aims for, and the length above which it wakes the first one.
    target_queue_length: int = Field(default=2, ge=1, le=100_000)
    activation_queue_length: int = Field(default=0, ge=0, le=100_000)
    # How often KEDA looks at the queue (its default, 30 s, delays the first worker that long).
    polling_interval_seconds: int = Field(default=5, ge=1, le=300)
    # How long the queue must stay empty before the last worker goes (scale to min_replicas).
    cooldown_seconds: int = Field(default=300, ge=0, le=86_400)
    scaling_windows: tuple[CronScalingWindow, ...] = ()
    # The longest task you expect. A worker being scaled in gets this long to finish its task.
    max_task_seconds: int = Field(default=600, ge=10, le=86_400)
    # Above this, a terminationGracePeriod long enough to finish a task is impractical (rolling
    # updates and node drains would wait that long): workers become a KEDA ScaledJob instead,
    # one Job per message that runs to completion and is never scaled in.
    scaled_job_above_seconds: int = Field(default=900, ge=60, le=86_400)

    @model_validator(mode="after")
    def _consistent(self) -> K8sWorkerConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas cannot exceed max_replicas")
        names = [window.name for window in self.scaling_windows]
        if len(set(names)) != len(names):
            raise ValueError(f"scaling_windows names must be unique; got {names}")
        if self.scaled_job and self.scaling_windows:
            raise ValueError(
                f"scaling_windows cannot be used when tasks run as a ScaledJob (max_task_seconds "
                f"{self.max_task_seconds} > scaled_job_above_seconds "
                f"{self.scaled_job_above_seconds}): KEDA's cron trigger would start a new Job at "
                f"every polling interval (kedacore/keda#1893); remove the windows"
            )
        if self.scaled_job and self.min_replicas > 0:
            raise ValueError(
                f"min_replicas must be 0 when tasks run as a ScaledJob (max_task_seconds "
                f"{self.max_task_seconds} > scaled_job_above_seconds "
                f"{self.scaled_job_above_seconds}): a Job runs one task and exits, there is no "
                f"idle Job to keep"
            )
        for window in self.scaling_windows:
            if window.desired_replicas > self.max_replicas:
                raise ValueError(
                    f"scaling_windows {window.name}: desired_replicas "
                    f"({window.desired_replicas}) exceeds max_replicas ({self.max_replicas})"
                )
        return self

    @property
    def scaled_job(self) -> bool:
        """True when tasks run longer than a Deployment can wait for on scale-in."""
        return self.max_task_seconds > self.scaled_job_above_seconds


class K8sRedisConfig(_Strict):
    """The Redis both workloads use: hot sessions, and the task list when worker.queue is redis."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0, le=15)
    tls: bool = True
    # Where Redis runs (the NetworkPolicy's egress rule): ElastiCache's subnets or the cluster's
    # pod network.
    cidrs: tuple[str, ...] = Field(default=("10.0.0.0/16",), min_length=1)
    # The Redis list the worker consumes when worker.queue is redis (KEDA reads LLEN of it).
    task_list: str = Field(default="agent-tasks", pattern=r"^[A-Za-z0-9:_.-]{1,200}$")

    @field_validator("cidrs")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _networks(value)

    def url(self, *, fragment: str | None = None) -> str:
        """The runtime's REDIS_URL (the password travels apart, in REDIS_PASSWORD)."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}" + (
            f"#{fragment}" if fragment else ""
        )


class K8sAwsConfig(_Strict):
    """Deploy-time names from the async stack's outputs (`cdk deploy` prints them)."""

    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    task_table_name: str = Field(min_length=3, max_length=255)
    session_table_name: str = Field(min_length=3, max_length=255)
    # The SQS queues: required when worker.queue is sqs; with redis, the worker keeps its task
    # and callback queues in Redis lists.
    task_queue_url: str | None = None
    callback_queue_url: str | None = None
    callback_dlq_url: str | None = None
    callback_signing_secret_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$"
    )
    # The LLM key's secret (llm.api_key_secret_name, the one rotation.llm_key rotates), by its
    # complete ARN. Set: the service and worker pods read the key by ARN with their IRSA roles
    # (LLM_API_KEY_SECRET_ARN) through the runtime's 5-minute cache, as Lambda and ECS do, so a
    # rotated key reaches running pods; the roles need secretsmanager:GetSecretValue on it and
    # kms:Decrypt on its key (README "Kubernetes pattern"). Unset: LLM_API_KEY from the
    # Kubernetes Secret, read once when a pod starts. Cloud Run keeps its Secret Manager secret.
    llm_api_key_secret_arn: str | None = None

    @field_validator("llm_api_key_secret_arn")
    @classmethod
    def _llm_secret_arn(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET_ARN.match(value):
            raise ValueError(
                "must be the complete ARN of the LLM key's Secrets Manager secret, ending in the "
                "six characters Secrets Manager appends to the name, such as arn:aws:"
                "secretsmanager:us-east-1:123456789012:secret:agent-prod/llm-api-key-AbCdEf "
                "(`aws secretsmanager describe-secret --secret-id <llm.api_key_secret_name> "
                "--query ARN --output text` prints it); or remove it to keep the key in the "
                "Kubernetes Secret"
            )
        return value

    @field_validator("task_queue_url", "callback_queue_url", "callback_dlq_url")
    @classmethod
    def _sqs_url(cls, value: str | None) -> str | None:
        if value is not None and not _SQS_QUEUE_URL.match(value):
            raise ValueError(
                "must be an SQS queue URL such as "
                "https://sqs.eu-west-1.amazonaws.com/123456789012/agent-tasks"
            )
        return value

    @model_validator(mode="after")
    def _same_region(self) -> K8sAwsConfig:
        match = _SQS_QUEUE_URL.match(self.task_queue_url or "")
        if match is not None and match.group("region") != self.region:
            raise ValueError(
                f"task_queue_url is in {match.group('region')} but region is {self.region}"
            )
        secret = _SECRET_ARN.match(self.llm_api_key_secret_arn or "")
        if secret is not None and secret.group("region") != self.region:
            raise ValueError(
                f"llm_api_key_secret_arn is in {secret.group('region')} but region is "
                f"{self.region}: the pods call Secrets Manager in region (AWS_REGION), so use the "
                f"ARN of the secret, or of its replica, in {self.region}"
            )
        return self


class CloudRunConfig(_Strict):
    """The Knative Service emitted for Cloud Run (`gcloud run services replace`)."""

    # Artifact Registry image, pinned by digest; unset: kubernetes.image.
    image: str | None = None
    min_instances: int = Field(default=0, ge=0, le=1000)
    max_instances: int = Field(default=10, ge=1, le=1000)
    # Cloud Run's request timeout (max 3600 s): WebSocket sessions end when it runs out.
    timeout_seconds: int = Field(default=3600, ge=1, le=3600)

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str | None) -> str | None:
        return value if value is None else _digest_pinned_image(value)

    @model_validator(mode="after")
    def _consistent(self) -> CloudRunConfig:
        if self.min_instances > self.max_instances:
            raise ValueError("min_instances cannot exceed max_instances")
        return self


class KubernetesConfig(_Strict):
    """The Kubernetes deployment (k8s/): the container pattern's image on any cluster."""

    namespace: K8sName = "agent"
    # The container pattern's image, pinned by digest: a tag can be moved to other content, a
    # digest cannot, so every node runs the bytes that were reviewed.
    image: str
    # IAM roles for the pods' ServiceAccounts (IRSA annotation eks.amazonaws.com/role-arn). The
    # service needs only Bedrock, if any; the worker reads and writes the task queue and tables.
    # With aws.llm_api_key_secret_arn, both also read the LLM key's secret.
    service_role_arn: str | None = Field(default=None, pattern=_IAM_ROLE_ARN)
    worker_role_arn: str | None = Field(default=None, pattern=_IAM_ROLE_ARN)
    # The Secret the pods read their keys from (created by k8s/deploy or by hand): keys
    # service-auth-token, redis-password, and llm-api-key unless aws.llm_api_key_secret_arn is set.
    secret_name: K8sName = "agent-secrets"  # noqa: S105 (a Secret's name, not its value)
    ingress_controller: IngressControllerConfig = IngressControllerConfig()
    ingress: K8sIngressConfig | None = None
    service: K8sServiceConfig = K8sServiceConfig()
    worker: K8sWorkerConfig = K8sWorkerConfig()
    redis: K8sRedisConfig
    # The worker records tasks in the async stack's DynamoDB table and signs callbacks with its
    # secret, whichever queue it consumes.
    aws: K8sAwsConfig
    cloud_run: CloudRunConfig = CloudRunConfig()

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        return _digest_pinned_image(value)

    @model_validator(mode="after")
    def _consistent(self) -> KubernetesConfig:
        if self.worker.queue == "sqs":
            missing = [
                f"aws.{field}"
                for field in ("task_queue_url", "callback_queue_url", "callback_dlq_url")
                if getattr(self.aws, field) is None
            ]
            if missing:
                raise ValueError(
                    f"worker.queue is sqs, so {', '.join(missing)} must be set (the async "
                    f"stack's outputs); or set worker.queue: redis to keep the queues in Redis"
                )
        return self


# --- hybrid pattern (stacks/network_stack.py, memory_stack.py, front_door_stack.py) -------------

# Aurora Serverless v2 capacity: 0-256 ACU in steps of 0.5; 0 pauses the instance (auto-pause).
AURORA_MAX_ACU = 256
# Aurora's SecondsUntilAutoPause range.
AURORA_AUTO_PAUSE_SECONDS = (300, 86_400)
# The vector sizes Titan Text Embeddings v2 (the Bedrock embedder) offers, and the largest vector
# pgvector's HNSW index takes (runtime/memory/types.py: MAX_INDEXED_DIMENSIONS).
EMBEDDING_DIMENSIONS = (256, 512, 1024)
MAX_INDEXED_DIMENSIONS = 2000


# The days a rotation schedule's rate(N days) may take in Secrets Manager: 1 to 1000.
MEMORY_ROTATION_DAYS = (1, 1000)


class MemoryConfig(_Strict):
    """The agent memory's vector store: Aurora Serverless v2 PostgreSQL with pgvector."""

    # 0: the instance pauses after auto_pause_seconds without connections and storage is all
    # that is billed; the first connection after a pause waits for the resume (about 15 s).
    min_acu: float = Field(default=0, ge=0, le=AURORA_MAX_ACU)
    max_acu: float = Field(default=2, ge=1, le=AURORA_MAX_ACU)
    auto_pause_seconds: int = Field(
        default=300, ge=AURORA_AUTO_PAUSE_SECONDS[0], le=AURORA_AUTO_PAUSE_SECONDS[1]
    )
    # Automated backups kept this many days (Aurora allows 1-35).
    backup_retention_days: int = Field(default=7, ge=1, le=35)
    database_name: str = Field(default="agent_memory", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    embedder: Literal["bedrock", "openai-compatible"] = "bedrock"
    embedding_model: str = Field(
        default="amazon.titan-embed-text-v2:0", min_length=1, max_length=200
    )
    # The embedding model's vector size: 256, 512 or 1024 for Bedrock's Titan v2; up to 2000 for an
    # OpenAI-compatible model (e.g. 1536 for text-embedding-3-small).
    embedding_dimensions: int = Field(default=1024, ge=1, le=MAX_INDEXED_DIMENSIONS)
    # Secrets Manager's hosted single-user rotation of the database's master password, every this
    # many days (1-1000, Secrets Manager's limit); null: no rotation (rotate by hand). The runtime
    # reads the password by the secret's ARN and re-reads it on an authentication failure, so
    # running tasks survive a rotation (docs/key-rotation.md, "Memory database credentials").
    credentials_rotation_days: int | None = 30

    @field_validator("credentials_rotation_days")
    @classmethod
    def _rotation_days(cls, value: int | None) -> int | None:
        low, high = MEMORY_ROTATION_DAYS
        if value is not None and not low <= value <= high:
            raise ValueError(
                f"must be {low} to {high} days (Secrets Manager's rotation limits; got {value}); "
                "set null to turn the database password's rotation off"
            )
        return value

    @field_validator("min_acu", "max_acu")
    @classmethod
    def _half_steps(cls, value: float) -> float:
        if (value * 2) % 1:
            raise ValueError("must be a multiple of 0.5 (Aurora scales in half-ACU steps)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MemoryConfig:
        if self.min_acu > self.max_acu:
            raise ValueError(f"min_acu ({self.min_acu:g}) cannot exceed max_acu ({self.max_acu:g})")
        if self.min_acu > 0 and "auto_pause_seconds" in self.model_fields_set:
            raise ValueError(
                f"auto_pause_seconds applies only when min_acu is 0 (got min_acu "
                f"{self.min_acu:g}): remove it, or set min_acu to 0 to let the instance pause"
            )
        if self.embedder == "bedrock" and self.embedding_dimensions not in EMBEDDING_DIMENSIONS:
            allowed = ", ".join(map(str, EMBEDDING_DIMENSIONS))
            raise ValueError(
                f"embedding_dimensions must be one of {allowed} when embedder is bedrock "
                f"(the sizes Titan Text Embeddings v2 produces; got {self.embedding_dimensions})"
            )
        if self.embedder == "bedrock" and not re.fullmatch(
            r"[a-z0-9-]+(\.[A-Za-z0-9-]+)+(:[0-9]+)?", self.embedding_model
        ):
            raise ValueError(
                "embedding_model must be a Bedrock model id such as "
                "amazon.titan-embed-text-v2:0 when embedder is bedrock"
            )
        return self


class HybridConfig(_Strict):
    """The hybrid architecture: one front door over the sync, async and WebSocket paths."""

    # Where synchronous chat (/v1/sessions/...) goes: the container service (ALB through a VPC
    # link) or the serverless agent function.
    sync_backend: Literal["container", "lambda"] = "container"
    # A CloudFront distribution as the one entry point: the web UI, WebSockets and the API.
    cloudfront: bool = True
    # The name on container.certificate_arn (the load balancer's domain, pointed at it in DNS):
    # the VPC link and CloudFront verify the load balancer's certificate against it. Required
    # when container.certificate_arn is set.
    service_domain_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
    )
    memory: MemoryConfig = MemoryConfig()


# --- operations: cost alerts (stacks/cost_stack.py) -----------------------------------------------

# A plain address check (no email-validator dependency): one @, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


class OperationsConfig(_Strict):
    """Cost alerts: a monthly AWS Budget and a Cost Anomaly Detection subscription, by email."""

    # The budget's monthly limit; notifications at 80% forecast and 100% actual of it.
    monthly_budget_usd: float = Field(gt=0, le=1_000_000_000)
    # Subscribed to the alert topic; each address must confirm SNS's subscription email once.
    alert_emails: tuple[str, ...] = Field(min_length=1)
    # An anomaly is reported once its total impact reaches this many dollars.
    anomaly_threshold_usd: float = Field(default=100, gt=0, le=1_000_000_000)
    # A key of ``tags``: the budget and the anomaly monitor count only resources carrying this
    # deployment's value of it. null: the whole account. The tag must be activated as a cost
    # allocation tag (Billing console) before AWS attributes costs to it.
    cost_filter_tag: str | None = Field(default="environment", min_length=1, max_length=128)

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if not _EMAIL.fullmatch(address):
                raise ValueError(f"{address!r} is not an email address such as ops@example.com")
        if len(set(value)) != len(value):
            raise ValueError("each address may appear once; SNS would send it every alert twice")
        return value


# --- operations: backup and recovery (stacks/backup_stack.py) -------------------------------------

# AWS Backup's limits: a recovery point kept in cold storage must stay there at least 90 days; a
# start window under 60 minutes causes errors; a vault lock's compliance mode starts after a
# cooling-off of at least 3 days; retention is at most 100 years.
BACKUP_COLD_STORAGE_MIN_DAYS = 90
BACKUP_MIN_START_WINDOW_MINUTES = 60
BACKUP_LOCK_MIN_COOLING_OFF_DAYS = 3
BACKUP_MAX_RETENTION_DAYS = 36_500
# An AWS Backup (EventBridge-style) cron expression: six fields, e.g. cron(0 3 * * ? *).
_BACKUP_CRON = re.compile(r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")


class BackupVaultLockConfig(_Strict):
    """AWS Backup Vault Lock: every recovery point in the vault is kept min-max retention days.

    Without ``changeable_for_days`` the lock is in governance mode: principals with
    ``backup:DeleteBackupVaultLockConfiguration`` can still remove it. With it, compliance mode:
    after that many days nobody (not even the account root) can change the lock, shorten a
    retention, or delete the vault before its recovery points expire.
    """

    min_retention_days: int = Field(ge=1, le=BACKUP_MAX_RETENTION_DAYS)
    max_retention_days: int | None = Field(default=None, ge=2, le=BACKUP_MAX_RETENTION_DAYS)
    changeable_for_days: int | None = Field(
        default=None, ge=BACKUP_LOCK_MIN_COOLING_OFF_DAYS, le=BACKUP_MAX_RETENTION_DAYS
    )

    @model_validator(mode="after")
    def _range(self) -> BackupVaultLockConfig:
        if self.max_retention_days is not None and (
            self.max_retention_days <= self.min_retention_days
        ):
            raise ValueError(
                f"max_retention_days ({self.max_retention_days}) must be "
                f"greater than min_retention_days ({self.min_retention_days}): raise it, or "
                f"remove it to enforce no maximum"
            )
        return self


class BackupConfig(_Strict):
    """AWS Backup of every table and database of the deployment: a daily and a weekly rule."""

    # How long each rule's recovery points are kept (the weekly ones are the long tail).
    daily_retention_days: int = Field(default=35, ge=1, le=BACKUP_MAX_RETENTION_DAYS)
    weekly_retention_days: int = Field(default=90, ge=1, le=BACKUP_MAX_RETENTION_DAYS)
    # AWS Backup cron expressions (six fields), read in ``timezone``.
    daily_schedule: str = "cron(0 3 * * ? *)"
    weekly_schedule: str = "cron(0 4 ? * SUN *)"
    timezone: str = "UTC"
    # A job that has not started this long after its scheduled time is cancelled (AWS: >= 60).
    start_window_minutes: int = Field(
        default=120, ge=BACKUP_MIN_START_WINDOW_MINUTES, le=52_560_000
    )
    # A job still running this long after its scheduled time is cancelled; counted from the
    # schedule, like the start window, so it must be longer.
    completion_window_minutes: int = Field(default=720, ge=61, le=52_560_000)
    # Weekly recovery points move to cold storage after this many days (cheaper, slower to
    # restore). AWS Backup applies it to resource types that support it (DynamoDB with advanced
    # backup features) and ignores it for the rest (Aurora). null: no cold storage.
    weekly_cold_storage_after_days: int | None = Field(
        default=None, ge=1, le=BACKUP_MAX_RETENTION_DAYS
    )
    # null: no vault lock (recovery points follow their lifecycle; the vault policy still
    # denies deleting them by hand when the deployment retains its data).
    vault_lock: BackupVaultLockConfig | None = None

    @field_validator("daily_schedule", "weekly_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not _BACKUP_CRON.fullmatch(value):
            raise ValueError(
                "is not an AWS Backup cron expression: use six fields, "
                "cron(minutes hours day-of-month month day-of-week year) such as "
                "cron(0 3 * * ? *)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("is not an IANA time zone such as UTC or Europe/Berlin") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BackupConfig:
        if self.weekly_retention_days < self.daily_retention_days:
            raise ValueError(
                f"weekly_retention_days ({self.weekly_retention_days}) must be at least "
                f"daily_retention_days ({self.daily_retention_days}): the weekly copies are the "
                f"long tail; raise weekly_retention_days or lower daily_retention_days"
            )
        if self.completion_window_minutes <= self.start_window_minutes:
            raise ValueError(
                f"completion_window_minutes ({self.completion_window_minutes}) must be "
                f"greater than start_window_minutes ({self.start_window_minutes}): both count "
                f"from the scheduled time, so a job that starts late would be cancelled at once"
            )
        cold = self.weekly_cold_storage_after_days
        if cold is not None and self.weekly_retention_days < cold + BACKUP_COLD_STORAGE_MIN_DAYS:
            raise ValueError(
                f"weekly_retention_days ({self.weekly_retention_days}) must be at least "
                f"weekly_cold_storage_after_days + {BACKUP_COLD_STORAGE_MIN_DAYS} "
                f"({cold + BACKUP_COLD_STORAGE_MIN_DAYS}): AWS Backup keeps a recovery point "
                f"in cold storage at least {BACKUP_COLD_STORAGE_MIN_DAYS} days; raise the "
                f"retention, move to cold storage earlier, or set it to null"
            )
        lock = self.vault_lock
        if lock is not None:
            if lock.min_retention_days > self.daily_retention_days:
                raise ValueError(
                    f"vault_lock.min_retention_days ({lock.min_retention_days}) exceeds "
                    f"daily_retention_days ({self.daily_retention_days}): the locked vault "
                    f"would refuse every daily backup; lower the lock's minimum or keep daily "
                    f"backups longer"
                )
            if (
                lock.max_retention_days is not None
                and lock.max_retention_days < self.weekly_retention_days
            ):
                raise ValueError(
                    f"vault_lock.max_retention_days ({lock.max_retention_days}) is below "
                    f"weekly_retention_days ({self.weekly_retention_days}): the locked vault "
                    f"would refuse every weekly backup; raise the lock's maximum or keep weekly "
                    f"backups shorter"
                )
        return self


# --- multi-region disaster recovery (stacks/dr_stacks.py, docs/disaster-recovery.md) ------------

_REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"
_DNS_NAME = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"


class DrDomainConfig(_Strict):
    """Route 53 failover for the sessions API: one name, PRIMARY and SECONDARY records.

    Each region gets an API Gateway custom domain ``record_name`` (its own ACM certificate,
    validated in this hosted zone) and a health check on its API's ``GET /healthz``.
    """

    # The public hosted zone that holds record_name (Route 53 console: "Hosted zone ID").
    hosted_zone_id: str = Field(pattern=r"^Z[A-Z0-9]{1,31}$")
    hosted_zone_name: str = Field(max_length=253, pattern=_DNS_NAME)
    # The name clients call, e.g. agent.example.com; in hosted_zone_name.
    record_name: str = Field(max_length=253, pattern=_DNS_NAME)
    # Route 53 checks every 10 or 30 seconds; this many failures in a row mark a region down.
    health_check_interval_seconds: Literal[10, 30] = 30
    health_check_failure_threshold: int = Field(default=3, ge=1, le=10)
    # The alias records' TTL is Route 53's; resolvers that ignore it see the change later.

    @model_validator(mode="after")
    def _record_in_zone(self) -> DrDomainConfig:
        zone = self.hosted_zone_name.rstrip(".")
        if self.record_name != zone and not self.record_name.endswith(f".{zone}"):
            raise ValueError(
                f"dr.domain.record_name {self.record_name!r} is not in dr.domain.hosted_zone_name "
                f"{zone!r}: use a name that ends in .{zone}"
            )
        return self

    @property
    def failover_seconds(self) -> int:
        """How long Route 53 takes to declare a region down (before DNS caches expire)."""
        return self.health_check_interval_seconds * self.health_check_failure_threshold


class DrConfig(_Strict):
    """A warm standby in a second region: global tables, replicated secrets and images.

    The primary region serves; the secondary runs the same serverless and async stacks on the
    DynamoDB replicas, ready to take traffic (Route 53 failover when ``domain`` is set).
    """

    primary_region: str = Field(pattern=_REGION)
    secondary_region: str = Field(pattern=_REGION)
    # Targets the runbook (docs/disaster-recovery.md) is drilled against; the replication alarm
    # fires when DynamoDB's replication latency exceeds rpo_minutes.
    rto_minutes: int = Field(default=30, ge=1, le=1440)
    rpo_minutes: int = Field(default=1, ge=1, le=1440)
    # ECR repositories whose names start with one of these replicate to the secondary region
    # (registry-level: one replication configuration per account and region). Empty: all.
    image_repository_prefixes: tuple[
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/-]{1,255}$")], ...
    ] = Field(default=(), max_length=100)
    domain: DrDomainConfig | None = None

    @model_validator(mode="after")
    def _two_regions(self) -> DrConfig:
        if self.secondary_region == self.primary_region:
            raise ValueError(
                f"dr.secondary_region is the same as dr.primary_region ({self.primary_region}): "
                f"a replica in the same region survives no regional outage; choose another region"
            )
        if self.domain is not None and self.rto_minutes * 60 < self.domain.failover_seconds:
            raise ValueError(
                f"dr.rto_minutes ({self.rto_minutes}) is shorter than the Route 53 failover time "
                f"({self.domain.failover_seconds} s = health_check_interval_seconds x "
                f"health_check_failure_threshold); raise rto_minutes or check more often"
            )
        return self

    @property
    def regions(self) -> tuple[str, str]:
        return self.primary_region, self.secondary_region


# --- operations: AWS WAF (constructs/web_acl.py, stacks/waf_stack.py) ----------------------------

# The AWS managed rule groups a web ACL may use, with their web ACL capacity units (WCU). Only the
# groups that need no configuration and no per-request fee: Bot Control, account takeover/creation
# fraud and anti-DDoS bill per request and need settings of their own.
WAF_MANAGED_RULE_GROUP_WCU: dict[str, int] = {
    "AWSManagedRulesCommonRuleSet": 700,
    "AWSManagedRulesKnownBadInputsRuleSet": 200,
    "AWSManagedRulesAmazonIpReputationList": 25,
    "AWSManagedRulesAnonymousIpList": 50,
    "AWSManagedRulesAdminProtectionRuleSet": 100,
    "AWSManagedRulesSQLiRuleSet": 200,
    "AWSManagedRulesLinuxRuleSet": 200,
    "AWSManagedRulesUnixRuleSet": 100,
    "AWSManagedRulesWindowsRuleSet": 200,
    "AWSManagedRulesPHPRuleSet": 100,
    "AWSManagedRulesWordPressRuleSet": 100,
}
WafManagedRuleGroup = Literal[
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesAnonymousIpList",
    "AWSManagedRulesAdminProtectionRuleSet",
    "AWSManagedRulesSQLiRuleSet",
    "AWSManagedRulesLinuxRuleSet",
    "AWSManagedRulesUnixRuleSet",
    "AWSManagedRulesWindowsRuleSet",
    "AWSManagedRulesPHPRuleSet",
    "AWSManagedRulesWordPressRuleSet",
]
# A rate-based rule aggregated by IP costs 2 WCU, plus 1 for the IP-set scope-down the hybrid's
# regional web ACL adds; a web ACL's base price covers 1500 WCU.
WAF_RATE_RULE_WCU = 3
WAF_INCLUDED_WCU = 1500
# AWS WAF's smallest rate limit per evaluation window (it was 100 before 2023).
WAF_MIN_RATE_LIMIT = 10
# The common rule set's SizeRestrictions_BODY blocks bodies over 8 KB.
WAF_COMMON_BODY_LIMIT_BYTES = 8192
WafRuleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


def _count_body_size_only() -> dict[WafManagedRuleGroup, tuple[str, ...]]:
    return {"AWSManagedRulesCommonRuleSet": ("SizeRestrictions_BODY",)}


class WafConfig(_Strict):
    """AWS WAF on every public entry point: a regional web ACL (the REST API stages and the load
    balancer) and, with hybrid.cloudfront, a CloudFront web ACL in us-east-1."""

    # Requests one client IP may make in 5 minutes, over all entry points one web ACL protects
    # (AWS WAF counts per web ACL); beyond it WAF answers 403 until the rate falls again.
    rate_limit_per_5_minutes: int = Field(default=2000, ge=WAF_MIN_RATE_LIMIT, le=2_000_000_000)
    # Evaluated in this order, before the rate rule. KnownBadInputs is required: it blocks
    # Log4Shell-style payloads (checkov CKV_AWS_192 checks for it).
    managed_rule_groups: tuple[WafManagedRuleGroup, ...] = (
        "AWSManagedRulesAmazonIpReputationList",
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
    )
    # Rules of a managed group that only count (logged and in metrics, never block). The common
    # set's SizeRestrictions_BODY blocks bodies over 8 KB, below agent.max_body_bytes' default
    # (64 KiB); the handlers enforce max_body_bytes themselves.
    count_only_rules: dict[WafManagedRuleGroup, tuple[WafRuleName, ...]] = Field(
        default_factory=_count_body_size_only
    )
    # false: only blocked and counted requests are logged (the API's and the load balancer's
    # access logs already record every allowed one); true: every request, at ingestion cost.
    log_allowed_requests: bool = False
    # An existing CLOUDFRONT-scope web ACL (e.g. one Firewall Manager maintains) for the hybrid
    # CloudFront distribution. null: the ``<name>-edge`` stack (us-east-1) creates one.
    cloudfront_web_acl_arn: str | None = Field(
        default=None,
        pattern=(
            r"^arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global/webacl/"
            r"[A-Za-z0-9_-]{1,128}/[0-9a-f-]{36}$"
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> WafConfig:
        groups = self.managed_rule_groups
        if len(set(groups)) != len(groups):
            raise ValueError("waf.managed_rule_groups lists a group twice; list each group once")
        if "AWSManagedRulesKnownBadInputsRuleSet" not in groups:
            raise ValueError(
                "waf.managed_rule_groups must include AWSManagedRulesKnownBadInputsRuleSet: it "
                "blocks Log4Shell-style and other known exploit payloads"
            )
        if "Log4JRCE" in self.count_only_rules.get("AWSManagedRulesKnownBadInputsRuleSet", ()):
            raise ValueError(
                "waf.count_only_rules: Log4JRCE of AWSManagedRulesKnownBadInputsRuleSet must "
                "block; remove it from the list"
            )
        for group in self.count_only_rules:
            if group not in groups:
                raise ValueError(
                    f"waf.count_only_rules names {group}, which is not in "
                    f"waf.managed_rule_groups: add the group or remove its entry"
                )
        capacity = sum(WAF_MANAGED_RULE_GROUP_WCU[group] for group in groups) + WAF_RATE_RULE_WCU
        if capacity > WAF_INCLUDED_WCU:
            raise ValueError(
                f"waf.managed_rule_groups need {capacity} WCU with the rate rule, above the "
                f"{WAF_INCLUDED_WCU} a web ACL's base price includes (AWS bills extra beyond it); "
                f"drop a group"
            )
        return self


# --- operations: safe releases (constructs/canary_release.py, constructs/agent_service.py) -------

# CodeDeploy's predefined Lambda deployment configurations, by the name the config uses, with how
# long the first share of traffic runs on the new version before the next shift (minutes; 0: all
# traffic at once). The rollback alarms need at least one full period inside that window.
LAMBDA_DEPLOYMENTS: dict[str, int] = {
    "all_at_once": 0,
    "canary_10_percent_5_minutes": 5,
    "canary_10_percent_10_minutes": 10,
    "canary_10_percent_15_minutes": 15,
    "canary_10_percent_30_minutes": 30,
    # Linear: 10% more every N minutes, so the new version takes all traffic after 10 x N.
    "linear_10_percent_every_1_minute": 10,
    "linear_10_percent_every_2_minutes": 20,
    "linear_10_percent_every_3_minutes": 30,
    "linear_10_percent_every_10_minutes": 100,
}
LambdaDeployment = Literal[
    "all_at_once",
    "canary_10_percent_5_minutes",
    "canary_10_percent_10_minutes",
    "canary_10_percent_15_minutes",
    "canary_10_percent_30_minutes",
    "linear_10_percent_every_1_minute",
    "linear_10_percent_every_2_minutes",
    "linear_10_percent_every_3_minutes",
    "linear_10_percent_every_10_minutes",
]
# ECS's limit for a blue/green bake time (minutes), and the bake time when the config names none:
# two 5-minute alarm periods of green taking all traffic while blue stands by.
ECS_MAX_BAKE_MINUTES = 1440
ECS_DEFAULT_BAKE_MINUTES = 10


class ReleasesConfig(_Strict):
    """How a new version reaches traffic: Lambda through CodeDeploy, the ECS service natively.

    Every Lambda alias ``live`` gets a CodeDeploy deployment group that shifts traffic as
    ``lambda_deployment`` says and rolls back when the alias's error or p99 duration alarm fires.
    The container service rolls (circuit breaker) or, with ``blue_green``, starts a full green
    fleet, switches the load balancer to it and keeps blue ``ecs_bake_time_minutes`` for an
    instant rollback when the 5xx or latency alarm fires.
    """

    lambda_deployment: LambdaDeployment = "all_at_once"
    ecs_deployment: Literal["rolling", "blue_green"] = "rolling"
    # Blue/green only: how long both fleets run after the switch (ECS allows 0-1440 minutes);
    # null: ECS_DEFAULT_BAKE_MINUTES.
    ecs_bake_time_minutes: int | None = Field(default=None, ge=0, le=ECS_MAX_BAKE_MINUTES)

    @model_validator(mode="after")
    def _bake_needs_blue_green(self) -> ReleasesConfig:
        if self.ecs_bake_time_minutes is not None and self.ecs_deployment != "blue_green":
            raise ValueError(
                "releases.ecs_bake_time_minutes applies only to ecs_deployment: blue_green (a "
                "rolling deployment keeps no old fleet to bake): remove it, or set "
                "ecs_deployment: blue_green"
            )
        return self

    @property
    def ecs_bake_minutes(self) -> int:
        """The blue/green bake time in effect."""
        if self.ecs_bake_time_minutes is None:
            return ECS_DEFAULT_BAKE_MINUTES
        return self.ecs_bake_time_minutes

    @property
    def lambda_monitored_minutes(self) -> int:
        """How long CodeDeploy watches the alarms before all traffic is on the new version."""
        return LAMBDA_DEPLOYMENTS[self.lambda_deployment]


# --- operations: observability (constructs/dashboards.py, runtime/observability/) ----------------


class ObservabilityConfig(_Strict):
    """Dashboards, the runtime's LLM usage metrics and the alarm on estimated LLM cost per hour.

    Alarm notifications need no key here: every alarm goes to the ``operations`` alert topic.
    """

    # One CloudWatch dashboard per pattern stack. A dashboard costs $3/month beyond the three
    # an account gets free, whether or not anyone looks at it; false: none.
    dashboards: bool = False
    # The runtime writes InputTokens, OutputTokens and EstimatedCostUSD per model as CloudWatch
    # embedded-metric log lines. Custom metrics bill only for the hours they receive data, so
    # an idle deployment pays nothing for them.
    usage_metrics: bool = True
    # An alarm when the estimated model spend of the last hour reaches this many dollars.
    # null: no alarm. Needs usage_metrics, the ``operations`` topic to notify, and the model's
    # token prices in costs/prices.yaml.
    cost_per_hour_alarm_usd: float | None = Field(default=None, gt=0, le=1_000_000)
    # Lambda active tracing records every invocation and botocore forwards its trace header, so
    # traces cross API Gateway, SQS and the workers without an SDK. True adds the X-Ray SDK in
    # the functions (a subsegment per AWS call, the ColdStart annotation) at about 0.24 s more
    # per cold start (runtime/handlers/tracing.py, bench/lambda_cold_start.py).
    xray_sdk_subsegments: bool = False

    @model_validator(mode="after")
    def _alarm_needs_metrics(self) -> ObservabilityConfig:
        if self.cost_per_hour_alarm_usd is not None and not self.usage_metrics:
            raise ValueError(
                "observability.cost_per_hour_alarm_usd watches the runtime's EstimatedCostUSD "
                "metric: set observability.usage_metrics: true or cost_per_hour_alarm_usd: null"
            )
        return self


# --- rotation: the LLM API key -------------------------------------------------------------------

# Secrets Manager's limits on a rotation schedule: at least 4 hours apart, at most 1000 days.
ROTATION_MIN_HOURS = 4
ROTATION_MAX_DAYS = 1000
# How long the runtime caches the LLM key (runtime/llm/secrets.py DEFAULT_TTL_SECONDS; a test
# checks they agree). The old key must outlive it: see LlmKeyRotationConfig.
LLM_KEY_CACHE_SECONDS = 300
_RATE_SCHEDULE = re.compile(r"^rate\((?P<count>[1-9][0-9]{0,4}) (?P<unit>hours?|days?)\)$")


def _schedule_hours(schedule: str) -> int:
    match = _RATE_SCHEDULE.fullmatch(schedule)
    if match is None:
        raise ValueError(
            f"schedule {schedule!r} must be a rate expression such as 'rate(30 days)' or "
            f"'rate(12 hours)'"
        )
    count = int(match["count"])
    hours = count if match["unit"].startswith("hour") else count * 24
    if not ROTATION_MIN_HOURS <= hours <= ROTATION_MAX_DAYS * 24:
        raise ValueError(
            f"schedule {schedule!r} is outside Secrets Manager's limits: rotate at most every "
            f"{ROTATION_MIN_HOURS} hours and at least every {ROTATION_MAX_DAYS} days"
        )
    return hours


class OpenAIAdminIssuerConfig(_Strict):
    """New keys from OpenAI's Admin API: one project service account per key."""

    kind: Literal["openai_admin"]
    # The project the agent's keys belong to (OpenAI dashboard, project settings: proj_...).
    project_id: str = Field(pattern=r"^proj_[A-Za-z0-9]{1,64}$")
    # The secret holding an organization admin key (sk-admin-..., api.management.write scope).
    # The stack creates it with a placeholder; put the admin key in after deploy.
    admin_key_secret_name: SecretName
    admin_base_url: AnyHttpUrl = AnyHttpUrl("https://api.openai.com/v1")

    @field_validator("admin_base_url")
    @classmethod
    def _https(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if value.scheme != "https":
            raise ValueError("admin_base_url must use https (the admin key travels in a header)")
        return value


class StagedIssuerConfig(_Strict):
    """New keys staged by an operator (providers without an admin API)."""

    kind: Literal["staged"]
    # The staging secret the operator puts the next key in; the stack creates it empty.
    # null: ``<llm.api_key_secret_name>-staged``.
    staging_secret_name: SecretName | None = None


class LlmKeyRotationConfig(_Strict):
    """A rotation schedule and rotation Lambda for ``llm.api_key_secret_name``.

    The previous key stays valid for one whole period (openai_admin revokes it in the next
    rotation's finishSecret; with staged, the operator revokes it), so every runtime cache
    (LLM_KEY_CACHE_SECONDS) and every container started with it moves on before it stops working.
    """

    schedule: str = "rate(30 days)"
    issuer: Annotated[OpenAIAdminIssuerConfig | StagedIssuerConfig, Field(discriminator="kind")]
    # Rotate as soon as the schedule is deployed (and whenever it changes). Off by default: with
    # the staged issuer nothing is staged yet, and the first rotation would fail.
    rotate_immediately: bool = False
    memory_mb: int = Field(default=256, ge=128, le=10_240)
    timeout_seconds: int = Field(default=60, ge=10, le=LAMBDA_MAX_TIMEOUT_SECONDS)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        _schedule_hours(value)
        return value

    @property
    def schedule_hours(self) -> int:
        return _schedule_hours(self.schedule)


class RotationConfig(_Strict):
    """Which secrets rotate on a schedule; an absent section: not rotated.

    The memory database's credentials are not here yet: ECS injects their password when a task
    starts and the memory store connects with it, so a rotation would break every running task
    until it is replaced (README "Key rotation", not done).
    """

    llm_key: LlmKeyRotationConfig | None = None


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
    # The container pattern; like webhook, its defaults need nothing from the yaml.
    # Required: it decides whether the service may run without TLS (see allow_plain_http).
    container: ContainerConfig
    # The Kubernetes deployment (k8s/); absent: the cdk8s app emits nothing for this config.
    kubernetes: KubernetesConfig | None = None
    # The hybrid architecture (front door, network, vector store); absent: not built.
    hybrid: HybridConfig | None = None
    # Cost alerts (the ``<name>-cost`` stack); absent: not built. No default: the alerts need
    # someone's email address, which no default can supply.
    operations: OperationsConfig | None = None
    # AWS Backup of the tables and the database (the ``<name>-backup`` stack); absent: not built
    # (PITR on every table and the database's own automated backups stay on either way).
    backup: BackupConfig | None = None
    # Multi-region disaster recovery; absent: one region, the tables are not replicated.
    dr: DrConfig | None = None
    # AWS WAF on every public entry point (the ``<name>-waf`` stack, and ``<name>-edge`` for
    # CloudFront); absent: no web ACL (each costs $5/month plus $1 per rule, idle or not).
    waf: WafConfig | None = None
    # Canary Lambda releases and blue/green containers; the defaults deploy at once (dev speed),
    # prod opts in (config/prod.yaml).
    releases: ReleasesConfig = ReleasesConfig()
    # Dashboards, LLM usage metrics, the cost-per-hour alarm; the defaults add no idle cost.
    observability: ObservabilityConfig = ObservabilityConfig()
    # Scheduled rotation of the LLM key; the default rotates nothing, prod opts in
    # (config/prod.yaml).
    rotation: RotationConfig = RotationConfig()
    tags: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=128)],
        Annotated[str, StringConstraints(max_length=256)],
    ] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cost_alarm_needs_topic(self) -> DeploymentConfig:
        if self.observability.cost_per_hour_alarm_usd is not None and self.operations is None:
            raise ValueError(
                "observability.cost_per_hour_alarm_usd needs the operations section: its alert "
                "topic (operations.alert_emails) is where the alarm goes; add operations: or "
                "set cost_per_hour_alarm_usd: null"
            )
        return self

    @model_validator(mode="after")
    def _cross_field(self) -> DeploymentConfig:
        if self.operations is not None and self.operations.cost_filter_tag is not None:
            key = self.operations.cost_filter_tag
            if key not in self.tags:
                raise ValueError(
                    f"operations.cost_filter_tag is {key!r}, which is not a key of tags "
                    f"({', '.join(sorted(self.tags)) or 'none'}): add tags.{key}, choose one of "
                    f"those keys, or set cost_filter_tag: null to watch the whole account"
                )
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
        self._container_fits()
        self._kubernetes_fits()
        self._hybrid_fits()
        self._rotation_fits()
        self._releases_fit()
        self._waf_fits()
        self._dr_fits()
        self._backup_fits()
        given = [(field, value) for field, value in names if value is not None]
        for i, (field, value) in enumerate(given):
            for other, other_value in given[i + 1 :]:
                if value == other_value:
                    raise ValueError(
                        f"{field} and {other} are both {value!r}: Secrets Manager names are "
                        f"unique per account and region, so give each secret its own name"
                    )
        return self

    def _container_fits(self) -> None:
        container = self.container
        if container.nat_gateways == 0 and self.llm.provider == "openai-compatible":
            raise ValueError(
                f"container.nat_gateways is 0, so the tasks have no route to the internet, but "
                f"llm.provider openai-compatible calls {self.llm.base_url} there. Set "
                f"container.nat_gateways to 1 or more, or use llm.provider bedrock (reached "
                f"through a VPC endpoint). Tasks with public IPs are not offered: they would be "
                f"addressable from the internet"
            )
        if (
            container.nat_gateways == 0
            and container.image_uri is not None
            and not ECR_IMAGE_URI.match(container.image_uri)
        ):
            raise ValueError(
                "container.nat_gateways is 0, so the tasks can pull images only from private ECR "
                "(through its VPC endpoints); copy container.image_uri into an ECR repository or "
                "set container.nat_gateways to 1 or more"
            )
        if container.alb_idle_timeout_seconds <= self.llm.request_timeout_seconds:
            raise ValueError(
                f"container.alb_idle_timeout_seconds ({container.alb_idle_timeout_seconds}) must "
                f"be greater than llm.request_timeout_seconds ({self.llm.request_timeout_seconds:g}"
                f"): an HTTP step sends nothing while the model thinks, and the load balancer "
                f"would cut it"
            )

    def _releases_fit(self) -> None:
        releases, period = self.releases, self.alarms.period_minutes
        watched = releases.lambda_monitored_minutes
        if 0 < watched < period:
            raise ValueError(
                f"releases.lambda_deployment {releases.lambda_deployment} shifts traffic after "
                f"{watched} min, shorter than alarms.period_minutes ({period}): the rollback "
                f"alarms could not complete one period on the new version before it takes all "
                f"traffic. Choose a longer canary or linear step, or lower alarms.period_minutes"
            )
        if releases.ecs_deployment == "blue_green" and releases.ecs_bake_minutes < period:
            raise ValueError(
                f"releases.ecs_bake_time_minutes ({releases.ecs_bake_minutes}) is shorter "
                f"than alarms.period_minutes ({period}): blue would be gone before the 5xx and "
                f"latency alarms could evaluate one period of green; raise the bake time"
            )

    def _kubernetes_fits(self) -> None:
        k8s = self.kubernetes
        if k8s is None:
            return
        grace = self.k8s_service_grace_seconds
        if k8s.service.scale_down_period_seconds < grace - K8S_TERMINATION_MARGIN_SECONDS:
            raise ValueError(
                f"kubernetes.service.scale_down_period_seconds "
                f"({k8s.service.scale_down_period_seconds}) must be at least preStop + "
                f"container.drain_seconds ({grace - K8S_TERMINATION_MARGIN_SECONDS} s), so the "
                f"HPA removes the next pods only after the last ones have drained their sessions"
            )
        if self.container.max_concurrent_sessions > CLOUD_RUN_MAX_CONCURRENCY:
            raise ValueError(
                f"container.max_concurrent_sessions ({self.container.max_concurrent_sessions}) "
                f"is also Cloud Run's containerConcurrency, which is at most "
                f"{CLOUD_RUN_MAX_CONCURRENCY}"
            )
        llm_secret_arn = k8s.aws.llm_api_key_secret_arn
        if llm_secret_arn is not None:
            if self.llm.provider != "openai-compatible" or self.llm.api_key_secret_name is None:
                raise ValueError(
                    f"kubernetes.aws.llm_api_key_secret_arn is set, but llm.provider is "
                    f"{self.llm.provider}, which calls the model with the pods' IAM role and "
                    f"reads no key: remove kubernetes.aws.llm_api_key_secret_arn"
                )
            secret = _SECRET_ARN.match(llm_secret_arn)
            assert secret is not None  # K8sAwsConfig checked the form
            name = self.llm.api_key_secret_name
            if secret.group("name") != name:
                raise ValueError(
                    f"kubernetes.aws.llm_api_key_secret_arn names the secret "
                    f"{secret.group('name')!r}, but llm.api_key_secret_name is {name!r}: the "
                    f"pods would read a key that the stacks (and rotation.llm_key) do not "
                    f"manage. Use the ARN of {name!r} (`aws secretsmanager describe-secret "
                    f"--secret-id {name} --query ARN --output text`)"
                )

    def _dr_fits(self) -> None:
        dr = self.dr
        if dr is None:
            return
        if self.region is not None and self.region != dr.primary_region:
            raise ValueError(
                f"region is {self.region} but dr.primary_region is {dr.primary_region}: the "
                f"primary stacks deploy to dr.primary_region, so remove region or make the two "
                f"equal"
            )
        certificate = self.container.certificate_arn
        if self.container.enabled and certificate is not None:
            certificate_region = certificate.split(":")[3]
            if certificate_region != dr.primary_region:
                raise ValueError(
                    f"container.certificate_arn is in {certificate_region} but the load balancer "
                    f"runs in dr.primary_region ({dr.primary_region}), and ACM certificates work "
                    f"only in their own region: use a certificate from {dr.primary_region}"
                )

    def _waf_fits(self) -> None:
        waf = self.waf
        if waf is None:
            return
        common = "AWSManagedRulesCommonRuleSet"
        if (
            common in waf.managed_rule_groups
            and self.agent.max_body_bytes > WAF_COMMON_BODY_LIMIT_BYTES
            and "SizeRestrictions_BODY" not in waf.count_only_rules.get(common, ())
        ):
            raise ValueError(
                f"waf: the common rule set's SizeRestrictions_BODY blocks request bodies over "
                f"{WAF_COMMON_BODY_LIMIT_BYTES} bytes, but agent.max_body_bytes is "
                f"{self.agent.max_body_bytes}: add SizeRestrictions_BODY to "
                f"waf.count_only_rules.{common} (the handlers enforce max_body_bytes) or lower "
                f"agent.max_body_bytes to {WAF_COMMON_BODY_LIMIT_BYTES}"
            )
        if waf.cloudfront_web_acl_arn is not None and (
            self.hybrid is None or not self.hybrid.cloudfront
        ):
            raise ValueError(
                "waf.cloudfront_web_acl_arn is set but no CloudFront distribution is built "
                "(hybrid.cloudfront): remove it"
            )

    def _hybrid_fits(self) -> None:
        hybrid = self.hybrid
        if hybrid is None:
            return
        if not self.container.enabled:
            raise ValueError(
                "hybrid needs the container pattern (the front door routes WebSockets and the "
                "vector store's clients are the container tasks): set container.enabled: true"
            )
        if self.api.auth != "iam":
            raise ValueError(
                f"hybrid needs api.auth iam (got {self.api.auth}): the front door is an HTTP "
                f"API, which has no API keys or usage plans"
            )
        if self.api.tenants:
            raise ValueError(
                "api.tenants cannot be used with hybrid: the front door is an HTTP API, which "
                "has no API keys or usage plans, so a tenant could bypass its quota through it; "
                "remove api.tenants or the hybrid section"
            )
        if self.container.certificate_arn is not None and hybrid.service_domain_name is None:
            raise ValueError(
                "hybrid.service_domain_name is required when container.certificate_arn is set: "
                "the VPC link and CloudFront verify the load balancer's certificate against it"
            )
        if self.container.certificate_arn is None and hybrid.service_domain_name is not None:
            raise ValueError(
                "hybrid.service_domain_name needs container.certificate_arn: without a "
                "certificate the load balancer speaks plain HTTP and there is nothing to verify"
            )
        memory = hybrid.memory
        if memory.embedder == "openai-compatible" and self.llm.provider != "openai-compatible":
            raise ValueError(
                "hybrid.memory.embedder is openai-compatible, which uses llm.base_url and the "
                "LLM key, but llm.provider is bedrock; set hybrid.memory.embedder to bedrock"
            )

    def _backup_fits(self) -> None:
        backup = self.backup
        if backup is None:
            return
        lock = backup.vault_lock
        if (
            lock is not None
            and lock.changeable_for_days is not None
            and self.removal_policy != "retain"
        ):
            raise ValueError(
                "backup.vault_lock.changeable_for_days puts the vault lock in compliance mode "
                "(no one can delete a recovery point before min_retention_days, ever), but "
                "removal_policy is destroy: remove changeable_for_days (governance mode) or set "
                "removal_policy: retain"
            )
        redis = self.container.redis
        if (
            self.removal_policy == "retain"
            and self.container.enabled
            and redis.snapshot_retention_days == 0
        ):
            raise ValueError(
                "container.redis.snapshot_retention_days is 0, but this deployment retains its "
                "data and backs it up (backup:): ElastiCache is not in AWS Backup, its own "
                "daily snapshots are its backup; set snapshot_retention_days to 1 or more"
            )

    def _rotation_fits(self) -> None:
        rotation = self.rotation.llm_key
        if rotation is None:
            return
        if self.llm.provider != "openai-compatible" or self.llm.api_key_secret_name is None:
            raise ValueError(
                "rotation.llm_key rotates llm.api_key_secret_name, but llm.provider is "
                f"{self.llm.provider} (Bedrock uses IAM, there is no key): remove rotation.llm_key"
            )
        issuer = rotation.issuer
        own: tuple[str, str | None]
        if isinstance(issuer, OpenAIAdminIssuerConfig):
            llm_host = self.llm.base_url.host if self.llm.base_url else None
            if issuer.admin_base_url.host != llm_host:
                raise ValueError(
                    f"rotation.llm_key.issuer.admin_base_url is on {issuer.admin_base_url.host} "
                    f"but llm.base_url is on {llm_host}: keys from OpenAI's Admin API work only "
                    "at OpenAI; use issuer kind staged for other providers"
                )
            own = ("rotation.llm_key.issuer.admin_key_secret_name", issuer.admin_key_secret_name)
        else:
            own = ("rotation.llm_key.issuer.staging_secret_name", self.llm_staging_secret_name)
        taken = {
            "llm.api_key_secret_name": self.llm.api_key_secret_name,
            "webhook.callback.signing_secret_name": self.callback_signing_secret_name,
        }
        for field, name in taken.items():
            if own[1] == name:
                raise ValueError(
                    f"{own[0]} and {field} are both {name!r}: the rotation needs its own "
                    "secret; give it another name"
                )

    @property
    def llm_staging_secret_name(self) -> str | None:
        """The staged issuer's staging secret (None without a staged LLM key rotation)."""
        rotation = self.rotation.llm_key
        if rotation is None or not isinstance(rotation.issuer, StagedIssuerConfig):
            return None
        return rotation.issuer.staging_secret_name or f"{self.llm.api_key_secret_name}-staged"

    @property
    def k8s_service_grace_seconds(self) -> int:
        """The service pods' terminationGracePeriodSeconds: preStop, drain, exit margin."""
        return K8S_PRE_STOP_SECONDS + self.container.drain_seconds + K8S_TERMINATION_MARGIN_SECONDS

    @property
    def k8s_llm_key_secret_arn(self) -> str | None:
        """The ARN the cluster's pods read the LLM key by (kubernetes.aws.llm_api_key_secret_arn),
        or None: the key comes from the Kubernetes Secret, or there is none (Bedrock). The one
        switch the charts (k8s/lib/pod.py) and the Pulumi program (k8s/deploy) both follow."""
        if self.kubernetes is None or self.llm.provider != "openai-compatible":
            return None
        return self.kubernetes.aws.llm_api_key_secret_arn

    @property
    def cost_filter(self) -> tuple[str, str] | None:
        """The (tag key, value) the cost alerts filter on; None: the whole account."""
        if self.operations is None or self.operations.cost_filter_tag is None:
            return None
        key = self.operations.cost_filter_tag
        return key, self.tags[key]

    @property
    def callback_signing_secret_name(self) -> str:
        return self.webhook.callback.signing_secret_name or f"{self.name}/webhook-signing-secret"
