"""Bearer-token authentication for the container service, HTTP and WebSocket alike.

The ALB in front of the service is reachable from ``container.ingress_cidrs``; without a check
here anyone there could run (and bill) the agent. The token is a Secrets Manager secret the
stack injects as ``SERVICE_AUTH_TOKEN`` (an ECS secret). Per request:

* HTTP: ``Authorization: Bearer <token>``; otherwise 401 with ``WWW-Authenticate: Bearer``.
* WebSocket: the same header (servers, CLIs), or, because browsers cannot set headers on a
  WebSocket, the subprotocols ``["bearer", "<token>"]`` (``new WebSocket(url, ["bearer", t])``):
  the handshake then answers with the ``bearer`` subprotocol. Without a valid token the
  handshake is refused (HTTP 403) before the app sees the socket. A token in the query string is
  not accepted: it would end up in the load balancer's access logs.

Probes and API docs stay open (``/healthz``, ``/readyz``, ``/openapi.json``, ``/docs``): the
load balancer's health check carries no token, and the docs hold no data. Comparison is
constant-time. This is a shared secret for service-to-service and first-party clients; per-user
sign-in belongs in front (ALB OIDC/Cognito actions, or the hybrid profile's gateway).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
BEARER_SUBPROTOCOL = "bearer"
# WebSocket close code for "policy violation" (RFC 6455); before the handshake completes the
# server turns it into an HTTP 403.
POLICY_VIOLATION = 1008


class BearerAuth:
    """ASGI middleware: every HTTP request and WebSocket outside :data:`PUBLIC_PATHS` needs the
    token."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        if len(token) < 16:
            raise ValueError("SERVICE_AUTH_TOKEN must be at least 16 characters")
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope.get("path") in PUBLIC_PATHS:
            await self._app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers") or ()}
        if self._bearer_ok(headers.get(b"authorization")):
            await self._app(scope, receive, send)
            return
        if kind == "websocket" and self._subprotocol_ok(scope):
            await self._app(scope, receive, _selecting_bearer(send))
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": POLICY_VIOLATION})
            return
        body = json.dumps(
            {
                "error": {
                    "code": "unauthorized",
                    "message": "send Authorization: Bearer <token> (the service's auth token)",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _bearer_ok(self, value: bytes | None) -> bool:
        if value is None or value[:7].lower() != b"bearer ":
            return False
        return hmac.compare_digest(value[7:].strip(), self._token)

    def _subprotocol_ok(self, scope: Scope) -> bool:
        offered = [str(p) for p in scope.get("subprotocols") or ()]
        if BEARER_SUBPROTOCOL not in offered:
            return False
        candidates = [p.encode() for p in offered if p != BEARER_SUBPROTOCOL]
        # Compare against every offered value, so timing says nothing about which one matched.
        return any([hmac.compare_digest(c, self._token) for c in candidates])


def _selecting_bearer(send: Send) -> Send:
    """The handshake answer names the ``bearer`` subprotocol, as the client asked for one."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "websocket.accept" and not message.get("subprotocol"):
            message = {**message, "subprotocol": BEARER_SUBPROTOCOL}
        await send(message)

    return wrapped
