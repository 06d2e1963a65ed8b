"""deliver() against a real receiver on 127.0.0.1, and the retry schedule."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Sequence

import httpx
import pytest

from runtime.webhooks.delivery import USER_AGENT, DeliveryResult, deliver, retry_delay
from runtime.webhooks.ssrf import check_url
from tests.fakes.clock import FakeClock
from tests.fakes.webhook_receiver import Reply, WebhookReceiver

BODY = b'{"task_id": "t-1"}'
HEADERS = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": "v1,x"}
PUBLIC = "93.184.215.14"


def send(
    client: httpx.Client, url: str, *, timeout_seconds: float = 2.0, loopback: bool = True
) -> DeliveryResult:
    return deliver(
        url,
        BODY,
        HEADERS,
        client=client,
        timeout_seconds=timeout_seconds,
        allow_http_loopback=loopback,
    )


@pytest.mark.parametrize("status", [200, 202, 204])
def test_2xx_is_delivered(client: httpx.Client, status: int) -> None:
    with WebhookReceiver(reply=Reply(status)) as receiver:
        result = send(client, receiver.url)
    assert (result.outcome, result.status_code, result.error) == ("delivered", status, None)
    request = receiver.requests[0]
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["webhook-id"] == "msg_1"
    assert result.elapsed_seconds >= 0


def test_410_is_gone(client: httpx.Client) -> None:
    with WebhookReceiver(reply=Reply(410, b"unsubscribed")) as receiver:
        result = send(client, receiver.url)
    assert (result.outcome, result.status_code) == ("gone", 410)


def test_500_is_retried_with_the_start_of_the_body(client: httpx.Client) -> None:
    with WebhookReceiver(reply=Reply(500, b"database\n  is down")) as receiver:
        result = send(client, receiver.url)
    assert (result.outcome, result.status_code) == ("retry", 500)
    assert result.error == "HTTP 500: database is down"


def test_error_without_body(client: httpx.Client) -> None:
    with WebhookReceiver(reply=Reply(503)) as receiver:
        result = send(client, receiver.url)
    assert (result.outcome, result.error) == ("retry", "HTTP 503")


def test_redirect_is_not_followed(client: httpx.Client) -> None:
    with WebhookReceiver(reply=Reply(302, headers={"Location": "/elsewhere"})) as receiver:
        result = send(client, receiver.url)
    assert (result.outcome, result.status_code) == ("retry", 302)
    assert result.error == "HTTP 302: redirects are not followed"
    assert [request.path for request in receiver.requests] == ["/hook"]


def test_slow_receiver_times_out_and_is_retried(client: httpx.Client) -> None:
    with WebhookReceiver(reply=Reply(200, delay=3.0)) as receiver:
        started = time.monotonic()
        result = send(client, receiver.url, timeout_seconds=0.3)
        waited = time.monotonic() - started
    assert (result.outcome, result.status_code) == ("retry", None)
    assert result.error == "timeout after 0.3 s (read)"
    assert 0.3 <= waited < 0.3 + 0.7
    assert result.elapsed_seconds == pytest.approx(waited, abs=0.05)


def test_closed_port_is_a_connect_error_to_retry(client: httpx.Client) -> None:
    # Bind to get a free port, then close it: nothing listens there afterwards.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = send(client, f"http://127.0.0.1:{port}/hook")
    assert (result.outcome, result.status_code) == ("retry", None)
    assert result.error is not None
    assert result.error.startswith("connect error: ")


def test_only_the_first_kib_of_an_error_body_is_read(client: httpx.Client) -> None:
    # The receiver sends 2 KiB, then stalls for longer than the client timeout before sending
    # the remaining 100 KiB. Reading past the cap would end in a read timeout instead.
    body = b"x" * 2048 + b"y" * 100_000
    with WebhookReceiver(reply=Reply(500, body, stall_after=2048)) as receiver:
        result = send(client, receiver.url, timeout_seconds=1.0)
    assert (result.outcome, result.status_code) == ("retry", 500)
    assert result.error == "HTTP 500: " + "x" * 200
    assert result.elapsed_seconds < 0.9


def test_unsafe_url_is_rejected_without_a_request(client: httpx.Client) -> None:
    with WebhookReceiver(reply=Reply(204)) as receiver:
        result = send(client, receiver.url, loopback=False)
    assert (result.outcome, result.status_code) == ("rejected", None)
    assert result.error == "callback_url must use https"
    assert receiver.requests == []


def test_dns_change_after_submit_is_caught_at_delivery(client: httpx.Client) -> None:
    """The URL passed the check at submit time; by delivery its name points inside."""
    answers: list[Sequence[str]] = [[PUBLIC], ["10.0.0.5"]]

    def rebinding_resolver(host: str) -> Sequence[str]:
        return answers.pop(0)

    url = "https://hooks.example.com/cb"
    assert check_url(url, allow_http_loopback=False, resolve=rebinding_resolver).addresses == (
        PUBLIC,
    )
    result = deliver(
        url,
        BODY,
        HEADERS,
        client=client,
        timeout_seconds=1.0,
        allow_http_loopback=False,
        resolve=rebinding_resolver,
    )
    assert result.outcome == "rejected"
    assert result.error == (
        "callback_url host hooks.example.com resolves to 10.0.0.5, a private address; "
        "callbacks go to public addresses only"
    )


def test_elapsed_uses_the_injected_clock(client: httpx.Client) -> None:
    clock = FakeClock(100.0)
    result = deliver(
        "ftp://example.com/x",
        BODY,
        HEADERS,
        client=client,
        timeout_seconds=1.0,
        allow_http_loopback=False,
        clock=clock,
    )
    assert (result.outcome, result.elapsed_seconds) == ("rejected", 0.0)


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), float("inf")])
def test_deliver_requires_a_positive_timeout(client: httpx.Client, timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout_seconds"):
        send(client, "https://example.com/", timeout_seconds=timeout)


# attempt -> (delay with random()=0.0, 0.5, 1.0) for base 1 s, cap 60 s.
RETRY_TABLE = [
    (1, (0.5, 0.75, 1.0)),
    (2, (1.0, 1.5, 2.0)),
    (3, (2.0, 3.0, 4.0)),
    (4, (4.0, 6.0, 8.0)),
    (6, (16.0, 24.0, 32.0)),
    (7, (30.0, 45.0, 60.0)),  # 64 s capped at 60 s
    (50, (30.0, 45.0, 60.0)),
    (10_000, (30.0, 45.0, 60.0)),  # no overflow far past the cap
]


@pytest.mark.parametrize(("attempt", "expected"), RETRY_TABLE)
def test_retry_delay_table(attempt: int, expected: tuple[float, float, float]) -> None:
    def fixed(draw: float) -> Callable[[], float]:
        return lambda: draw

    delays = tuple(
        retry_delay(attempt, base_seconds=1.0, max_seconds=60.0, random=fixed(draw))
        for draw in (0.0, 0.5, 1.0)
    )
    assert delays == expected


def test_retry_delay_bounds_grow_monotonically_and_never_reach_zero() -> None:
    previous_low = previous_high = 0.0
    for attempt in range(1, 30):
        low = retry_delay(attempt, base_seconds=0.5, max_seconds=30.0, random=lambda: 0.0)
        high = retry_delay(attempt, base_seconds=0.5, max_seconds=30.0, random=lambda: 1.0)
        assert 0 < low <= high <= 30.0
        assert low >= previous_low and high >= previous_high
        assert high == 2 * low  # equal jitter: the fixed half is half the delay
        previous_low, previous_high = low, high
    assert previous_high == 30.0


def test_retry_delay_with_the_real_random_stays_in_the_band() -> None:
    for attempt in range(1, 10):
        cap = min(60.0, 2.0 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = retry_delay(attempt, base_seconds=2.0, max_seconds=60.0)
            assert cap / 2 <= delay <= cap
    seeded = random.Random(7)
    assert retry_delay(3, base_seconds=1.0, max_seconds=60.0, random=seeded.random) >= 2.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempt": 0}, "attempt"),
        ({"attempt": -1}, "attempt"),
        ({"attempt": True}, "attempt"),
        ({"attempt": 1.5}, "attempt"),
        ({"base_seconds": 0.0}, "base_seconds"),
        ({"base_seconds": -1.0}, "base_seconds"),
        ({"base_seconds": float("nan")}, "base_seconds"),
        ({"base_seconds": float("inf")}, "base_seconds"),
        ({"max_seconds": 0.5}, "max_seconds"),
        ({"max_seconds": float("inf")}, "max_seconds"),
        ({"max_seconds": float("nan")}, "max_seconds"),
        ({"random": lambda: 1.5}, "random"),
        ({"random": lambda: -0.1}, "random"),
    ],
)
def test_retry_delay_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"attempt": 1, "base_seconds": 1.0, "max_seconds": 60.0}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        retry_delay(**arguments)  # type: ignore[arg-type]
