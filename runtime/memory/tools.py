"""The ``remember`` and ``recall`` tools: the agent's long-term memory, scoped per user.

The scope is never a tool argument: the model must not be able to read another user's memories
by naming them. In ``session`` mode (the default) each session has its own memories, bound by
the agent loop through :mod:`runtime.memory.context`; in ``deployment`` mode every session of the
deployment shares one scope, for single-tenant deployments only, since whatever one user stores
is then read back to the model in everyone else's sessions.

Failures (the database down, an embedding error, content too long) raise, and the tool registry
turns them into an error string for the model: a step never fails because memory did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from runtime.memory.context import current_session_id
from runtime.memory.types import MemoryStore, ScoredMemory
from runtime.tools import Tool

MemoryScope = Literal["session", "deployment"]

MAX_RECALL_K = 10
DEFAULT_RECALL_K = 5
DEPLOYMENT_SCOPE = "deployment"


def session_scope(session_id: str) -> str:
    # Prefixed so that no session id can coincide with the deployment-wide scope.
    return f"session:{session_id}"


def scope_resolver(mode: MemoryScope) -> Callable[[], str]:
    """Where the current call's memories live: read at call time, never at build time."""
    if mode == "deployment":
        return lambda: DEPLOYMENT_SCOPE
    return lambda: session_scope(current_session_id())


def memory_tools(
    store: MemoryStore,
    *,
    scope: MemoryScope | Callable[[], str] = "session",
    min_score: float | None = None,
) -> list[Tool]:
    """``remember`` and ``recall`` over ``store``.

    ``scope`` is a mode, or a callable returning the scope for the current call (tests, custom
    tenancy). ``min_score`` drops weak hits from ``recall``; what counts as weak depends on the
    embedder, so none is dropped by default.
    """
    resolve = scope if callable(scope) else scope_resolver(scope)

    def remember(content: str) -> str:
        memory = store.add(resolve(), content)
        expires = memory.expires_at.isoformat(timespec="seconds")
        return f"Remembered. This memory is kept until {expires}."

    def recall(query: str, k: int = DEFAULT_RECALL_K) -> str:
        return format_hits(store.search(resolve(), query, k=k, min_score=min_score))

    return [
        Tool(
            name="remember",
            description=(
                "Store one fact worth keeping for later turns of this conversation (a preference, "
                "a name, a decision). Write it as a self-contained sentence; it can be found "
                "again with recall."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "content": {
                        "type": "string",
                        "description": "The fact, as a self-contained sentence.",
                        "minLength": 1,
                        "maxLength": store.max_content_chars,
                    }
                },
                "required": ["content"],
                "additionalProperties": False,
            },
            func=remember,
        ),
        Tool(
            name="recall",
            description=(
                "Search the facts stored with remember, by meaning. Returns the closest ones, "
                "best first, each with a similarity score between -1 and 1."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "What to look for, e.g. 'the user's favourite colour'.",
                        "minLength": 1,
                        "maxLength": store.max_content_chars,
                    },
                    "k": {
                        "type": "integer",
                        "description": f"How many facts to return (default {DEFAULT_RECALL_K}).",
                        "minimum": 1,
                        "maximum": MAX_RECALL_K,
                    },
                },
                "required": ["query"],
                "additionalProperties": False,
            },
            func=recall,
        ),
    ]


def format_hits(hits: list[ScoredMemory]) -> str:
    if not hits:
        return "No stored memory matches."
    lines = [f"{len(hits)} stored memor{'y' if len(hits) == 1 else 'ies'}, best match first:"]
    lines.extend(
        f"{number}. [score {hit.score:.2f}] {hit.memory.content}"
        for number, hit in enumerate(hits, start=1)
    )
    return "\n".join(lines)
