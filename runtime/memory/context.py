"""The session the current agent step runs for, so tools can scope what they store to it.

A :class:`~contextvars.ContextVar` rather than a tool argument: the model must never choose whose
memories it reads. ``run_step`` binds the session around the tool calls it makes; a tool that
needs it reads :func:`current_session_id`. Context variables follow the code into ``asyncio``
tasks and ``contextvars.copy_context().run``, but not into threads a tool starts itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_session_id: ContextVar[str | None] = ContextVar("agent_session_id", default=None)


class NoSessionError(RuntimeError):
    """A session-scoped tool ran outside an agent step, so there is no session to scope it to."""


def current_session_id() -> str:
    """The bound session's id; raises :class:`NoSessionError` when none is bound."""
    session_id = _session_id.get()
    if session_id is None:
        raise NoSessionError(
            "no agent session is bound to this call (bind_session was not used), so there is no "
            "scope to store or search memories in"
        )
    return session_id


@contextmanager
def bind_session(session_id: str) -> Iterator[None]:
    """Make ``session_id`` the current session inside the ``with`` block, and restore after.

    Restoring (rather than leaving the value set) matters in worker threads that run step after
    step: a later call outside any step must not inherit the previous user's session.
    """
    if not session_id:
        raise ValueError("session_id must not be empty")
    token = _session_id.set(session_id)
    try:
        yield
    finally:
        _session_id.reset(token)
