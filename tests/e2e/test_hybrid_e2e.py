"""The hybrid architecture end to end in one process, on real local servers.

Synchronous path: a real headless Chromium loads the chat page from the agent service, which is
wired by the production ``build_dependencies`` from its environment: sessions in a real Redis,
memories in a real PostgreSQL with pgvector (hashing embedder), the model an OpenAI-compatible
fake on 127.0.0.1. The user asks the agent to remember a fact, then asks for it: the model calls
``remember``, then ``recall``, whose vector search result reaches both the model and the page.

Asynchronous path, in the same run: ``POST /webhook`` (the ingress handler) -> task queue (moto
SQS) -> task worker -> callback queue -> callback worker -> a receiver on 127.0.0.1 that verifies
the signature.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from psycopg import sql
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By

from runtime.memory.store import DEFAULT_TABLE
from runtime.service.app import create_app
from runtime.settings import RuntimeSettings
from runtime.wiring import build_dependencies
from tests.fakes.browser import (
    Transcript,
    chrome,
    fill,
    page_errors,
    step_done,
    transcript,
    wait_for,
)
from tests.fakes.openai_server import FakeOpenAIServer, TextReply, ToolCallReply
from tests.fakes.postgres_server import PostgresServer
from tests.fakes.redis_server import RedisServer
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.runtime.async_env import AsyncEnv, install_async_app, make_async_env, uninstall
from tests.runtime.conftest import text
from tests.service.conftest import running_service, service_settings

TOKEN = "hybrid-e2e-token-0123456789"
API_KEY = "e2e-model-key"
FACT = "The release train for project Heron leaves on Thursdays"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chrome]:
    with chrome(tmp_path / "chromium-profile") as driver:
        yield driver


@pytest.fixture
def async_env(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[AsyncEnv]:
    yield make_async_env(monkeypatch)
    uninstall()


@pytest.fixture
def memory_table(postgres_server: PostgresServer) -> Iterator[str]:
    yield DEFAULT_TABLE
    with postgres_server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(DEFAULT_TABLE)))


def agent_environment(
    redis_server: RedisServer, postgres_server: PostgresServer, model: FakeOpenAIServer
) -> dict[str, str]:
    """What the container stack gives the service in the hybrid profile (config/environment.py)."""
    return {
        "SESSION_STORE": "redis",
        "REDIS_URL": redis_server.url,
        "REDIS_PASSWORD": redis_server.password,
        "SESSION_TTL_SECONDS": "3600",
        "LLM_PROVIDER": "openai-compatible",
        "LLM_MODEL_ID": "e2e-model",
        "LLM_BASE_URL": model.base_url,
        "LLM_API_KEY": API_KEY,
        "LLM_REQUEST_TIMEOUT_SECONDS": "5",
        "LLM_MAX_ATTEMPTS": "1",
        "AGENT_MAX_ITERATIONS": "4",
        "MAX_MESSAGE_CHARS": "2000",
        "MAX_BODY_BYTES": "8192",
        "MEMORY_STORE": "pgvector",
        "MEMORY_DATABASE_URL": postgres_server.url,
        "MEMORY_DATABASE_USER": postgres_server.user,
        "MEMORY_DATABASE_PASSWORD": postgres_server.password,
        "MEMORY_EMBEDDER": "hashing",
        "MEMORY_EMBEDDING_DIMENSIONS": "256",
    }


def ask(browser: Chrome, message: str, steps_done: int) -> Transcript:
    before = len(transcript(browser))
    fill(browser, "message", message)
    browser.find_element(By.ID, "send").click()
    wait_for(browser, step_done(steps_done), f"the answer to {message!r}")
    return transcript(browser)[before:]


@pytest.mark.timeout(120)
def test_browser_service_redis_vector_search_and_webhook_callback_in_one_run(
    browser: Chrome,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    memory_table: str,
    async_env: AsyncEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # --- synchronous: browser -> service -> Redis + pgvector -> model -> frames -----------------
    with FakeOpenAIServer(expected_api_key=API_KEY) as model:
        environ = agent_environment(redis_server, postgres_server, model)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        deps = build_dependencies(RuntimeSettings.from_env(environ))
        assert {"remember", "recall"} <= set(deps.tools.names())
        model.add(
            ToolCallReply("remember", {"content": FACT}, call_id="call_remember"),
            TextReply("Noted."),
            ToolCallReply("recall", {"query": "When does the Heron release train leave?"}),
            TextReply("It leaves on Thursdays."),
        )
        settings = service_settings(SERVICE_AUTH_TOKEN=TOKEN)
        with running_service(create_app(deps=deps, settings=settings), settings) as service:
            browser.get(f"{service.base_url}/")
            fill(browser, "token", TOKEN)
            session_id = browser.find_element(By.ID, "session-id").text
            first = ask(browser, f"Please remember: {FACT}.", 1)
            second = ask(browser, "When does the Heron release train leave?", 2)
            errors = page_errors(browser)

        # The page showed each step's frames: the tool calls with their outputs, then the answer.
        assert [entry[0] for entry in first] == ["user", "action", "result"]
        assert [entry[0] for entry in second] == ["user", "action", "result"]
        recall_frame = [str(part) for part in second[1][1]]
        assert "recall" in recall_frame
        assert any(FACT in part for part in recall_frame), recall_frame
        assert "It leaves on Thursdays." in [str(part) for part in second[2][1]]
        assert errors == []

        # The vector search's result went back to the model as the recall tool's output.
        recall_result = [
            message["content"]
            for message in model.requests[3].body["messages"]
            if message["role"] == "tool"
        ]
        assert any(FACT in content for content in recall_result), recall_result

    # The session lives in Redis (two turns), the memory in PostgreSQL under this session's scope.
    session = deps.store.get(session_id)
    assert session is not None and session.version == 2
    raw = redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password
    )
    try:
        assert any(session_id in key.decode() for key in raw.scan_iter(match="*"))
    finally:
        raw.close()
    with postgres_server.connect() as conn:
        rows = conn.execute(
            sql.SQL("SELECT scope, content FROM {}").format(sql.Identifier(memory_table))
        ).fetchall()
    assert rows == [(f"session:{session_id}", FACT)]

    # --- asynchronous: webhook -> queue -> worker -> signed callback ----------------------------
    with WebhookReceiver(secrets=[async_env.signing_secret]) as receiver:
        app = install_async_app(async_env, _Echo())
        status, _, accepted = app.submit(
            {"input": "summarise the Heron release", "callback_url": receiver.url}
        )
        assert status == 202, accepted
        app.run_until_idle()
    task_id = accepted["task_id"]
    status, task = app.get_task(task_id)
    assert status == 200 and task["status"] == "succeeded", task
    assert task["result"]["output"] == "done: summarise the Heron release"
    assert receiver.rejected == []
    [callback] = receiver.requests
    assert callback.headers["webhook-id"] == f"msg_{task_id}_1"
    assert json.loads(callback.body)["data"]["result"]["output"] == task["result"]["output"]


class _Echo:
    """The async worker's model: answers every task at once."""

    def complete(self, messages, *, tools=(), system=None):
        return text(f"done: {messages[-1].content}")
