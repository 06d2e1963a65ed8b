"""A real HTTP server playing OpenAI's key-holding side: project service accounts and key checks.

Enough of the Admin API for key rotation, plus the two endpoints a key is used on:

* ``POST   /v1/organization/projects/{project}/service_accounts`` (admin key) -- creates an
  account and returns ``{"id": "svc_acct_N", "name", "api_key": {"value": "sk-svc-N-..."}}``;
* ``GET    /v1/organization/projects/{project}/service_accounts?limit&after`` (admin key) --
  ``{"object": "list", "data", "first_id", "last_id", "has_more"}``;
* ``DELETE /v1/organization/projects/{project}/service_accounts/{id}`` (admin key) -- revokes the
  account's key; 404 for an unknown or already deleted id;
* ``GET /v1/models`` and ``POST /v1/chat/completions`` -- 200 for a live key, 401 otherwise.

Usage::

    with FakeOpenAIPlatform() as platform:
        platform.base_url          # http://127.0.0.1:PORT/v1
        platform.add_key("sk-manual")   # a key created by hand (no service account)
        platform.live_keys         # every key that authenticates now
        platform.requests          # (method, path) of every request, in order

``fail_next`` makes the next requests on a path answer a given status (provider outages).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_server import LocalHTTPServer

ADMIN_KEY = "sk-admin-fake-0000"
PROJECT_ID = "proj_fake123"
_ACCOUNTS = re.compile(
    r"^/v1/organization/projects/(?P<project>[^/]+)/service_accounts(?:/(?P<id>[^/]+))?$"
)


class FakeOpenAIPlatform(LocalHTTPServer):
    def __init__(self, *, admin_key: str = ADMIN_KEY, project_id: str = PROJECT_ID) -> None:
        super().__init__()
        self.admin_key = admin_key
        self.project_id = project_id
        self.requests: list[tuple[str, str]] = []
        # account id -> {"name", "key", "created_at"}; deleted accounts are removed.
        self.accounts: dict[str, dict[str, Any]] = {}
        self._manual_keys: set[str] = set()
        self._failures: dict[str, deque[int]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler_class(self)

    @property
    def live_keys(self) -> set[str]:
        with self._lock:
            return self._manual_keys | {a["key"] for a in self.accounts.values()}

    def add_key(self, key: str) -> None:
        with self._lock:
            self._manual_keys.add(key)

    def revoke_key(self, key: str) -> None:
        with self._lock:
            self._manual_keys.discard(key)
            for account_id in [i for i, a in self.accounts.items() if a["key"] == key]:
                del self.accounts[account_id]

    def fail_next(self, method: str, path_suffix: str, *statuses: int) -> None:
        """The next requests whose path ends with ``path_suffix`` answer ``statuses`` in turn."""
        with self._lock:
            self._failures.setdefault(f"{method} {path_suffix}", deque()).extend(statuses)

    # --- request handling (called from the server threads) ----------------------------------

    def _failure(self, method: str, path: str) -> int | None:
        with self._lock:
            for key, statuses in self._failures.items():
                wanted_method, suffix = key.split(" ", 1)
                if wanted_method == method and path.endswith(suffix) and statuses:
                    return statuses.popleft()
        return None

    def handle(self, method: str, raw_path: str, auth: str | None, body: Any) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = parts.path
        with self._lock:
            self.requests.append((method, path))
        failure = self._failure(method, path)
        if failure is not None:
            return failure, {"error": {"message": f"scripted failure {failure}"}}
        token = auth.removeprefix("Bearer ") if auth and auth.startswith("Bearer ") else None
        match = _ACCOUNTS.match(path)
        if match:
            if token != self.admin_key:
                return 401, {"error": {"message": "admin key required"}}
            if match["project"] != self.project_id:
                return 404, {"error": {"message": "no such project"}}
            return self._accounts(method, match["id"], parse_qs(parts.query), body)
        if (method, path) in (("GET", "/v1/models"), ("POST", "/v1/chat/completions")):
            if token is None or token not in self.live_keys:
                return 401, {"error": {"message": f"Incorrect API key provided: {token}"}}
            if path == "/v1/models":
                return 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
            return 200, _completion("rotated ok")
        return 404, {"error": {"message": f"no route for {method} {path}"}}

    def _accounts(
        self, method: str, account_id: str | None, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        with self._lock:
            if method == "POST" and account_id is None:
                name = body.get("name") if isinstance(body, dict) else None
                if not isinstance(name, str) or not name:
                    return 400, {"error": {"message": "name is required"}}
                number = next(self._ids)
                new_id = f"svc_acct_{number}"
                key = f"sk-svc-{number}-{time.monotonic_ns()}"
                self.accounts[new_id] = {"name": name, "key": key, "created_at": number}
                return 200, {
                    "object": "organization.project.service_account",
                    "id": new_id,
                    "name": name,
                    "role": "member",
                    "created_at": number,
                    "api_key": {
                        "object": "organization.project.service_account.api_key",
                        "value": key,
                        "name": "Secret Key",
                        "created_at": number,
                        "id": f"key_{number}",
                    },
                }
            if method == "GET" and account_id is None:
                limit = int(query.get("limit", ["20"])[0])
                after = query.get("after", [None])[0]
                ids = list(self.accounts)
                start = ids.index(after) + 1 if after in ids else 0
                page = ids[start : start + limit]
                return 200, {
                    "object": "list",
                    "data": [
                        {
                            "object": "organization.project.service_account",
                            "id": i,
                            "name": self.accounts[i]["name"],
                            "role": "member",
                            "created_at": self.accounts[i]["created_at"],
                        }
                        for i in page
                    ],
                    "first_id": page[0] if page else None,
                    "last_id": page[-1] if page else None,
                    "has_more": start + limit < len(ids),
                }
            if method == "DELETE" and account_id is not None:
                if self.accounts.pop(account_id, None) is None:
                    return 404, {"error": {"message": f"no service account {account_id}"}}
                return 200, {
                    "object": "organization.project.service_account.deleted",
                    "id": account_id,
                    "deleted": True,
                }
        return 405, {"error": {"message": "method not allowed"}}


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _handler_class(fake: FakeOpenAIPlatform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = None
            status, payload = fake.handle(
                method, self.path, self.headers.get("Authorization"), body
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
