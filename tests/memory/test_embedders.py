"""The embedders: hashing (local), OpenAI-compatible (httpx MockTransport), Bedrock Titan (Stubber).

The remote ones are checked for the exact request they send and for how they read, and refuse,
what comes back; botocore's Stubber also validates each request against the service model.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from runtime.memory.embedders import (
    TITAN_V2_MODEL_ID,
    BedrockTitanEmbedder,
    EmbeddingError,
    HashingEmbedder,
    OpenAICompatibleEmbedder,
)

API_KEY = "sk-test-0123456789abcdef"


def cosine(left: list[float], right: list[float]) -> float:
    return sum(a * b for a, b in zip(left, right, strict=True))


# --- hashing ---------------------------------------------------------------------------------


def test_hashing_is_deterministic_normalised_and_lexical() -> None:
    embedder = HashingEmbedder(128)
    first, again, other, unrelated = embedder.embed(
        [
            "My favourite colour is green",
            "my FAVOURITE colour, is green!",
            "favourite colour",
            "automobile",
        ]
    )

    assert embedder.dimensions == 128
    assert len(first) == 128
    assert math.isclose(math.sqrt(sum(value * value for value in first)), 1.0)
    assert first == again  # case and punctuation do not matter; word order neither
    assert HashingEmbedder(128).embed(["My favourite colour is green"]) == [first]
    assert cosine(first, other) > 0.5
    assert abs(cosine(first, unrelated)) < 0.5


def test_hashing_gives_every_text_a_direction() -> None:
    embedder = HashingEmbedder(8)
    for text in ("", "!!!", "   ", "a b c d e f g h i j"):
        (vector,) = embedder.embed([text])
        assert math.isclose(math.sqrt(sum(value * value for value in vector)), 1.0)
    with pytest.raises(ValueError, match="positive"):
        HashingEmbedder(0)


# --- OpenAI-compatible -----------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """An httpx MockTransport that answers from a list of handlers and keeps every request."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = list(handlers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handlers.pop(0)(request)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def embeddings_reply(*vectors: list[float], shuffled: bool = False) -> Handler:
    data = [
        {"object": "embedding", "index": index, "embedding": v} for index, v in enumerate(vectors)
    ]
    if shuffled:
        data.reverse()
    body = {"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 3}}
    return lambda _request: httpx.Response(200, json=body)


def openai_embedder(recorder: Recorder, **kwargs: Any) -> OpenAICompatibleEmbedder:
    options: dict[str, Any] = {
        "base_url": "https://llm.example.test/v1/",
        "model": "text-embedding-3-small",
        "dimensions": 3,
        "api_key": lambda: API_KEY,
        "http_client": recorder.client(),
        **kwargs,
    }
    return OpenAICompatibleEmbedder(**options)


def test_openai_request_shape_and_order() -> None:
    recorder = Recorder(embeddings_reply([1.0, 0.0, 0.0], [0.0, 2.0, 0.0], shuffled=True))
    embedder = openai_embedder(recorder, timeout_seconds=7.5)

    vectors = embedder.embed(["first", "second"])

    assert vectors == [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]  # by index, not by arrival
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == "https://llm.example.test/v1/embeddings"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert json.loads(request.content) == {
        "model": "text-embedding-3-small",
        "input": ["first", "second"],
    }
    assert request.extensions["timeout"] == {
        "connect": 7.5,
        "read": 7.5,
        "write": 7.5,
        "pool": 7.5,
    }


def test_openai_optional_dimensions_and_no_key() -> None:
    recorder = Recorder(embeddings_reply([0.5, 0.5, 0.5]))
    embedder = openai_embedder(recorder, api_key=None, request_dimensions=True)

    embedder.embed(["text"])

    (request,) = recorder.requests
    assert "authorization" not in request.headers
    assert json.loads(request.content)["dimensions"] == 3
    assert embedder.embed([]) == []  # nothing to embed: no request
    assert len(recorder.requests) == 1


def test_openai_error_names_status_and_body_but_not_the_key() -> None:
    body = {"error": {"message": f"Incorrect API key provided: {API_KEY}. Check it."}}
    recorder = Recorder(lambda _request: httpx.Response(403, json=body))

    with pytest.raises(EmbeddingError) as raised:
        openai_embedder(recorder).embed(["text"])

    message = str(raised.value)
    assert "llm.example.test rejected the embeddings request: HTTP 403" in message
    assert "Incorrect API key provided: [redacted]" in message
    assert API_KEY not in message


def test_openai_401_rereads_a_rotated_key_once() -> None:
    class Keys:
        def __init__(self) -> None:
            self.keys = ["old-key", "new-key"]
            self.invalidated = 0

        def get(self) -> str | None:
            return self.keys[0]

        def invalidate(self) -> None:
            self.invalidated += 1
            self.keys.pop(0)

    keys = Keys()
    recorder = Recorder(
        lambda _request: httpx.Response(401, json={"error": "expired key"}),
        embeddings_reply([1.0, 1.0, 1.0]),
    )

    assert openai_embedder(recorder, api_key=keys).embed(["t"]) == [[1.0, 1.0, 1.0]]
    assert [request.headers["authorization"] for request in recorder.requests] == [
        "Bearer old-key",
        "Bearer new-key",
    ]
    assert keys.invalidated == 1


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (embeddings_reply([1.0, 0.0]), "2-dimensional embedding, expected 3"),
        (embeddings_reply([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]), "2 embeddings for 1 texts"),
        (embeddings_reply([0.0, 0.0, 0.0]), "zero or non-finite"),
        (lambda _request: httpx.Response(200, text="<html>oops</html>"), "not JSON: <html>"),
        (lambda _request: httpx.Response(200, json={"data": "nope"}), "without a data list"),
        (lambda _request: httpx.Response(502, text=""), "HTTP 502: (empty body)"),
    ],
)
def test_openai_bad_replies_are_clear_errors(handler: Handler, message: str) -> None:
    with pytest.raises(EmbeddingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        openai_embedder(Recorder(handler)).embed(["one text"])


@pytest.mark.parametrize(
    ("exception", "message"),
    [
        (httpx.ReadTimeout("slow"), "did not answer the embeddings request within 10s"),
        (httpx.ConnectError("refused"), "could not reach llm.example.test for embeddings"),
    ],
)
def test_openai_transport_failures_are_embedding_errors(exception: Exception, message: str) -> None:
    def fail(_request: httpx.Request) -> httpx.Response:
        raise exception

    with pytest.raises(EmbeddingError, match=message):
        openai_embedder(Recorder(fail)).embed(["text"])


# --- Bedrock Titan ---------------------------------------------------------------------------


class JsonBody:
    """Matches a request body by its JSON value, whatever the key order or spacing."""

    def __init__(self, expected: dict[str, Any]) -> None:
        self.expected = expected

    def __eq__(self, other: object) -> bool:
        raw = other.decode() if isinstance(other, bytes) else other
        return isinstance(raw, str) and json.loads(raw) == self.expected

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JsonBody({self.expected!r})"


def titan_reply(vector: list[float]) -> dict[str, Any]:
    raw = json.dumps({"embedding": vector, "inputTextTokenCount": 4}).encode()
    return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}


@pytest.fixture
def bedrock(aws_env: None) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_titan_one_request_per_text(bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    first = [0.1] * 256
    second = [-0.2] * 256
    for text, vector in (("first text", first), ("second text", second)):
        stubber.add_response(
            "invoke_model",
            titan_reply(vector),
            expected_params={
                "modelId": TITAN_V2_MODEL_ID,
                "body": JsonBody({"inputText": text, "dimensions": 256, "normalize": True}),
                "contentType": "application/json",
                "accept": "application/json",
            },
        )

    embedder = BedrockTitanEmbedder(client=client, dimensions=256)

    assert embedder.dimensions == 256
    assert embedder.embed(["first text", "second text"]) == [first, second]


def test_titan_errors_name_the_model_and_code(bedrock: tuple[Any, Stubber]) -> None:
    client, stubber = bedrock
    stubber.add_client_error(
        "invoke_model",
        service_error_code="ValidationException",
        service_message="Malformed input request",
        http_status_code=400,
    )
    stubber.add_response("invoke_model", titan_reply([0.1] * 256))
    stubber.add_response(
        "invoke_model",
        {"body": StreamingBody(io.BytesIO(b"{}"), 2), "contentType": "application/json"},
    )
    embedder = BedrockTitanEmbedder(client=client, dimensions=512)

    with pytest.raises(
        EmbeddingError,
        match=rf"{TITAN_V2_MODEL_ID} failed: ValidationException: Malformed input request",
    ):
        embedder.embed(["x"])
    with pytest.raises(EmbeddingError, match="256-dimensional embedding, expected 512"):
        embedder.embed(["x"])
    with pytest.raises(EmbeddingError, match="answered without an embedding"):
        embedder.embed(["x"])


def test_titan_dimension_must_be_one_it_offers() -> None:
    with pytest.raises(ValueError, match="256, 512, 1024 dimensions, not 300"):
        BedrockTitanEmbedder(dimensions=300)
