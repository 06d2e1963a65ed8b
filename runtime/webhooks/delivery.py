"""One callback delivery attempt, and the delay before the next one.

:func:`deliver` makes a single POST and classifies what happened; the caller (the webhook
worker) owns the loop, the attempt budget and the persistence of attempts. Outcomes:

* ``delivered`` -- any 2xx. The receiver has the payload; stop.
* ``gone`` -- 410. The receiver says the endpoint no longer exists; stop, do not retry.
* ``rejected`` -- the URL failed the SSRF check *at delivery time*; stop, do not retry. The URL
  was checked when the task was submitted, but DNS may have changed since then, so every
  attempt checks again.
* ``retry`` -- everything else: other statuses (3xx included, since redirects are not followed:
  a redirect could point anywhere, including at an address the check refused), timeouts,
  connection and protocol errors. ``error`` says which, for the attempt log.

``deliver`` never raises for network trouble; it raises only for programming errors (such as a
non-positive timeout).

Residual DNS-rebinding window: :func:`~runtime.webhooks.ssrf.check_url` resolves the host, then
httpx resolves it again when it opens the connection. A hostile DNS server with a zero TTL can
answer the check with a public address and the connection with a private one. Re-checking each
attempt narrows the window to milliseconds but does not close it; closing it would mean
connecting to the checked IP itself (with the original Host header and TLS server name) or
sending callbacks through an egress proxy that enforces the same rules. The worker's network
placement (no route to private services it does not need) is the backstop.

Timeouts: ``timeout_seconds`` bounds each connect, write and read separately (that is what
``httpx.Timeout`` does), not the whole exchange. Only the first 1 KiB of a response body is
read, so a receiver cannot make an attempt long or memory-hungry by sending a large body.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import httpx

from runtime.webhooks.ssrf import Resolver, UnsafeUrlError, check_url, system_resolver

USER_AGENT = "agent-deploy-reference-webhooks/1"
MAX_RESPONSE_BYTES = 1024
ERROR_BODY_CHARS = 200
# 2**62 seconds dwarfs any sane cap; bounding the exponent keeps the float math finite.
_MAX_EXPONENT = 62

Outcome = Literal["delivered", "gone", "retry", "rejected"]


@dataclass(frozen=True)
class DeliveryResult:
    """What one attempt produced. ``error`` is None only when delivered."""

    outcome: Outcome
    status_code: int | None
    error: str | None
    elapsed_seconds: float


def _read_capped(response: httpx.Response) -> bytes:
    """At most ``MAX_RESPONSE_BYTES`` of the raw body; the rest is never read."""
    received = bytearray()
    # iter_raw: no decompression, so a small compressed body cannot expand in memory. We also
    # ask for identity encoding, so receivers normally send plain text anyway.
    for chunk in response.iter_raw(MAX_RESPONSE_BYTES):
        received.extend(chunk)
        if len(received) >= MAX_RESPONSE_BYTES:
            break
    return bytes(received[:MAX_RESPONSE_BYTES])


def _status_error(response: httpx.Response) -> str:
    status = response.status_code
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed"
    text = _read_capped(response).decode("utf-8", errors="replace")
    snippet = " ".join(text.split())[:ERROR_BODY_CHARS]
    return f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect"
    if isinstance(exc, httpx.WriteTimeout):
        return "write"
    if isinstance(exc, httpx.PoolTimeout):
        return "connection pool"
    return "read"


def _same_target(url: str, host: str, port: int) -> bool:
    """Whether httpx parses ``url`` to the host and port the SSRF check approved.

    The check uses urllib's parser; if the two parsers ever disagree on an odd URL, the request
    would go somewhere unchecked. Refusing on any disagreement removes that class of bypass.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    return parsed.host.lower() == host and (parsed.port or _default_port(parsed.scheme)) == port


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def deliver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    client: httpx.Client,
    timeout_seconds: float,
    allow_http_loopback: bool,
    resolve: Resolver = system_resolver,
    clock: Callable[[], float] = time.monotonic,
) -> DeliveryResult:
    """POST ``body`` to ``url`` once and classify the result (see the module docstring).

    ``headers`` are the signature headers (and anything else the caller adds); they are sent
    after the defaults, so a caller may override ``Content-Type``. The ``client`` is shared
    across attempts for connection reuse; its own redirect and timeout settings are overridden
    per request.
    """
    if not (timeout_seconds > 0 and math.isfinite(timeout_seconds)):
        raise ValueError("timeout_seconds must be a positive number")
    started = clock()

    def result(outcome: Outcome, status: int | None, error: str | None) -> DeliveryResult:
        return DeliveryResult(outcome, status, error, clock() - started)

    try:
        checked = check_url(url, allow_http_loopback=allow_http_loopback, resolve=resolve)
    except UnsafeUrlError as exc:
        return result("rejected", None, str(exc))
    if not _same_target(url, checked.host, checked.port):
        return result(
            "rejected",
            None,
            "callback_url is parsed differently by the HTTP client than by the SSRF check; "
            "refusing to deliver",
        )

    request_headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",
        **headers,
    }
    try:
        with client.stream(
            "POST",
            url,
            content=body,
            headers=request_headers,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout_seconds),
        ) as response:
            status = response.status_code
            if 200 <= status < 300:
                return result("delivered", status, None)
            if status == 410:
                return result("gone", status, "HTTP 410: the receiver says the endpoint is gone")
            return result("retry", status, _status_error(response))
    except httpx.TimeoutException as exc:
        return result(
            "retry", None, f"timeout after {float(timeout_seconds)} s ({_timeout_kind(exc)})"
        )
    except httpx.ConnectError as exc:
        return result("retry", None, f"connect error: {exc}")
    except httpx.TransportError as exc:
        # Protocol errors, resets mid-response, proxy failures: all transient from our side.
        return result("retry", None, f"{type(exc).__name__}: {exc}")


def retry_delay(
    attempt: int,
    *,
    base_seconds: float,
    max_seconds: float,
    random: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before attempt ``attempt + 1``, after attempt ``attempt`` (1-based) failed.

    Exponential (``base * 2 ** (attempt - 1)``, capped at ``max_seconds``) with equal jitter:
    half the delay is fixed and half is random. The fixed half guarantees delays grow and never
    collapse to zero (full jitter may retry a struggling receiver immediately); the random half
    spreads the retries of many callbacks that failed together.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError("attempt must be an integer >= 1 (the attempt that just failed)")
    if not (base_seconds > 0 and math.isfinite(base_seconds)):
        raise ValueError("base_seconds must be a positive number")
    if not (max_seconds >= base_seconds and math.isfinite(max_seconds)):
        raise ValueError("max_seconds must be a finite number >= base_seconds")
    draw = random()
    if not 0.0 <= draw <= 1.0:
        raise ValueError("random() must return a number in [0, 1]")
    delay = min(max_seconds, base_seconds * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    return delay / 2 + draw * delay / 2
