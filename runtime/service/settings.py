"""The container service's own settings (``SERVICE_*``), read from the environment at start.

The agent's settings (store, model, message limits) are :class:`runtime.settings.RuntimeSettings`,
shared with the Lambda handlers; these are only about serving: where to listen, how much load to
take, and the timeouts that must fit inside the platform's. Two of them are checked against the
platform's values, which the stack passes next to them, because getting either wrong fails quietly
in production: a heartbeat slower than the load balancer's idle timeout lets the balancer cut idle
WebSockets, and a drain longer than the stop timeout gets the process killed mid-drain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from runtime.settings import parse_environment

# Frames up to this many times the limit are read and answered with an error frame (the connection
# stays usable); a bigger one is refused by the WebSocket protocol itself with close code 1009,
# so that no client can make the process buffer an arbitrary amount per connection.
WS_HARD_CAP_FACTOR = 4


class ServiceSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    # Every interface: in a container the task's network (security group, ALB) is the boundary.
    host: str = Field(default="0.0.0.0", min_length=1, alias="SERVICE_HOST")  # noqa: S104
    port: int = Field(default=8080, ge=1, le=65535, alias="SERVICE_PORT")
    # A session is an in-flight HTTP step or an open WebSocket; past this the service answers 503
    # / closes with 1013 rather than queueing work it cannot finish in time.
    max_concurrent_sessions: int = Field(
        default=100, ge=1, le=10_000, alias="SERVICE_MAX_CONCURRENT_SESSIONS"
    )
    # One client message (a WebSocket frame or an HTTP body); MAX_BODY_BYTES applies too, the
    # smaller wins (see request_limit_bytes).
    max_frame_bytes: int = Field(
        default=64 * 1024, ge=256, le=10_485_760, alias="SERVICE_MAX_FRAME_BYTES"
    )
    # Protocol-level ping interval; a pong must come back within the same time.
    ws_heartbeat_seconds: float = Field(
        default=20.0, gt=0, le=3600, alias="SERVICE_WS_HEARTBEAT_SECONDS"
    )
    # The load balancer's idle timeout (ALB default 60 s): the heartbeat must be shorter, and
    # HTTP keep-alive longer (see runtime.service.server).
    lb_idle_timeout_seconds: float = Field(
        default=60.0, gt=0, le=4000, alias="SERVICE_LB_IDLE_TIMEOUT_SECONDS"
    )
    # From SIGTERM to exit: in-flight HTTP steps finish, WebSockets close with 1001.
    drain_seconds: float = Field(default=25.0, gt=0, le=3600, alias="SERVICE_DRAIN_SECONDS")
    # When the platform kills the process after SIGTERM (ECS stopTimeout, default 30 s; the
    # Kubernetes terminationGracePeriodSeconds).
    stop_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600, alias="SERVICE_STOP_TIMEOUT_SECONDS"
    )
    # Sent with every 503 the service produces itself (at capacity, draining).
    retry_after_seconds: int = Field(default=5, ge=1, le=3600, alias="SERVICE_RETRY_AFTER_SECONDS")
    # Peers whose X-Forwarded-For/-Proto are believed: behind an ALB, the VPC's CIDR.
    forwarded_allow_ips: str = Field(
        default="127.0.0.1", min_length=1, alias="SERVICE_FORWARDED_ALLOW_IPS"
    )
    # The bearer token every request but the probes needs (runtime.service.auth); the stack
    # injects it as an ECS secret. Unset only for local development.
    auth_token: SecretStr | None = Field(default=None, min_length=16, alias="SERVICE_AUTH_TOKEN")
    # The chat page at /ui/ (runtime.service.ui): static and public like the docs; the WebSocket
    # it opens still needs the token. Off where another host (S3 + CloudFront) serves the page.
    ui: bool = Field(default=True, alias="SERVICE_UI")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", alias="SERVICE_LOG_LEVEL"
    )

    @model_validator(mode="after")
    def _fits_the_platform(self) -> ServiceSettings:
        if self.ws_heartbeat_seconds >= self.lb_idle_timeout_seconds:
            raise ValueError(
                f"SERVICE_WS_HEARTBEAT_SECONDS ({self.ws_heartbeat_seconds:g}) must be below "
                f"SERVICE_LB_IDLE_TIMEOUT_SECONDS ({self.lb_idle_timeout_seconds:g}), or the load "
                "balancer closes idle WebSockets between heartbeats"
            )
        if self.drain_seconds >= self.stop_timeout_seconds:
            raise ValueError(
                f"SERVICE_DRAIN_SECONDS ({self.drain_seconds:g}) must be below "
                f"SERVICE_STOP_TIMEOUT_SECONDS ({self.stop_timeout_seconds:g}), or the platform "
                "kills the process before it has drained"
            )
        return self

    def request_limit_bytes(self, max_body_bytes: int) -> int:
        """The largest step request, HTTP body or WebSocket frame alike.

        The same message must not be accepted on one transport and refused on the other, so the
        runtime's ``MAX_BODY_BYTES`` (shared with the Lambda API) caps frames too when smaller.
        """
        return min(self.max_frame_bytes, max_body_bytes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServiceSettings:
        return parse_environment(cls, environ, "service")
