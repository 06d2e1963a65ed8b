"""One agent step: restore the session, let the model think and call tools, save the result.

Every adapter (the API Gateway Lambda, the webhook worker, the container service) calls
:func:`run_step`, so the state rules live here once:

* the session is read once and saved once, with ``expected_version`` set to the version read, so a
  concurrent step on the same session makes the second save fail with
  :class:`~runtime.session_store.SessionConflictError` instead of silently dropping a turn;
* nothing is saved until the step finishes, so a model failure (timeout, rate limit...) leaves the
  stored session exactly as it was and the caller can retry the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from runtime.llm.types import LLMClient, LLMError, Message, ToolCall, Usage
from runtime.memory.context import bind_session
from runtime.session_store import SessionConflictError, SessionStore
from runtime.tools import ToolRegistry

EventType = Literal["thinking", "action", "result", "error"]


@dataclass(frozen=True)
class AgentEvent:
    """Progress of a step, for streaming to a client.

    ``content`` is plain text for ``thinking``, ``result`` and ``error``; for ``action`` it is a
    JSON object ``{"id", "tool", "arguments", "output", "is_error"}``. Both survive ``json.dumps``.
    """

    type: EventType
    content: str | Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        content = self.content if isinstance(self.content, str) else dict(self.content)
        return {"type": self.type, "content": content}


@dataclass(frozen=True)
class StepResult:
    session_id: str
    output: str
    version: int
    iterations: int
    stop_reason: str
    usage: Usage
    tool_calls: tuple[ToolCall, ...]


MAX_ITERATIONS_STOP_REASON = "max_iterations"


def run_step(
    *,
    store: SessionStore,
    llm: LLMClient,
    tools: ToolRegistry,
    session_id: str,
    user_input: str,
    max_iterations: int,
    system_prompt: str | None = None,
    expected_version: int | None = None,
    on_event: Callable[[AgentEvent], None] | None = None,
) -> StepResult:
    """Run one user turn to completion and persist it.

    ``expected_version`` lets a client say which state it saw: when the stored version differs,
    the step fails with :class:`SessionConflictError` before the model is called (and billed).
    Exceptions from ``on_event`` propagate, aborting the step unsaved; adapters whose client may
    disconnect should swallow their own send errors.
    """
    if max_iterations < 1:
        raise ValueError("max_iterations must be at least 1")

    def emit(event_type: EventType, content: str | Mapping[str, Any]) -> None:
        if on_event is not None:
            on_event(AgentEvent(event_type, content))

    session = store.get(session_id)
    read_version = session.version if session is not None else 0
    if expected_version is not None and expected_version != read_version:
        raise SessionConflictError(session_id, expected_version)

    messages: list[Message] = list(session.messages) if session is not None else []
    messages.append(Message(role="user", content=user_input))
    specs = tools.specs()
    usage = Usage()
    calls_made: list[ToolCall] = []
    iterations = 0
    output = ""
    stop_reason = MAX_ITERATIONS_STOP_REASON

    while iterations < max_iterations:
        iterations += 1
        try:
            response = llm.complete(messages, tools=specs, system=system_prompt or None)
        except LLMError as exc:
            emit("error", str(exc))
            raise
        usage = usage + response.usage
        reply = response.message
        messages.append(reply)
        if not reply.tool_calls:
            output = reply.content
            stop_reason = response.stop_reason
            break
        if reply.content:
            emit("thinking", reply.content)
        # Every call gets its result message, even on the last iteration: providers reject a
        # history where an assistant tool call has no matching tool result.
        for call in reply.tool_calls:
            # Tools that keep per-user state (memory) scope it to this session; the binding is
            # undone after the call, so a later step on this worker thread cannot inherit it.
            with bind_session(session_id):
                result = tools.execute(call)
            calls_made.append(call)
            messages.append(Message(role="tool", content=result.output, tool_call_id=call.id))
            emit(
                "action",
                {
                    "id": call.id,
                    "tool": call.name,
                    "arguments": dict(call.arguments),
                    "output": result.output,
                    "is_error": result.is_error,
                },
            )
    else:
        output = (
            f"I stopped after {max_iterations} model calls without reaching a final answer "
            "(the step's iteration limit). Ask me to continue to pick up from here."
        )
        # Stored as the assistant's reply so the next turn follows a well-formed history.
        messages.append(Message(role="assistant", content=output))

    try:
        saved = store.save(session_id, messages, expected_version=read_version)
    except SessionConflictError as exc:
        emit("error", str(exc))
        raise
    emit("result", output)
    return StepResult(
        session_id=session_id,
        output=output,
        version=saved.version,
        iterations=iterations,
        stop_reason=stop_reason,
        usage=usage,
        tool_calls=tuple(calls_made),
    )
