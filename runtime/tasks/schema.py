"""The body of ``POST /webhook``, as one JSON Schema.

The stack builds API Gateway's request model from :data:`TASK_REQUEST_SCHEMA` (so the gateway
rejects garbage before it costs an invocation) and the handler validates with the same document,
so the two can never disagree. Only the JSON Schema subset :func:`runtime.tools.validate` checks
is used: draft-04 keywords that API Gateway models also accept.
"""

from __future__ import annotations

from typing import Any, Final

# Bounds for what a webhook source may attach; the task record must stay far below DynamoDB's
# 400 KB item limit together with the agent's result.
MAX_METADATA_KEYS: Final = 20
MAX_METADATA_VALUE_CHARS: Final = 256
MAX_CALLBACK_URL_CHARS: Final = 2048
SESSION_ID_REGEX: Final = "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
# Task ids are uuid4 hex: unguessable (122 random bits), so the id itself is the capability to
# read a task's status; GET /tasks/{task_id} is still behind the API's auth.
TASK_ID_REGEX: Final = "^[0-9a-f]{32}$"


def task_request_schema(max_input_chars: int) -> dict[str, Any]:
    """The request schema for a deployment whose agent accepts ``max_input_chars`` characters."""
    return {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {
            # The user message the agent works on.
            "input": {"type": "string", "minLength": 1, "maxLength": max_input_chars},
            # Continue an existing conversation; by default every task gets its own session.
            "session_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "pattern": SESSION_ID_REGEX,
            },
            # Where the result is POSTed (signed). Checked against the SSRF rules at submit time.
            "callback_url": {"type": "string", "minLength": 8, "maxLength": MAX_CALLBACK_URL_CHARS},
            # Opaque to us; echoed in the status and the callback so callers can correlate.
            "metadata": {
                "type": "object",
                "maxProperties": MAX_METADATA_KEYS,
                "additionalProperties": {
                    "type": "string",
                    "maxLength": MAX_METADATA_VALUE_CHARS,
                },
            },
        },
    }
