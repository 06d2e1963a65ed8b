"""A client for Amazon Bedrock's Converse API, one interface over every Bedrock chat model.

Retries are left to botocore's ``standard`` mode (exponential backoff with jitter on throttling
and transient errors), configured by :func:`make_bedrock_runtime_client`; this module only maps
what is left after those retries onto our error types.

Converse wants strictly alternating user/assistant turns and carries tool results as
``toolResult`` blocks inside a *user* turn, so consecutive same-role messages (several tool
results, or tool results followed by user text) are merged into one turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

from runtime.llm.types import (
    LLMRateLimitedError,
    LLMResponse,
    LLMTimeoutError,
    LLMUpstreamError,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

_STOP_REASONS = {
    "tool_use": "tool_use",
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "max_tokens": "max_tokens",
}

# Throttling is retried by botocore already; seeing it here means the retries ran out.
_RATE_LIMIT_CODES = frozenset({"ThrottlingException", "TooManyRequestsException"})
# The model itself ran out of time (HTTP 408) rather than the connection: still a timeout to us.
_TIMEOUT_CODES = frozenset({"ModelTimeoutException"})

# Bedrock rejects blank text blocks, and a tool may legitimately return nothing.
_EMPTY_TOOL_RESULT = "(no output)"


def make_bedrock_runtime_client(
    *,
    request_timeout_seconds: float,
    max_attempts: int,
    connect_timeout_seconds: float = 5.0,
    region_name: str | None = None,
) -> BedrockRuntimeClient:
    """A ``bedrock-runtime`` client whose timeouts and retries match the runtime settings."""
    import boto3
    from botocore.config import Config

    config = Config(
        read_timeout=request_timeout_seconds,
        connect_timeout=connect_timeout_seconds,
        # botocore's "max_attempts" counts retries only; "total_max_attempts" counts the first
        # request too, which is what LLM_MAX_ATTEMPTS means.
        retries={"mode": "standard", "total_max_attempts": max_attempts},
    )
    return boto3.client("bedrock-runtime", region_name=region_name, config=config)


class BedrockConverseClient:
    """``LLMClient`` over ``bedrock-runtime`` ``converse``.

    Pass ``client`` to inject a configured (or stubbed) client; otherwise one is built from the
    timeout and attempt arguments on first use.
    """

    def __init__(
        self,
        *,
        model_id: str,
        client: BedrockRuntimeClient | None = None,
        request_timeout_seconds: float = 60.0,
        connect_timeout_seconds: float = 5.0,
        max_attempts: int = 3,
        max_tokens: int | None = None,
        region_name: str | None = None,
    ) -> None:
        self._model_id = model_id
        self._client = client
        self._request_timeout = request_timeout_seconds
        self._connect_timeout = connect_timeout_seconds
        self._max_attempts = max_attempts
        self._max_tokens = max_tokens
        self._region_name = region_name

    def _bedrock(self) -> BedrockRuntimeClient:
        if self._client is None:
            self._client = make_bedrock_runtime_client(
                request_timeout_seconds=self._request_timeout,
                max_attempts=self._max_attempts,
                connect_timeout_seconds=self._connect_timeout,
                region_name=self._region_name,
            )
        return self._client

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        system: str | None = None,
    ) -> LLMResponse:
        request = build_converse_request(
            self._model_id, messages, tools=tools, system=system, max_tokens=self._max_tokens
        )
        try:
            # A plain dict: the stubs' TypedDicts add nothing over the service-model validation
            # botocore does on every call (and Stubber does in tests).
            response = self._bedrock().converse(**request)
        except ClientError as exc:
            raise _map_client_error(exc, self._model_id) from exc
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise LLMTimeoutError(
                f"Bedrock model {self._model_id} did not answer in time ({type(exc).__name__})"
            ) from exc
        except BotoCoreError as exc:
            raise LLMUpstreamError(
                f"Bedrock model {self._model_id} could not be called ({type(exc).__name__})"
            ) from exc
        return parse_converse_response(response)


def build_converse_request(
    model_id: str,
    messages: Sequence[Message],
    *,
    tools: Sequence[ToolSpec] = (),
    system: str | None = None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``converse`` from our provider-neutral types."""
    system_blocks: list[dict[str, Any]] = [{"text": system}] if system else []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            if message.content:
                system_blocks.append({"text": message.content})
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _content_blocks(message)
        if not blocks:
            # Bedrock rejects empty turns; an empty message carries nothing to the model anyway.
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    request: dict[str, Any] = {"modelId": model_id, "messages": turns}
    if system_blocks:
        request["system"] = system_blocks
    if tools:
        request["toolConfig"] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": tool.name,
                        "description": tool.description,
                        "inputSchema": {"json": dict(tool.parameters)},
                    }
                }
                for tool in tools
            ]
        }
    if max_tokens is not None:
        request["inferenceConfig"] = {"maxTokens": max_tokens}
    return request


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        if message.tool_call_id is None:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        return [
            {
                "toolResult": {
                    "toolUseId": message.tool_call_id,
                    "content": [{"text": message.content or _EMPTY_TOOL_RESULT}],
                }
            }
        ]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"text": message.content})
    if message.role == "assistant":
        blocks.extend(
            {"toolUse": {"toolUseId": call.id, "name": call.name, "input": dict(call.arguments)}}
            for call in message.tool_calls
        )
    return blocks


def parse_converse_response(response: Mapping[str, Any]) -> LLMResponse:
    """Our :class:`LLMResponse` from a ``converse`` reply."""
    output = response.get("output") or {}
    wire_message = output.get("message") if isinstance(output, Mapping) else None
    if not isinstance(wire_message, Mapping):
        raise LLMUpstreamError("Bedrock converse reply has no output message")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in wire_message.get("content") or ():
        if "text" in block:
            texts.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = use.get("input")
            if not isinstance(arguments, Mapping):
                raise LLMUpstreamError(
                    f"the model called tool {use.get('name')!r} with input that is not an object"
                )
            calls.append(
                ToolCall(id=str(use["toolUseId"]), name=str(use["name"]), arguments=dict(arguments))
            )
    raw_reason = str(response.get("stopReason") or "end_turn")
    usage = response.get("usage") or {}
    return LLMResponse(
        message=Message(role="assistant", content="".join(texts), tool_calls=tuple(calls)),
        stop_reason=_STOP_REASONS.get(raw_reason, raw_reason),
        usage=Usage(
            input_tokens=int(usage.get("inputTokens", 0)),
            output_tokens=int(usage.get("outputTokens", 0)),
        ),
    )


def _map_client_error(
    exc: ClientError, model_id: str
) -> LLMRateLimitedError | LLMTimeoutError | LLMUpstreamError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    detail = str(error.get("Message", "")).strip()
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = f"Bedrock model {model_id} failed: {code}" + (f": {detail}" if detail else "")
    if code in _RATE_LIMIT_CODES:
        return LLMRateLimitedError(message)
    if code in _TIMEOUT_CODES:
        return LLMTimeoutError(message)
    return LLMUpstreamError(message, status=status if isinstance(status, int) else None)
