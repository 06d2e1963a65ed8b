"""``SERVICE_*`` settings: container defaults, and the two timeouts that must fit the platform's."""

from __future__ import annotations

import pytest

from runtime.service.settings import ServiceSettings
from runtime.settings import SettingsError


def test_defaults_suit_a_container_behind_an_alb() -> None:
    settings = ServiceSettings.from_env({})

    assert (settings.host, settings.port) == ("0.0.0.0", 8080)  # noqa: S104 - a default, not a bind
    assert settings.max_concurrent_sessions == 100
    assert settings.max_frame_bytes == 64 * 1024
    # Below the ALB's default 60 s idle timeout, and the drain below ECS's 30 s stopTimeout.
    assert settings.ws_heartbeat_seconds == 20 < settings.lb_idle_timeout_seconds == 60
    assert settings.drain_seconds == 25 < settings.stop_timeout_seconds == 30
    assert settings.forwarded_allow_ips == "127.0.0.1"


def test_heartbeat_must_be_below_the_load_balancer_idle_timeout() -> None:
    with pytest.raises(
        SettingsError,
        match=r"^invalid service environment: environment: Value error, "
        r"SERVICE_WS_HEARTBEAT_SECONDS \(60\) must be below SERVICE_LB_IDLE_TIMEOUT_SECONDS "
        r"\(60\), or the load balancer closes idle WebSockets between heartbeats$",
    ):
        ServiceSettings.from_env({"SERVICE_WS_HEARTBEAT_SECONDS": "60"})


def test_drain_must_end_before_the_platform_kills_the_process() -> None:
    with pytest.raises(
        SettingsError,
        match=r"SERVICE_DRAIN_SECONDS \(30\) must be below SERVICE_STOP_TIMEOUT_SECONDS \(30\), "
        r"or the platform kills the process before it has drained$",
    ):
        ServiceSettings.from_env({"SERVICE_DRAIN_SECONDS": "30"})


def test_every_malformed_variable_is_named() -> None:
    with pytest.raises(SettingsError) as raised:
        ServiceSettings.from_env(
            {
                "SERVICE_PORT": "0",
                "SERVICE_MAX_CONCURRENT_SESSIONS": "lots",
                "SERVICE_LOG_LEVEL": "x",
            }
        )

    message = str(raised.value)
    for name in ("SERVICE_PORT", "SERVICE_MAX_CONCURRENT_SESSIONS", "SERVICE_LOG_LEVEL"):
        assert name in message


@pytest.mark.parametrize(
    ("frame_bytes", "body_bytes", "limit"),
    [(65_536, 8_192, 8_192), (4_096, 8_192, 4_096)],
)
def test_one_request_limit_for_frames_and_bodies(
    frame_bytes: int, body_bytes: int, limit: int
) -> None:
    settings = ServiceSettings.from_env({"SERVICE_MAX_FRAME_BYTES": str(frame_bytes)})

    assert settings.request_limit_bytes(body_bytes) == limit
