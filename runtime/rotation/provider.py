"""The HTTP client every rotation call to the LLM provider goes through.

Keys travel in the ``Authorization`` header, so only ``https`` URLs are accepted; plain ``http``
is allowed for loopback hosts only, and only when the caller says so (tests against a local fake
provider). Error messages name the host, the path and the status, never a key.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import httpx

# Short: a rotation step has the function's whole timeout, but a hung provider must fail the
# step (Secrets Manager retries it) rather than eat the budget of the later steps.
DEFAULT_TIMEOUT_SECONDS = 10.0
_MAX_DETAIL_CHARS = 200


class ProviderError(Exception):
    """A provider call failed; the message names the host, path and status, never a key."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def check_base_url(base_url: str, *, allow_loopback_http: bool = False) -> str:
    """``base_url`` without a trailing slash, or ValueError if a key could leak over it."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        raise ValueError(f"provider URL {base_url!r} has no host")
    if parts.username or parts.password:
        raise ValueError("provider URL must not carry credentials (userinfo)")
    if parts.scheme == "https":
        return base_url.rstrip("/")
    if parts.scheme == "http" and allow_loopback_http and _is_loopback(parts.hostname):
        return base_url.rstrip("/")
    raise ValueError(
        f"provider URL {base_url!r} must use https: the API key travels in a header "
        "(plain http is accepted only for a loopback test server)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProviderClient:
    """Bearer-authenticated JSON calls to one provider base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.Client | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        allow_loopback_http: bool = False,
    ) -> None:
        self.base_url = check_base_url(base_url, allow_loopback_http=allow_loopback_http)
        self._host = urlsplit(self.base_url).netloc
        self._http = http if http is not None else httpx.Client()
        self._timeout = timeout_seconds

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        accept_statuses: frozenset[int] = frozenset(),
    ) -> tuple[int, Any]:
        """``(status, parsed JSON or None)``; non-2xx statuses not in ``accept_statuses`` raise."""
        url = self.base_url + path
        try:
            response = self._http.request(
                method,
                url,
                json=json_body,
                params=params,
                headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
                timeout=self._timeout,
                # A redirect could carry the Authorization header to another host.
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"{method} {self._host}{path} failed: {type(exc).__name__}"
            ) from None
        status = response.status_code
        if not (200 <= status < 300) and status not in accept_statuses:
            raise ProviderError(
                f"{method} {self._host}{path} answered HTTP {status}: {_detail(response, key)}",
                status=status,
            )
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None
        return status, payload


def _detail(response: httpx.Response, key: str) -> str:
    text = response.text
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        message = payload["error"].get("message")
        if isinstance(message, str):
            text = message
    # Some providers echo the rejected key; never let it reach a log.
    text = " ".join(text.replace(key, "[redacted]").split()) if key else " ".join(text.split())
    return (text[:_MAX_DETAIL_CHARS] + "...") if len(text) > _MAX_DETAIL_CHARS else text or "-"


def check_key_works(client: ProviderClient, key: str, *, path: str = "/models") -> None:
    """Raise :class:`ProviderError` unless ``GET {base_url}{path}`` with ``key`` answers 2xx.

    ``/models`` is served by every OpenAI-compatible provider, costs no tokens and needs only a
    valid key, so it tests the key without spending money.
    """
    client.request("GET", path, key=key)
