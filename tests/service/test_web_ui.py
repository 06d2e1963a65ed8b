"""The chat page (``runtime/service/static``, served by :func:`runtime.service.ui.mount_ui`).

Over HTTP: where the page is, its headers and content types, that it needs no token while the API
and the WebSocket still do, and that nothing outside the folder can be read through it.

In a real browser: headless Debian Chromium, driven by Selenium through Debian's chromedriver
(package ``chromium-driver``, always the browser's own version, so a Chromium security update
cannot leave the driver behind; no browser or driver is downloaded). The page talks to the real
service on 127.0.0.1 with the fake OpenAI-compatible model behind the real client: the streamed
frames must appear in order, as text. Without ``/usr/bin/chromium`` these tests skip locally and
fail on CI (``CI`` set), where ``make setup`` installs it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from html.parser import HTMLParser
from http.client import HTTPConnection
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from websockets.exceptions import InvalidStatus

from runtime.service.app import create_app
from runtime.service.settings import ServiceSettings
from runtime.service.ui import STATIC_DIR, UI_HEADERS, mount_ui
from runtime.wiring import Dependencies
from tests.fakes.browser import (
    chrome,
    fill,
    page_errors,
    status,
    step_done,
    transcript,
    wait_for,
)
from tests.fakes.memory_store import InMemorySessionStore
from tests.fakes.openai_server import FakeOpenAIServer, TextReply, ToolCallReply
from tests.runtime.conftest import text
from tests.service.conftest import (
    WAIT_SECONDS,
    RunningService,
    openai_dependencies,
    running_service,
    script,
    scripted_dependencies,
    serve,
    service_settings,
    ws_connect,
)

TOKEN = "ui-test-token-0123456789abcdef"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "chat.js": "text/javascript; charset=utf-8",
    "chat.css": "text/css; charset=utf-8",
}


@contextmanager
def serve_ui(deps: Dependencies, settings: ServiceSettings) -> Iterator[RunningService]:
    """The service with the page mounted, as ``create_app`` will do it."""
    app = create_app(deps=deps, settings=settings)
    mount_ui(app)
    with running_service(app, settings) as service:
        yield service


@pytest.fixture(scope="module")
def ui_service() -> Iterator[RunningService]:
    """One service with a token for the HTTP tests, which run no step."""
    deps = scripted_dependencies(script(), InMemorySessionStore())
    with serve_ui(deps, service_settings(SERVICE_AUTH_TOKEN=TOKEN)) as service:
        yield service


@pytest.fixture
def http(ui_service: RunningService) -> Iterator[httpx.Client]:
    with ui_service.http() as client:
        yield client


def raw_get(service: RunningService, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written: httpx would resolve ``..`` before sending it."""
    connection = HTTPConnection("127.0.0.1", service.port, timeout=WAIT_SECONDS)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- HTTP ---------------------------------------------------------------------------------------


def test_the_root_and_ui_redirect_to_the_page(http: httpx.Client) -> None:
    for path in ("/", "/ui"):
        response = http.get(path)
        assert response.status_code == 307, path
        # Relative: resolves to /ui/ from both, and under any path prefix.
        assert response.headers["location"] == "ui/"
        assert response.headers["content-security-policy"] == UI_HEADERS["Content-Security-Policy"]

    page = http.get("/", follow_redirects=True)
    assert page.status_code == 200
    assert str(page.url).endswith("/ui/")
    assert "<title>Agent chat</title>" in page.text


@pytest.mark.parametrize("name", ["", *MEDIA_TYPES])
def test_the_page_and_its_files_need_no_token_and_carry_the_security_headers(
    http: httpx.Client, name: str
) -> None:
    for method in ("GET", "HEAD"):
        response = http.request(method, f"/ui/{name}")
        assert response.status_code == 200, (method, name)
        assert response.headers["content-type"] == MEDIA_TYPES[name or "index.html"]
        for header, value in UI_HEADERS.items():
            assert response.headers[header] == value, (method, name, header)
    assert http.get(f"/ui/{name}").content == (STATIC_DIR / (name or "index.html")).read_bytes()


def test_an_unchanged_file_is_revalidated_with_its_etag(http: httpx.Client) -> None:
    first = http.get("/ui/chat.js")
    again = http.get("/ui/chat.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["content-security-policy"] == UI_HEADERS["Content-Security-Policy"]


def test_unknown_files_and_other_methods_are_refused(http: httpx.Client) -> None:
    for path in ("/ui/nope.js", "/ui/static/chat.js", "/ui/index.html/x"):
        response = http.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
        assert response.headers["x-content-type-options"] == "nosniff"
    posted = http.post("/ui/", content=b"{}")
    assert posted.status_code == 405
    assert posted.json()["error"]["code"] == "method_not_allowed"
    assert http.post("/", content=b"{}").status_code == 405


@pytest.mark.parametrize(
    "path",
    [
        "/ui/../ui.py",
        "/ui/%2e%2e/ui.py",
        "/ui/..%2fui.py",
        "/ui/%2e%2e%2f%2e%2e%2f..%2fpyproject.toml",
        "/ui/../../../../etc/passwd",
        "/ui/../sessions/s1",
        "/ui//etc/passwd",
    ],
)
def test_paths_out_of_the_folder_are_404(ui_service: RunningService, path: str) -> None:
    status, body = raw_get(ui_service, path)
    assert status == 404, body
    assert b"not_found" in body


def test_a_symlink_out_of_the_folder_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "index.html").write_text("<!doctype html><title>t</title>")
    (folder / "leak.txt").symlink_to(secret)
    settings = service_settings()
    app = create_app(
        deps=scripted_dependencies(script(), InMemorySessionStore()), settings=settings
    )
    mount_ui(app, folder)
    with running_service(app, settings) as service, service.http() as client:
        assert client.get("/ui/").status_code == 200
        assert client.get("/ui/leak.txt").status_code == 404


def test_the_api_and_the_websocket_still_need_the_token(
    ui_service: RunningService, http: httpx.Client
) -> None:
    assert http.get("/sessions/s1").status_code == 401
    assert http.post("/sessions/s1/messages", json={"message": "hi"}).status_code == 401
    assert http.get("/uix").status_code == 401  # only /ui and below are the page's
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(ui_service.ws_url("s1"))
    assert refused.value.response.status_code == 403


def test_mount_ui_needs_the_page(tmp_path: Path) -> None:
    app = create_app(
        deps=scripted_dependencies(script(), InMemorySessionStore()), settings=service_settings()
    )
    with pytest.raises(RuntimeError, match=r"index\.html"):
        mount_ui(app, tmp_path)


class _Markup(HTMLParser):
    """Every tag of the page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_the_page_works_under_its_csp_and_from_any_origin() -> None:
    """No inline script or style (CSP), relative URLs only (S3), no HTML from strings (XSS)."""
    markup = _Markup()
    markup.feed((STATIC_DIR / "index.html").read_text())
    for tag, attrs in markup.tags:
        assert tag != "style", "inline <style>"
        assert "style" not in attrs, f"inline style on <{tag}>"
        assert not [name for name in attrs if name.startswith("on")], f"inline handler on <{tag}>"
        if tag == "script":
            assert attrs.get("src"), "inline <script>"
        for name in ("src", "href", "action"):
            url = attrs.get(name)
            assert url is None or not re.match(r"^([a-z][a-z0-9+.-]*:|//|/)", url), url
    assert sorted(p.name for p in STATIC_DIR.iterdir()) == sorted(MEDIA_TYPES)

    script_text = (STATIC_DIR / "chat.js").read_text()
    for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert banned not in script_text.replace(f"no {banned}", ""), banned
    assert "new Function" not in script_text
    assert "localStorage" not in script_text


# --- the page in a real browser -----------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrome]:
    with chrome(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@contextmanager
def plain_file_server(directory: Path) -> Iterator[str]:
    """The page's folder from a plain file server on another origin, as S3 would host it."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT_SECONDS)


@pytest.mark.timeout(60)
def test_the_page_streams_a_tool_using_step_as_text(
    browser: Chrome, fake_openai: FakeOpenAIServer, store: InMemorySessionStore
) -> None:
    # Markup in the model's output must come out as text, never as elements.
    fake_openai.add(
        ToolCallReply(
            "calculator", {"expression": "6 * 7"}, call_id="call_42", text="Let me <b>compute</b>."
        ),
        TextReply('6 times 7 is 42. <img src="x" onerror="document.title=\'pwned\'">'),
        TextReply("You asked about 6 times 7."),
    )
    deps, _ = openai_dependencies(fake_openai.base_url, store)

    with serve_ui(deps, service_settings(SERVICE_AUTH_TOKEN=TOKEN)) as service:
        browser.get(f"{service.base_url}/")  # redirected to /ui/
        wait_for(
            browser,
            lambda d: UUID.fullmatch(d.find_element(By.ID, "session-id").text) is not None,
            "a random session id",
        )
        session_id = browser.find_element(By.ID, "session-id").text
        # The default WebSocket URL is the page's own origin.
        ws_url = browser.find_element(By.ID, "ws-url").get_attribute("value")
        assert ws_url == f"ws://127.0.0.1:{service.port}/agent/"

        fill(browser, "token", TOKEN)
        fill(browser, "message", "What is 6 times 7?")
        browser.find_element(By.ID, "send").click()
        wait_for(browser, step_done(1), "the first answer")
        first = transcript(browser)
        wait_for(browser, lambda d: status(d) == "connected", "the connected state")

        # A second message on the open connection, sent with Enter.
        browser.find_element(By.ID, "message").send_keys("What did I ask?", Keys.ENTER)
        wait_for(browser, step_done(2), "the second answer")
        second = transcript(browser)[len(first) :]

        stored_token = browser.execute_script("return sessionStorage.getItem('agent-chat.token')")
        local_keys = browser.execute_script("return localStorage.length")
        injected = browser.execute_script(
            "return document.querySelectorAll('#transcript img, #transcript b').length"
        )
        title = browser.title
        errors = page_errors(browser)

    assert first == [
        ["user", ["You", "What is 6 times 7?"]],
        ["thinking", ["Thinking", "Let me <b>compute</b>."]],
        [
            "action",
            [
                "Tool call",
                "calculator",
                "Arguments",
                '{\n  "expression": "6 * 7"\n}',
                "Output",
                "42",
            ],
        ],
        [
            "result",
            [
                "Answer",
                '6 times 7 is 42. <img src="x" onerror="document.title=\'pwned\'">',
                "version 1 · 2 iteration(s) · stop: end_turn · tokens: 20 in, 10 out",
            ],
        ],
    ]
    assert second == [
        ["user", ["You", "What did I ask?"]],
        [
            "result",
            [
                "Answer",
                "You asked about 6 times 7.",
                "version 2 · 1 iteration(s) · stop: end_turn · tokens: 10 in, 5 out",
            ],
        ],
    ]
    # The page's session is the server's: both steps are in it.
    session = store.get(session_id)
    assert session is not None
    assert session.version == 2
    assert (injected, title) == (0, "Agent chat")
    assert (stored_token, local_keys) == (TOKEN, 0)
    assert errors == []


@pytest.mark.timeout(60)
def test_a_wrong_token_shows_an_error_and_reconnecting_with_the_right_one_works(
    browser: Chrome, store: InMemorySessionStore
) -> None:
    llm = script(text("Hello from the agent."))
    with (
        serve_ui(
            scripted_dependencies(llm, store), service_settings(SERVICE_AUTH_TOKEN=TOKEN)
        ) as s,
        plain_file_server(STATIC_DIR) as page_origin,
    ):
        # The page from another origin (as from S3), pointed at the service with ?ws=.
        browser.get(f"{page_origin}/index.html?ws=ws://127.0.0.1:{s.port}")
        fill(browser, "token", "wrong-token-0123456789abcdef")
        fill(browser, "message", "hello?")
        browser.find_element(By.ID, "send").click()
        wait_for(browser, lambda d: status(d) == "error", "the error state")
        refused = transcript(browser)
        calls_after_refusal = len(llm.calls)
        # The message stays in the box, to be sent once connected.
        kept = browser.find_element(By.ID, "message").get_attribute("value")

        fill(browser, "token", TOKEN)
        browser.find_element(By.ID, "connect").click()  # now labelled Reconnect
        reconnect_label = browser.find_element(By.ID, "connect").text
        wait_for(browser, lambda d: status(d) == "connected", "the connected state")
        browser.find_element(By.ID, "send").click()
        wait_for(browser, step_done(2), "the answer")
        after = transcript(browser)[len(refused) :]

    assert refused == [
        [
            "error",
            [
                "Connection failed",
                "Could not connect (code 1006). Check the token and the WebSocket URL.",
            ],
        ]
    ]
    assert (calls_after_refusal, kept, reconnect_label) == (0, "hello?", "Reconnect")
    assert after == [
        ["user", ["You", "hello?"]],
        [
            "result",
            [
                "Answer",
                "Hello from the agent.",
                "version 1 · 1 iteration(s) · stop: end_turn · tokens: 10 in, 5 out",
            ],
        ],
    ]


def test_the_service_serves_the_page_unless_service_ui_is_off(store: InMemorySessionStore) -> None:
    deps = scripted_dependencies(script(), store)
    for value, status_code in (("true", 200), ("false", 401)):
        settings = service_settings(SERVICE_AUTH_TOKEN=TOKEN, SERVICE_UI=value)
        with serve(deps, settings) as service, service.http() as client:
            assert client.get("/ui/").status_code == status_code, value
