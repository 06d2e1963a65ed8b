"""The chat page (``static/``): served at ``/ui/``, with ``/`` redirecting to it.

The page is plain HTML, JavaScript and CSS with relative URLs only, so the same folder can be
hosted anywhere (the CDK app puts it on S3 + CloudFront); it talks to ``WS /agent/{session_id}``
with the token the user types (see ``static/chat.js``).

The page is public, as a static file holds no data: only the WebSocket needs the token. The bearer
check is the app's outermost middleware (:class:`runtime.service.auth.BearerAuth`), so the page is
answered by a layer *in front of* it: :func:`mount_ui` adds a middleware that takes ``/``, ``/ui``
and ``/ui/...`` (static files or 404, nothing else, never an API route) and hands every other
request on to the app unchanged. Call it after :func:`runtime.service.app.create_app` has added the
bearer check: Starlette makes the last middleware added the outermost one.

Every answer of the page's paths carries a strict Content-Security-Policy (:data:`UI_HEADERS`): the
page has no inline script or style, so nothing but its own files may run; it may open WebSockets
to any host because ``?ws=`` can point it at the service from another origin.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
UI_PATH = "/ui"

# 'self' for everything the page loads; ws:/wss: for the WebSocket to the service, wherever it
# is (CSP 'self' does not cover ws: in every browser, and ?ws= may name another origin). A host
# that knows the service's domain (CloudFront) should narrow connect-src to it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
UI_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidated on every load (StaticFiles answers 304 from the ETag): an edited page shows at
    # once in development, and the token field never sits in a shared cache's copy.
    "Cache-Control": "no-cache",
}
# Exact types, whatever the machine's mime.types says: with nosniff, a script served as
# text/plain would not run.
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


class _UIFiles(StaticFiles):
    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = _MEDIA_TYPES.get(Path(str(full_path)).suffix)
        if media_type is not None and response.status_code != 304:
            response.headers["content-type"] = media_type
        return response


def _with_headers(app: ASGIApp) -> ASGIApp:
    """``app`` with :data:`UI_HEADERS` on every response it starts (files, redirects, errors)."""
    extra = [(name.lower().encode(), value.encode()) for name, value in UI_HEADERS.items()]
    names = {name for name, _ in extra}

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(n, v) for n, v in message.get("headers", ()) if n.lower() not in names]
                message = {**message, "headers": [*kept, *extra]}
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


async def _to_ui(_: Request) -> Response:
    # Relative, so it also resolves under a path prefix: from "/" and from "/ui" alike it is
    # "/ui/".
    return RedirectResponse("ui/", status_code=307)


async def _http_error(_: Request, exc: Exception) -> Response:
    # The API's error shape, so a client sees one format from the whole service.
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": {"code": code, "message": str(exc.detail)}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def ui_app(directory: Path = STATIC_DIR) -> ASGIApp:
    """The page's own little app: the redirects and the files, all with :data:`UI_HEADERS`."""
    app = Starlette(
        routes=[
            Route("/", _to_ui, methods=["GET", "HEAD"]),
            Route(UI_PATH, _to_ui, methods=["GET", "HEAD"]),
            # follow_symlink=False (the default): a link in the folder cannot point outside it.
            Mount(UI_PATH, app=_UIFiles(directory=directory, html=True)),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    return _with_headers(app)


def is_ui_path(path: str) -> bool:
    return path in ("/", UI_PATH) or path.startswith(UI_PATH + "/")


class _UIFront:
    """ASGI middleware: the page's paths go to the UI app, everything else to the service."""

    def __init__(self, app: ASGIApp, *, ui: ASGIApp) -> None:
        self._app = app
        self._ui = ui

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_ui_path(scope["path"]):
            await self._ui(scope, receive, send)
        else:
            await self._app(scope, receive, send)


def mount_ui(app: FastAPI, directory: Path = STATIC_DIR) -> None:
    """Serve the chat page at ``/ui/`` (and redirect ``/`` to it), without the bearer token.

    Must run after the app's own middleware is added (at the end of ``create_app``), so that the
    page is answered in front of the bearer check; the WebSocket and the API keep needing it.
    """
    if not (directory / "index.html").is_file():
        raise RuntimeError(f"no chat page at {directory}/index.html")
    if getattr(app.state, "ui_mounted", False):
        return  # already mounted (create_app does it when SERVICE_UI is on)
    app.add_middleware(_UIFront, ui=ui_app(directory))
    app.state.ui_mounted = True
