"""The remember and recall tools through the real ToolRegistry and agent loop, on real PostgreSQL.

Until ``run_step`` binds the session itself, the tests bind it around each call, as it will.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from runtime.agent import run_step
from runtime.llm.types import LLMResponse, Message, ToolCall
from runtime.memory.context import bind_session, current_session_id
from runtime.memory.embedders import HashingEmbedder
from runtime.memory.store import PgVectorMemoryStore
from runtime.memory.tools import MAX_RECALL_K, memory_tools, session_scope
from runtime.tools import ToolRegistry, ToolResult, default_registry
from tests.fakes.clock import FakeClock
from tests.fakes.memory_store import InMemorySessionStore
from tests.fakes.postgres_server import running_postgres
from tests.memory.conftest import DIMENSIONS, TTL_SECONDS, StoreFactory
from tests.runtime.conftest import ScriptedLLM, text, tool_use

FACT = "The user's favourite colour is green."


def call(registry: ToolRegistry, name: str, **arguments: object) -> ToolResult:
    return registry.execute(ToolCall(id="call_1", name=name, arguments=arguments))


@pytest.fixture
def registry(store: PgVectorMemoryStore) -> ToolRegistry:
    return default_registry(extra=memory_tools(store))


def test_remember_then_recall(registry: ToolRegistry, clock: FakeClock) -> None:
    with bind_session("s-1"):
        remembered = call(registry, "remember", content=FACT)
        call(registry, "remember", content="The user lives in Lisbon.")
        recalled = call(registry, "recall", query="favourite colour", k=1)
        both = call(registry, "recall", query="the user")

    assert not remembered.is_error
    expires = datetime.fromtimestamp(clock.now + TTL_SECONDS, tz=UTC)
    assert remembered.output == f"Remembered. This memory is kept until {expires.isoformat()}."
    assert not recalled.is_error
    assert recalled.output.splitlines()[0] == "1 stored memory, best match first:"
    assert recalled.output.splitlines()[1].startswith("1. [score ")
    assert recalled.output.splitlines()[1].endswith(f"] {FACT}")
    assert both.output.startswith("2 stored memories, best match first:\n1. [score ")


def test_recall_with_nothing_stored(registry: ToolRegistry) -> None:
    with bind_session("s-empty"):
        result = call(registry, "recall", query="anything at all")

    assert (result.output, result.is_error) == ("No stored memory matches.", False)


def test_sessions_never_see_each_other(registry: ToolRegistry, store: PgVectorMemoryStore) -> None:
    with bind_session("alice"):
        call(registry, "remember", content="Alice's locker code is 4711.")
    with bind_session("bob"):
        bob = call(registry, "recall", query="Alice's locker code is 4711.", k=MAX_RECALL_K)
    with bind_session("alice"):
        alice = call(registry, "recall", query="locker code")

    assert bob.output == "No stored memory matches."
    assert "4711" in alice.output
    assert len(store.search(session_scope("alice"), "locker")) == 1


def test_deployment_scope_is_shared(store: PgVectorMemoryStore) -> None:
    registry = default_registry(extra=memory_tools(store, scope="deployment"))
    with bind_session("alice"):
        call(registry, "remember", content="The office wifi is called Orchard.")
    with bind_session("bob"):
        result = call(registry, "recall", query="office wifi")

    assert "Orchard" in result.output


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("remember", {}, "arguments.content: is required"),
        ("remember", {"content": ""}, "arguments.content: must have at least 1 characters"),
        ("remember", {"content": "x" * 2001}, "must have at most 2000 characters"),
        ("remember", {"content": "fact", "scope": "session:bob"}, "unexpected field"),
        ("recall", {"query": "q", "k": 0}, "arguments.k: must be >= 1"),
        ("recall", {"query": "q", "k": MAX_RECALL_K + 1}, f"must be <= {MAX_RECALL_K}"),
        ("recall", {"query": "q", "k": "3"}, "arguments.k: expected integer, got string"),
        ("recall", {"k": 3}, "arguments.query: is required"),
    ],
)
def test_bad_arguments_come_back_as_errors(
    registry: ToolRegistry, name: str, arguments: dict[str, object], message: str
) -> None:
    with bind_session("s-1"):
        result = call(registry, name, **arguments)

    assert result.is_error
    assert result.output.startswith(f"Error: invalid arguments for {name}: ")
    assert message in result.output


def test_content_the_store_refuses_is_an_error_string(registry: ToolRegistry) -> None:
    with bind_session("s-1"):
        result = call(registry, "remember", content="   ")

    assert result.is_error
    assert result.output == "Error: remember failed: ValueError: memory content must not be empty"


def test_without_a_bound_session_the_tools_refuse(registry: ToolRegistry) -> None:
    result = call(registry, "remember", content=FACT)

    assert result.is_error
    assert "NoSessionError: no agent session is bound" in result.output


def test_bind_session_restores_the_previous_value() -> None:
    with bind_session("outer"):
        with bind_session("inner"):
            assert current_session_id() == "inner"
        assert current_session_id() == "outer"
    with pytest.raises(ValueError, match="must not be empty"), bind_session(""):
        pass


# --- the agent loop ---------------------------------------------------------------------------


def step(
    llm: ScriptedLLM, sessions: InMemorySessionStore, tools: ToolRegistry, session_id: str, say: str
) -> str:
    with bind_session(session_id):
        result = run_step(
            store=sessions,
            llm=llm,
            tools=tools,
            session_id=session_id,
            user_input=say,
            max_iterations=4,
        )
    return result.output


def last_tool_result(messages: Sequence[Message]) -> str:
    assert messages[-1].role == "tool"
    return messages[-1].content


def test_an_agent_remembers_in_one_step_and_recalls_in_the_next(
    registry: ToolRegistry, clock: FakeClock
) -> None:
    sessions = InMemorySessionStore(clock=clock)
    seen: list[str] = []

    def answer_from_memory(messages: Sequence[Message]) -> LLMResponse:
        seen.append(last_tool_result(messages))
        return text("Your favourite colour is green.")

    llm = ScriptedLLM(
        [
            tool_use("remember", {"content": FACT}, call_id="c1"),
            text("Noted."),
            tool_use("recall", {"query": "what is my favourite colour?"}, call_id="c2"),
            answer_from_memory,
        ]
    )

    assert step(llm, sessions, registry, "s-42", "My favourite colour is green.") == "Noted."
    assert "Remembered." in last_tool_result(llm.calls[1].messages)
    output = step(llm, sessions, registry, "s-42", "What is my favourite colour?")

    assert output == "Your favourite colour is green."
    assert FACT in seen[0]
    assert seen[0].startswith("1 stored memory, best match first:")
    # The step's session holds the whole exchange, tool results included.
    stored = sessions.get("s-42")
    assert stored is not None
    assert [message.role for message in stored.messages].count("tool") == 2


def test_a_database_outage_fails_the_tool_not_the_step(clock: FakeClock) -> None:
    # A server of its own, stopped mid-test: the session's shared one must stay up.
    with running_postgres() as server:
        store = PgVectorMemoryStore.from_url(
            server.url,
            user=server.user,
            password=server.password,
            embedder=HashingEmbedder(DIMENSIONS),
            ttl_seconds=TTL_SECONDS,
            clock=clock,
            connect_timeout_seconds=2,
        )
        registry = default_registry(extra=memory_tools(store))
        with bind_session("s-down"):
            assert not call(registry, "remember", content=FACT).is_error

    sessions = InMemorySessionStore(clock=clock)
    llm = ScriptedLLM(
        [
            tool_use("recall", {"query": "favourite colour"}),
            text("I cannot reach my memory right now; what is your favourite colour?"),
        ]
    )

    output = step(llm, sessions, registry, "s-down", "What is my favourite colour?")

    assert output.startswith("I cannot reach my memory")
    error = last_tool_result(llm.calls[1].messages)
    assert error.startswith(
        "Error: recall failed: MemoryStoreUnavailableError: the memory database is "
        "unavailable, could not search memories: "
    )
    assert server.password not in error
    assert sessions.get("s-down") is not None  # the step was saved


def test_tool_schema_follows_the_store_bound(make_store: StoreFactory) -> None:
    remember, recall = memory_tools(make_store(max_content_chars=300))

    assert remember.parameters["properties"]["content"]["maxLength"] == 300
    assert recall.parameters["properties"]["query"]["maxLength"] == 300
    assert recall.parameters["properties"]["k"] == {
        "type": "integer",
        "description": "How many facts to return (default 5).",
        "minimum": 1,
        "maximum": MAX_RECALL_K,
    }
