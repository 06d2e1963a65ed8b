"""A client for any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama...).

Retries are done here, not by httpx: 429 and 5xx gateway answers and connect/read timeouts are
retried with full-jitter backoff (honouring ``Retry-After``) inside the policy's attempt and time
budget; other 4xx answers are the caller's fault and are not retried. A 401 is retried once after
invalidating the cached key, because it usually means the key was rotated in Secrets Manager.
Error messages carry the status and the provider's explanation, never the API key.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable
from urllib.parse import urlsplit

import httpx

from runtime.llm.retry import Clock, RetryPolicy, RetryTimer, Sleep, Uniform, parse_retry_after
from runtime.llm.types import (
    LLMError,
    LLMRateLimitedError,
    LLMResponse,
    LLMTimeoutError,
    LLMUpstreamError,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

_FINISH_REASONS = {
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "stop": "end_turn",
    "length": "max_tokens",
}

# Enough of an error body to explain the failure without flooding logs with an HTML error page.
_MAX_DETAIL_CHARS = 300


@runtime_checkable
class ApiKeySource(Protocol):
    """A key provider that can drop a cached key, e.g. :class:`runtime.llm.secrets.SecretCache`."""

    def get(self) -> str | None: ...

    def invalidate(self) -> None: ...


KeyProvider: TypeAlias = ApiKeySource | Callable[[], str | None]


def current_key(source: KeyProvider | None) -> str | None:
    """The key a provider holds now (a rotation-aware source re-reads it after a 401)."""
    if source is None:
        return None
    if isinstance(source, ApiKeySource):
        return source.get()
    return source()


@dataclass(frozen=True)
class _Failure:
    kind: Literal["rate_limited", "timeout", "upstream"]
    detail: str
    status: int | None = None
    retry_after: float | None = None


class OpenAICompatibleClient:
    """``LLMClient`` over HTTP. Pass an ``http_client`` to share a connection pool or for tests.

    ``api_key`` is None for providers without auth (a local vLLM): no Authorization header is
    sent. The key is read on every attempt, so a refreshed cache is used by the very next request.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: KeyProvider | None = None,
        policy: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        max_tokens: int | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        uniform: Uniform = random.uniform,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        # Only host[:port] goes into error messages: userinfo in a URL would be a credential.
        self._host = urlsplit(base_url).netloc.rpartition("@")[2] or "the LLM provider"
        self._model = model
        self._key_source = api_key
        self._policy = policy or RetryPolicy()
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()
        self._max_tokens = max_tokens
        self._sleep = sleep
        self._clock = clock
        self._uniform = uniform

    def close(self) -> None:
        """Close the connection pool if this client created it."""
        if self._owns_http:
            self._http.close()

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        system: str | None = None,
    ) -> LLMResponse:
        body = build_request_body(
            self._model, messages, tools=tools, system=system, max_tokens=self._max_tokens
        )
        timer = RetryTimer(
            self._policy, sleep=self._sleep, clock=self._clock, uniform=self._uniform
        )
        failures = 0
        auth_retried = False
        last: _Failure | None = None
        while True:
            timeout = timer.attempt_timeout()
            if timeout is None:
                raise self._give_up(last, failures, budget_spent=True)
            key = self._current_key()
            try:
                response = self._http.post(
                    self._url, json=body, headers=_headers(key), timeout=httpx.Timeout(timeout)
                )
            except httpx.TimeoutException as exc:
                last = _Failure("timeout", f"no reply within {timeout:g}s ({type(exc).__name__})")
            except httpx.TransportError as exc:
                last = _Failure("upstream", f"could not reach {self._host} ({type(exc).__name__})")
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return self._parse(response, key)
                detail = f"HTTP {status}: {error_detail(response, key)}"
                if status == 401 and not auth_retried and self._key_source is not None:
                    # A rotated key: the cache still holds the old one. Not counted as an attempt
                    # and not delayed, since nothing about the provider's load changed.
                    auth_retried = True
                    self._invalidate_key()
                    continue
                if status not in RETRYABLE_STATUSES:
                    raise LLMUpstreamError(
                        f"{self._host} rejected the chat completion: {detail}", status=status
                    )
                last = _Failure(
                    "rate_limited" if status == 429 else "upstream",
                    detail,
                    status=status,
                    retry_after=parse_retry_after(response.headers.get("retry-after")),
                )
            failures += 1
            if failures >= self._policy.max_attempts:
                raise self._give_up(last, failures, budget_spent=False)
            if not timer.sleep_before_retry(failures - 1, retry_after=last.retry_after):
                raise self._give_up(last, failures, budget_spent=True)

    def _current_key(self) -> str | None:
        return current_key(self._key_source)

    def _invalidate_key(self) -> None:
        if isinstance(self._key_source, ApiKeySource):
            self._key_source.invalidate()

    def _give_up(self, last: _Failure | None, failures: int, *, budget_spent: bool) -> LLMError:
        reason = "time budget spent" if budget_spent else "attempts exhausted"
        if last is None:
            return LLMTimeoutError(f"chat completion to {self._host}: {reason} before any attempt")
        message = (
            f"chat completion to {self._host} failed after {failures} attempt(s), {reason}: "
            f"{last.detail}"
        )
        if last.kind == "rate_limited":
            return LLMRateLimitedError(message)
        if last.kind == "timeout":
            return LLMTimeoutError(message)
        return LLMUpstreamError(message, status=last.status)

    def _parse(self, response: httpx.Response, key: str | None) -> LLMResponse:
        try:
            payload = response.json()
        except ValueError:
            raise LLMUpstreamError(
                f"{self._host} answered HTTP {response.status_code} with a body that is not JSON: "
                f"{error_detail(response, key)}",
                status=response.status_code,
            ) from None
        try:
            return parse_response_body(payload)
        except LLMUpstreamError as exc:
            raise LLMUpstreamError(f"{self._host}: {exc}", status=response.status_code) from None


def build_request_body(
    model: str,
    messages: Sequence[Message],
    *,
    tools: Sequence[ToolSpec] = (),
    system: str | None = None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The JSON body of a ``/chat/completions`` request for our provider-neutral types."""
    wire: list[dict[str, Any]] = []
    if system:
        wire.append({"role": "system", "content": system})
    wire.extend(_message_to_wire(message) for message in messages)
    body: dict[str, Any] = {"model": model, "messages": wire}
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": dict(tool.parameters),
                },
            }
            for tool in tools
        ]
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def _message_to_wire(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        if message.tool_call_id is None:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            # OpenAI wants null, not "", when the turn is only tool calls.
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def parse_response_body(payload: Any) -> LLMResponse:
    """Our :class:`LLMResponse` from a ``/chat/completions`` reply.

    Raises :class:`LLMUpstreamError` when the reply is malformed.
    """
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LLMUpstreamError("chat completion reply has no choices")
    choice = choices[0]
    wire_message = choice.get("message")
    if not isinstance(wire_message, dict):
        raise LLMUpstreamError("chat completion reply has no message in its first choice")
    calls = tuple(
        _tool_call_from_wire(raw, index)
        for index, raw in enumerate(wire_message.get("tool_calls") or ())
    )
    finish_reason = choice.get("finish_reason")
    if isinstance(finish_reason, str) and finish_reason:
        stop_reason = _FINISH_REASONS.get(finish_reason, finish_reason)
    else:
        stop_reason = "end_turn"
    if calls and stop_reason == "end_turn":
        # Some servers (older vLLM/Ollama builds) say "stop" even when the turn is tool calls;
        # the agent loop keys on tool_use, so the calls must not be silently dropped.
        stop_reason = "tool_use"
    return LLMResponse(
        message=Message(
            role="assistant", content=_content_text(wire_message.get("content")), tool_calls=calls
        ),
        stop_reason=stop_reason,
        usage=_usage(payload.get("usage")),
    )


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # The content-parts form: keep only the text parts.
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _tool_call_from_wire(raw: Any, index: int) -> ToolCall:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise LLMUpstreamError(f"tool call #{index} in the reply has no function name")
    name: str = function["name"]
    call_id = raw.get("id")
    if not isinstance(call_id, str) or not call_id:
        # Some local servers omit ids; the tool result still needs one to refer back to.
        call_id = f"call_{uuid.uuid4().hex[:24]}"
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        parsed: Any = {}
    elif isinstance(arguments, Mapping):
        parsed = arguments
    elif isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise LLMUpstreamError(
                f"the model called tool {name!r} (call {call_id}) with arguments that are not "
                f"valid JSON: {exc.msg} at position {exc.pos}"
            ) from None
    else:
        parsed = None
    if not isinstance(parsed, Mapping):
        raise LLMUpstreamError(
            f"the model called tool {name!r} (call {call_id}) with arguments that are not a "
            "JSON object"
        )
    return ToolCall(id=call_id, name=name, arguments=dict(parsed))


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        input_tokens=_int(raw.get("prompt_tokens")),
        output_tokens=_int(raw.get("completion_tokens")),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _headers(key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def error_detail(response: httpx.Response, key: str | None) -> str:
    """The provider's own explanation, shortened, with the key scrubbed out.

    Some providers echo the rejected key back ("Incorrect API key provided: sk-..."), so the
    scrubbing is not optional.
    """
    text = response.text
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
    text = " ".join(text.split())
    if key:
        text = text.replace(key, "[redacted]")
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[:_MAX_DETAIL_CHARS] + "..."
    return text or "(empty body)"
