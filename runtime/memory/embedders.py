"""Text to vectors for the memory store: Bedrock Titan, an OpenAI-compatible API, or local hashing.

Every embedder returns one vector of exactly ``dimensions`` floats per text, in order, and raises
:class:`EmbeddingError` (never a transport exception) when it cannot: the memory tools turn that
into an error string for the model. Messages name the model or host and the reason, never a key.

Vectors from different embedders (or the same one with another size) are not comparable: a store
is tied to one embedder, and refuses a table written with another dimension.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

import httpx

from runtime.llm.openai_compat import ApiKeySource, KeyProvider, current_key, error_detail

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

TITAN_V2_MODEL_ID: Final = "amazon.titan-embed-text-v2:0"
TITAN_V2_DIMENSIONS: Final = (256, 512, 1024)


class EmbeddingError(Exception):
    """The texts could not be embedded; the message says by whom and why, without credentials."""


class Embedder(Protocol):
    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def check_vectors(
    vectors: Sequence[Sequence[float]], *, count: int, dimensions: int, source: str
) -> list[list[float]]:
    """``vectors`` as plain float lists, or :class:`EmbeddingError` if they cannot be stored.

    A zero or non-finite vector has no cosine similarity (pgvector answers NaN, which sorts
    above every real score), so it is refused here rather than stored as a poisoned row.
    """
    if len(vectors) != count:
        raise EmbeddingError(f"{source} returned {len(vectors)} embeddings for {count} texts")
    checked: list[list[float]] = []
    for index, vector in enumerate(vectors):
        if len(vector) != dimensions:
            raise EmbeddingError(
                f"{source} returned a {len(vector)}-dimensional embedding, expected {dimensions} "
                "(check MEMORY_EMBEDDING_DIMENSIONS against the model)"
            )
        try:
            values = [float(value) for value in vector]
        except (TypeError, ValueError):
            raise EmbeddingError(f"{source} returned a non-numeric embedding #{index}") from None
        if not all(math.isfinite(value) for value in values) or not any(values):
            raise EmbeddingError(f"{source} returned a zero or non-finite embedding #{index}")
        checked.append(values)
    return checked


# --- local ---------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Feature hashing of word tokens, L2-normalised: deterministic, local, no model.

    For tests and offline development only. Its similarity is *lexical*: texts score high when
    they share words ("favourite colour" finds "my favourite colour is green") and near zero
    otherwise, however close their meaning ("car" does not find "automobile"). A signed hash
    (the "hashing trick") keeps unrelated words from adding up to a spurious similarity.
    """

    def __init__(self, dimensions: int = 256) -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be positive")
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._embed_one(text) for text in texts]

    def _embed_one(self, text: str) -> list[float]:
        vector = self._hash_tokens(_WORD.findall(text.casefold()))
        if not any(vector):
            # No word characters at all ("!!!"), or tokens that cancelled out: the whole text
            # as one token still gives every input a direction.
            vector = self._hash_tokens([text.strip().casefold()])
        norm = math.sqrt(sum(value * value for value in vector))
        return [value / norm for value in vector]

    def _hash_tokens(self, tokens: Sequence[str]) -> list[float]:
        vector = [0.0] * self._dimensions
        for token in tokens:
            digest = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")
            vector[digest % self._dimensions] += 1.0 if digest >> 63 else -1.0
        return vector


# --- OpenAI-compatible ---------------------------------------------------------------------------


class OpenAICompatibleEmbedder:
    """``POST {base_url}/embeddings`` on any OpenAI-compatible server (OpenAI, vLLM, Ollama...).

    All texts go in one request (``input`` is a list). No retries beyond one after a 401, which
    re-reads a cached key that may have been rotated: a failed embedding fails one tool call, and
    the model may simply call it again. ``request_dimensions`` sends ``dimensions`` for models
    that can shorten their vectors (OpenAI's text-embedding-3); other servers may reject it.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        dimensions: int,
        api_key: KeyProvider | None = None,
        http_client: httpx.Client | None = None,
        timeout_seconds: float = 10.0,
        request_dimensions: bool = False,
    ) -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be positive")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self._url = base_url.rstrip("/") + "/embeddings"
        # Only host[:port] goes into error messages: userinfo in a URL would be a credential.
        self._host = urlsplit(base_url).netloc.rpartition("@")[2] or "the embeddings provider"
        self._model = model
        self._dimensions = dimensions
        self._key_source = api_key
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()
        self._timeout = timeout_seconds
        self._request_dimensions = request_dimensions

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def close(self) -> None:
        """Close the connection pool if this embedder created it."""
        if self._owns_http:
            self._http.close()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        body: dict[str, Any] = {"model": self._model, "input": list(texts)}
        if self._request_dimensions:
            body["dimensions"] = self._dimensions
        key = self._current_key()
        response = self._post(body, key)
        if response.status_code == 401 and isinstance(self._key_source, ApiKeySource):
            self._key_source.invalidate()
            key = self._current_key()
            response = self._post(body, key)
        if not 200 <= response.status_code < 300:
            raise EmbeddingError(
                f"{self._host} rejected the embeddings request: HTTP {response.status_code}: "
                f"{error_detail(response, key)}"
            )
        return self._parse(response, key, count=len(texts))

    def _post(self, body: dict[str, Any], key: str | None) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            return self._http.post(
                self._url, json=body, headers=headers, timeout=httpx.Timeout(self._timeout)
            )
        except httpx.TimeoutException as exc:
            raise EmbeddingError(
                f"{self._host} did not answer the embeddings request within {self._timeout:g}s "
                f"({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise EmbeddingError(
                f"could not reach {self._host} for embeddings ({type(exc).__name__})"
            ) from exc

    def _current_key(self) -> str | None:
        return current_key(self._key_source)

    def _parse(self, response: httpx.Response, key: str | None, *, count: int) -> list[list[float]]:
        source = f"{self._host} ({self._model})"
        try:
            payload = response.json()
        except ValueError:
            raise EmbeddingError(
                f"{source} answered with a body that is not JSON: {error_detail(response, key)}"
            ) from None
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not all(
            isinstance(item, dict) and isinstance(item.get("embedding"), list) for item in data
        ):
            raise EmbeddingError(f"{source} answered without a data list of embeddings")
        # The API gives each embedding its input's index; nothing promises they come in order.
        ordered = sorted(data, key=lambda item: item.get("index", 0))
        return check_vectors(
            [item["embedding"] for item in ordered],
            count=count,
            dimensions=self._dimensions,
            source=source,
        )


# --- Amazon Bedrock ------------------------------------------------------------------------------


class BedrockTitanEmbedder:
    """Amazon Titan Text Embeddings V2 over ``bedrock-runtime`` ``invoke_model``.

    The model takes one text per request, so ``embed`` makes one call per text. ``normalize``
    asks for unit vectors, which the store's cosine distance does not need but which keeps
    scores comparable with other tools. Retries are botocore's (``standard`` mode) when this
    embedder builds its client; an injected client keeps its own configuration.
    """

    def __init__(
        self,
        *,
        client: BedrockRuntimeClient | None = None,
        model_id: str = TITAN_V2_MODEL_ID,
        dimensions: int = 1024,
        normalize: bool = True,
        request_timeout_seconds: float = 10.0,
        max_attempts: int = 3,
        region_name: str | None = None,
    ) -> None:
        if dimensions not in TITAN_V2_DIMENSIONS:
            allowed = ", ".join(str(size) for size in TITAN_V2_DIMENSIONS)
            raise ValueError(f"Titan V2 embeddings have {allowed} dimensions, not {dimensions}")
        self._client = client
        self._model_id = model_id
        self._dimensions = dimensions
        self._normalize = normalize
        self._request_timeout = request_timeout_seconds
        self._max_attempts = max_attempts
        self._region_name = region_name

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _bedrock(self) -> BedrockRuntimeClient:
        if self._client is None:
            from runtime.llm.bedrock import make_bedrock_runtime_client

            self._client = make_bedrock_runtime_client(
                request_timeout_seconds=self._request_timeout,
                max_attempts=self._max_attempts,
                region_name=self._region_name,
            )
        return self._client

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = [self._embed_one(text) for text in texts]
        return check_vectors(
            vectors, count=len(texts), dimensions=self._dimensions, source=self._model_id
        )

    def _embed_one(self, text: str) -> list[float]:
        from botocore.exceptions import BotoCoreError, ClientError

        body = {"inputText": text, "dimensions": self._dimensions, "normalize": self._normalize}
        try:
            response = self._bedrock().invoke_model(
                modelId=self._model_id,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            raw = response["body"].read()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "Unknown")
            detail = str(error.get("Message", "")).strip()
            raise EmbeddingError(
                f"Bedrock embedding model {self._model_id} failed: {code}"
                + (f": {detail}" if detail else "")
            ) from exc
        except BotoCoreError as exc:
            raise EmbeddingError(
                f"Bedrock embedding model {self._model_id} could not be called "
                f"({type(exc).__name__})"
            ) from exc
        try:
            payload = json.loads(raw)
        except ValueError:
            raise EmbeddingError(
                f"Bedrock embedding model {self._model_id} answered with a body that is not JSON"
            ) from None
        embedding = payload.get("embedding") if isinstance(payload, dict) else None
        if not isinstance(embedding, list):
            raise EmbeddingError(
                f"Bedrock embedding model {self._model_id} answered without an embedding"
            )
        return embedding
