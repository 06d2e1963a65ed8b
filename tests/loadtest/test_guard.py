"""The host guard: request URLs stay on the run's one target, whatever the path says."""

from __future__ import annotations

import pytest

from loadtest.guard import HostGuard, OffTargetError, parse_target


def test_urls_are_built_on_the_target_and_its_prefix() -> None:
    guard = HostGuard("https://abc.execute-api.eu-west-1.amazonaws.com/v1/")
    assert guard.url("/webhook") == "https://abc.execute-api.eu-west-1.amazonaws.com/v1/webhook"
    assert guard.target.aws_region() == "eu-west-1"


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("http://127.0.0.1:8080", "/agent/s1", "ws://127.0.0.1:8080/agent/s1"),
        (
            "https://agent.example.com/prefix",
            "/agent/s1",
            "wss://agent.example.com/prefix/agent/s1",
        ),
    ],
)
def test_websocket_urls_keep_host_port_and_prefix(base: str, path: str, expected: str) -> None:
    assert HostGuard(base).websocket_url(path) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/v1/webhook",  # another host
        "https://agent.example.com:8443/v1/webhook",  # another port
        "http://agent.example.com/v1/webhook",  # another scheme
        "https://agent.example.com/v2/webhook",  # outside the prefix
        "https://agent.example.com/v1/../admin",  # climbs out of the prefix
        "https://agent.example.com@evil.example.com/v1/webhook",  # userinfo trick
        "ftp://agent.example.com/v1/webhook",
    ],
)
def test_urls_off_the_target_are_refused(url: str) -> None:
    guard = HostGuard("https://agent.example.com/v1")
    with pytest.raises(OffTargetError):
        guard.check(url)


def test_a_path_that_is_not_a_path_is_refused() -> None:
    # "@evil..." appended to the base URL would turn the target's host into a user name.
    with pytest.raises(OffTargetError, match="must start with '/'"):
        HostGuard("https://agent.example.com").url("@evil.example.com/x")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ws://agent.example.com", "must be an http:// or https:// URL"),
        ("agent.example.com", "must be an http:// or https:// URL"),
        ("https://user:pw@agent.example.com", "must not carry credentials"),
        ("https://agent.example.com/?stage=v1", "must not have a query or fragment"),
        ("https://agent.example.com:99999", "invalid port"),
        ("https://", "names no host"),
    ],
)
def test_bad_targets_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_target(url)
