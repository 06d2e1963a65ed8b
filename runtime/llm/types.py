"""Provider-neutral message, tool and response types shared by every LLM backend.

Messages are stored in session state, so each type round-trips through plain JSON
(``to_dict`` / ``from_dict``) and nothing provider-specific leaks into the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A model's request to run one tool; ``id`` ties the tool result back to it."""

    id: str
    name: str
    arguments: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": dict(self.arguments)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        return cls(id=str(data["id"]), name=str(data["name"]), arguments=dict(data["arguments"]))


@dataclass(frozen=True)
class Message:
    """One conversation turn; ``tool`` messages carry ``tool_call_id``, assistant ones calls."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        return cls(
            role=data["role"],
            content=str(data.get("content") or ""),
            tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
            tool_call_id=data.get("tool_call_id"),
        )


@dataclass(frozen=True)
class ToolSpec:
    """What the model sees of a tool: name, description and a JSON schema for its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True)
class LLMResponse:
    """The assistant message and why the model stopped (``end_turn``, ``tool_use``, ...)."""

    message: Message
    stop_reason: str
    usage: Usage = field(default_factory=Usage)


class LLMClient(Protocol):
    """One chat completion. Implementations retry transient failures themselves."""

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        system: str | None = None,
    ) -> LLMResponse: ...


class LLMError(Exception):
    """The model call failed after the client's retries; the message says why, without secrets."""


class LLMTimeoutError(LLMError):
    """No answer within the time budget (per attempt or overall)."""


class LLMRateLimitedError(LLMError):
    """The provider kept answering 429 / throttling until the attempts ran out."""


class LLMUpstreamError(LLMError):
    """The provider answered with an error that retrying did not fix, or one not worth retrying."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
