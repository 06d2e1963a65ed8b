"""run_step: the loop, tool use, its bounds, events, and what reaches the store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from runtime.agent import AgentEvent, StepResult, run_step
from runtime.dynamodb_store import DynamoDBSessionStore
from runtime.llm.types import (
    LLMResponse,
    LLMTimeoutError,
    LLMUpstreamError,
    Message,
    ToolCall,
    Usage,
)
from runtime.session_store import SessionConflictError
from runtime.tools import default_registry
from tests.fakes.clock import FakeClock
from tests.runtime.conftest import ScriptedLLM, text, tool_use

PRIOR = (
    Message(role="user", content="Hi, I am Ada."),
    Message(role="assistant", content="Hello Ada."),
)


def step(
    store: DynamoDBSessionStore,
    llm: ScriptedLLM,
    user_input: str,
    *,
    session_id: str = "s-1",
    max_iterations: int = 4,
    **kwargs: Any,
) -> StepResult:
    return run_step(
        store=store,
        llm=llm,
        tools=default_registry(),
        session_id=session_id,
        user_input=user_input,
        max_iterations=max_iterations,
        **kwargs,
    )


def test_plain_answer_creates_the_session(store: DynamoDBSessionStore) -> None:
    llm = ScriptedLLM([text("Paris.", input_tokens=12, output_tokens=3)])

    result = step(store, llm, "Capital of France?", system_prompt="Be brief.")

    assert result.output == "Paris."
    assert (result.version, result.iterations, result.stop_reason) == (1, 1, "end_turn")
    assert result.usage == Usage(12, 3)
    assert result.tool_calls == ()
    [sent] = llm.calls
    assert sent.messages == (Message(role="user", content="Capital of France?"),)
    assert sent.system == "Be brief."
    assert [spec.name for spec in sent.tools] == ["calculator", "current_time"]
    stored = store.get("s-1")
    assert stored is not None
    assert stored.version == 1
    assert stored.messages == (
        Message(role="user", content="Capital of France?"),
        Message(role="assistant", content="Paris."),
    )


def test_an_empty_system_prompt_is_not_sent(store: DynamoDBSessionStore) -> None:
    llm = ScriptedLLM([text("ok")])

    step(store, llm, "hi", system_prompt="")

    assert llm.calls[0].system is None


def test_restored_history_reaches_the_model(store: DynamoDBSessionStore) -> None:
    store.save("s-1", PRIOR, expected_version=0)
    llm = ScriptedLLM([text("Your name is Ada.")])

    result = step(store, llm, "What is my name?")

    assert llm.calls[0].messages == (*PRIOR, Message(role="user", content="What is my name?"))
    assert result.version == 2


def test_tool_call_loop_feeds_the_result_back(store: DynamoDBSessionStore) -> None:
    llm = ScriptedLLM(
        [
            tool_use("calculator", {"expression": "6 * 7"}, call_id="c1", input_tokens=20),
            text("It is 42.", input_tokens=30, output_tokens=4),
        ]
    )

    result = step(store, llm, "What is 6 times 7?")

    assert result.output == "It is 42."
    assert result.iterations == 2
    assert result.usage == Usage(50, 9)
    assert result.tool_calls == (ToolCall("c1", "calculator", {"expression": "6 * 7"}),)
    second = llm.calls[1].messages
    assert second[-1] == Message(role="tool", content="42", tool_call_id="c1")
    assert second[-2].tool_calls[0].id == "c1"
    stored = store.get("s-1")
    assert stored is not None
    assert [m.role for m in stored.messages] == ["user", "assistant", "tool", "assistant"]
    assert stored.messages[2].content == "42"


def test_tool_errors_go_back_to_the_model_and_the_step_continues(
    store: DynamoDBSessionStore,
) -> None:
    llm = ScriptedLLM(
        [
            tool_use("web_search", {"q": "x"}, call_id="c1"),
            tool_use("calculator", {"expression": "2 +"}, call_id="c2"),
            text("Sorry, I could not compute that."),
        ]
    )

    result = step(store, llm, "go")

    assert result.output == "Sorry, I could not compute that."
    tool_messages = [m for m in llm.calls[2].messages if m.role == "tool"]
    assert "unknown tool 'web_search'" in tool_messages[0].content
    assert "not a valid arithmetic expression" in tool_messages[1].content


def test_max_iterations_bounds_the_model_calls(store: DynamoDBSessionStore) -> None:
    llm = ScriptedLLM(
        [tool_use("calculator", {"expression": f"{n} + 1"}, call_id=f"c{n}") for n in range(3)]
    )

    result = step(store, llm, "loop forever", max_iterations=3)

    assert len(llm.calls) == 3
    assert result.iterations == 3
    assert result.stop_reason == "max_iterations"
    assert "stopped after 3 model calls" in result.output
    assert len(result.tool_calls) == 3
    stored = store.get("s-1")
    assert stored is not None
    # Every tool call is answered and the turn ends with the assistant, so the history stays valid.
    call_ids = [c.id for m in stored.messages for c in m.tool_calls]
    answered = [m.tool_call_id for m in stored.messages if m.role == "tool"]
    assert call_ids == answered == ["c0", "c1", "c2"]
    assert stored.messages[-1] == Message(role="assistant", content=result.output)


def test_llm_error_leaves_the_stored_session_untouched(
    store: DynamoDBSessionStore, clock: FakeClock
) -> None:
    before = store.save("s-1", PRIOR, expected_version=0)
    clock.advance(30)
    llm = ScriptedLLM(
        [tool_use("calculator", {"expression": "1 + 1"}), LLMTimeoutError("no reply in 5s")]
    )

    with pytest.raises(LLMTimeoutError):
        step(store, llm, "this turn is lost")

    assert store.get("s-1") == before


def test_llm_error_on_a_new_session_creates_nothing(store: DynamoDBSessionStore) -> None:
    llm = ScriptedLLM([LLMUpstreamError("HTTP 500", status=500)])

    with pytest.raises(LLMUpstreamError):
        step(store, llm, "hello", session_id="fresh")

    assert store.get("fresh") is None


def test_events_are_emitted_in_order_and_are_json(store: DynamoDBSessionStore) -> None:
    events: list[AgentEvent] = []
    llm = ScriptedLLM(
        [
            tool_use("calculator", {"expression": "2 ** 8"}, call_id="c1", content="Computing."),
            text("256."),
        ]
    )

    step(store, llm, "2 to the 8th?", on_event=events.append)

    assert [event.to_dict() for event in events] == [
        {"type": "thinking", "content": "Computing."},
        {
            "type": "action",
            "content": {
                "id": "c1",
                "tool": "calculator",
                "arguments": {"expression": "2 ** 8"},
                "output": "256",
                "is_error": False,
            },
        },
        {"type": "result", "content": "256."},
    ]
    json.dumps([event.to_dict() for event in events])


def test_an_error_event_is_emitted_when_the_model_fails(store: DynamoDBSessionStore) -> None:
    events: list[AgentEvent] = []
    llm = ScriptedLLM([LLMTimeoutError("no reply within 5s")])

    with pytest.raises(LLMTimeoutError):
        step(store, llm, "hi", on_event=events.append)

    assert events == [AgentEvent("error", "no reply within 5s")]


def test_expected_version_mismatch_conflicts_before_calling_the_model(
    store: DynamoDBSessionStore,
) -> None:
    before = store.save("s-1", PRIOR, expected_version=0)
    llm = ScriptedLLM([text("never sent")])

    with pytest.raises(SessionConflictError) as caught:
        step(store, llm, "hi", expected_version=5)

    assert caught.value.expected_version == 5
    assert llm.calls == []
    assert store.get("s-1") == before


def test_expected_version_of_a_missing_session_is_zero(store: DynamoDBSessionStore) -> None:
    with pytest.raises(SessionConflictError):
        step(store, ScriptedLLM([text("no")]), "hi", session_id="new", expected_version=1)

    result = step(store, ScriptedLLM([text("yes")]), "hi", session_id="new", expected_version=0)
    assert result.version == 1


def test_matching_expected_version_proceeds(store: DynamoDBSessionStore) -> None:
    store.save("s-1", PRIOR, expected_version=0)

    result = step(store, ScriptedLLM([text("ok")]), "hi", expected_version=1)

    assert result.version == 2


def test_a_concurrent_save_makes_the_step_conflict_without_writing(
    store: DynamoDBSessionStore,
) -> None:
    store.save("s-1", PRIOR, expected_version=0)

    def interleave(_: Sequence[Message]) -> LLMResponse:
        # Another step saves while this one waits for the model.
        store.save("s-1", (*PRIOR, Message(role="user", content="other")), expected_version=1)
        return text("mine")

    events: list[AgentEvent] = []
    with pytest.raises(SessionConflictError):
        step(store, ScriptedLLM([interleave]), "mine", on_event=events.append)

    stored = store.get("s-1")
    assert stored is not None
    assert stored.version == 2
    assert stored.messages[-1].content == "other"
    assert [event.type for event in events] == ["error"]
