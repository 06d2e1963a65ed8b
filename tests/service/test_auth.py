"""The service's bearer token: every route but the probes and docs needs it, on both transports.

Against a real uvicorn on 127.0.0.1, with the ``websockets`` client for the handshake cases.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus

from tests.fakes.memory_store import InMemorySessionStore
from tests.runtime.conftest import text
from tests.service.conftest import (
    RunningService,
    receive_step,
    script,
    scripted_dependencies,
    send,
    serve,
    service_settings,
    ws_connect,
)

TOKEN = "s3cret-token-0123456789abcdef"


@pytest.fixture
def service(store: InMemorySessionStore) -> Iterator[RunningService]:
    llm = script(text("one"), text("two"), text("three"))
    with serve(scripted_dependencies(llm, store), service_settings(SERVICE_AUTH_TOKEN=TOKEN)) as s:
        yield s


def test_a_step_without_the_token_is_401_and_runs_nothing(service: RunningService) -> None:
    with service.http() as http:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789"},
            {"Authorization": TOKEN},
        ):
            response = http.post("/sessions/s1/messages", json={"message": "hi"}, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"
        assert http.get("/sessions/s1").status_code == 401
    assert service.state.deps.store.get("s1") is None


def test_the_token_admits_http_requests(service: RunningService) -> None:
    with service.http() as http:
        response = http.post(
            "/sessions/s1/messages",
            json={"message": "hi"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["output"] == "one"
        # The scheme name is case-insensitive (RFC 6750).
        assert (
            http.get("/sessions/s1", headers={"Authorization": f"bearer {TOKEN}"}).status_code
            == 200
        )


def test_probes_and_docs_need_no_token(service: RunningService) -> None:
    with service.http() as http:
        for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
            assert http.get(path).status_code == 200, path


def test_a_websocket_without_the_token_is_refused_at_the_handshake(service: RunningService) -> None:
    for options in (
        {},
        {"additional_headers": {"Authorization": "Bearer nope-nope-nope-nope"}},
        {"subprotocols": ["bearer", "nope-nope-nope-nope"]},
        {"subprotocols": [TOKEN]},  # the token without the "bearer" marker
    ):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(service.ws_url("s2"), **options)
        assert refused.value.response.status_code == 403, options


def test_a_websocket_authenticates_by_header_or_by_subprotocol(service: RunningService) -> None:
    with ws_connect(
        service.ws_url("s3"), additional_headers={"Authorization": f"Bearer {TOKEN}"}
    ) as ws:
        send(ws, {"message": "hi"})
        assert receive_step(ws)[-1]["content"] == "one"
    # The browser way: new WebSocket(url, ["bearer", token]); the server selects "bearer".
    with ws_connect(service.ws_url("s4"), subprotocols=["bearer", TOKEN]) as ws:
        assert ws.subprotocol == "bearer"
        send(ws, {"message": "hi"})
        assert receive_step(ws)[-1]["content"] == "two"


def test_a_short_token_is_refused_by_the_settings() -> None:
    from runtime.settings import SettingsError

    with pytest.raises(SettingsError, match="SERVICE_AUTH_TOKEN"):
        service_settings(SERVICE_AUTH_TOKEN="short")
