"""Optional embeddings for semantic and hybrid pattern search.

`EmbeddingsProvider` asks an OpenAI-compatible embeddings endpoint for
vectors and returns them L2-normalised, so similarity is a dot product. The
helpers below store a vector beside a pattern (float32, little-endian), rank
stored vectors against a query, and fuse rankings (e.g. BM25 and vector) with
reciprocal rank fusion.

Every failure of the provider surfaces as `EmbeddingsUnavailable`, whose
message is safe to log or show (the API key is scrubbed out), so a caller can
fall back to text-only search on that one exception type.

Ranking is plain Python, no numpy: `top_k` is O(n·d) multiply-adds plus
O(n log k) for the heap, for n candidates of d dimensions. That is fine for
the per-namespace corpora this service holds (10k vectors of 1536 dimensions
take ~0.7 s on one core); a larger corpus wants numpy or an ANN index.
"""

from __future__ import annotations

import heapq
import math
import operator
import string
import struct
from collections.abc import Iterable, Sequence
from types import TracebackType
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from memory_service.servicekit.http_retry import (
    JsonPost,
    LLMCallError,
    RetryPolicy,
    post_json,
    scrub,
)

# The executor's retrying JSON POST already does what is needed here (429/5xx,
# timeouts, connection errors, Retry-After, key scrubbing); it depends only on
# httpx and tenacity, so importing it pulls in nothing of the executor.
from memory_service.servicekit.tracing import instrument_http

API = "Embeddings API"  # How messages name the endpoint.
_FLOAT32 = struct.Struct("<f")
_HEADER_SAFE = frozenset(string.ascii_letters + string.digits + string.punctuation)


class EmbeddingsUnavailable(Exception):  # noqa: N818 (the name says what the caller acts on)
    """No vectors this time. The message is safe to show: it never holds the API key."""


class EmbeddingsConfig(BaseModel):
    """Where and how to fetch embeddings. `api_key` None (or empty) sends no Authorization."""

    # Errors must not echo the input: a plain-str key would appear in them verbatim.
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    base_url: str = Field(description="Base URL; requests go to {base_url}/embeddings.")
    model: str = Field(min_length=1)
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, description="Bound on each HTTP try.")
    max_retries: int = Field(default=2, ge=0, description="Retries per batch after the first try.")
    dimensions: int | None = Field(
        default=None,
        ge=1,
        description="Expected vector length, checked but not sent (not every server takes it). "
        "None: the first vector of a call sets the length the rest must match.",
    )
    batch_size: int = Field(default=64, ge=1, description="Texts per request.")
    backoff_seconds: float = Field(default=0.5, gt=0, description="First retry wait; doubles.")
    backoff_max_seconds: float = Field(default=8.0, gt=0)
    retry_after_max_seconds: float = Field(
        default=30.0, ge=0, description="A longer Retry-After fails the call at once."
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _header_safe_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # An empty MEMORY_EMBEDDINGS_API_KEY means "no key" (local servers).
        # A stray newline from a key file would otherwise surface, key and all,
        # in httpx's error about an invalid header value.
        if not set(value.get_secret_value()) <= _HEADER_SAFE:
            raise ValueError("the API key holds whitespace or non-ASCII characters")
        return value


class EmbeddingsProvider:
    """Fetches normalised embeddings. Close with `aclose()` or use `async with`.

    One `embed` call sends its batches one after another (gentler on rate
    limits than firing them all at once). Each HTTP try is bounded by
    `timeout_seconds`, so a call's worst case is roughly
    batches x (max_retries + 1) x timeout plus backoff: callers with a latency
    budget should wrap `embed` in `asyncio.timeout` too.
    """

    def __init__(self, config: EmbeddingsConfig) -> None:
        self._config = config
        self._key = config.api_key.get_secret_value() if config.api_key else ""
        self._headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._policy = RetryPolicy(
            max_retries=config.max_retries,
            backoff_seconds=config.backoff_seconds,
            backoff_max_seconds=config.backoff_max_seconds,
            retry_after_max_seconds=config.retry_after_max_seconds,
        )
        self._client = instrument_http(httpx.AsyncClient(timeout=config.timeout_seconds))

    @property
    def config(self) -> EmbeddingsConfig:
        return self._config

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in input order.

        Raises EmbeddingsUnavailable on any transport failure (after retries)
        or an answer of the wrong shape, count or dimension.
        """
        if isinstance(texts, str):  # A str is a Sequence[str]: it would embed each character.
            raise TypeError("embed takes a sequence of texts, not one string")
        items = list(texts)
        vectors: list[list[float]] = []
        width = self._config.dimensions
        size = self._config.batch_size
        for start in range(0, len(items), size):
            batch = await self._embed_batch(items[start : start + size], width)
            width = len(batch[0])  # Later batches must match the first one.
            vectors.extend(batch)
        return vectors

    async def _embed_batch(self, texts: list[str], width: int | None) -> list[list[float]]:
        post = JsonPost(
            api=API,
            url=f"{self._config.base_url}/embeddings",
            headers=self._headers,
            body={"model": self._config.model, "input": texts},
            secret=self._key,
        )
        try:
            payload = await post_json(
                self._client, post, self._config.timeout_seconds, self._policy
            )
        except LLMCallError as error:
            raise EmbeddingsUnavailable(str(error)) from None  # Already scrubbed.
        except httpx.HTTPError as error:
            # Errors post_json does not classify (bad URL, invalid header, ...):
            # their text may quote the request, key included, so give only the type.
            raise EmbeddingsUnavailable(f"{API} request failed ({type(error).__name__})") from None
        try:
            return _read_vectors(payload, len(texts), width)
        except ValueError as error:
            message = scrub(f"{API} answer is unusable: {error}", self._key)
            raise EmbeddingsUnavailable(message) from None

    async def aclose(self) -> None:
        """Closes the HTTP client; safe to call more than once."""
        await self._client.aclose()

    async def __aenter__(self) -> EmbeddingsProvider:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _read_vectors(payload: object, count: int, width: int | None) -> list[list[float]]:
    """The normalised vectors of an answer, by index; ValueError says what is wrong."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError('expected {"data": [{"embedding": [...], "index": i}, ...]}')
    if len(data) != count:
        raise ValueError(f"{len(data)} embeddings for {count} texts")
    indexes = [item.get("index") for item in data]
    if all(index is None for index in indexes):
        indexes = list(range(count))  # Some servers omit the index; then order is positional.
    valid = sorted(i for i in indexes if isinstance(i, int) and not isinstance(i, bool))
    if valid != list(range(count)):
        raise ValueError(f"the indexes are not each of 0..{count - 1} once")
    vectors: list[list[float]] = [[] for _ in range(count)]
    for index, item in zip(indexes, data, strict=True):
        assert isinstance(index, int)  # Checked above; narrows for mypy.
        vector = _unit(item.get("embedding"), index)
        if width is None:
            width = len(vector)
        elif len(vector) != width:
            raise ValueError(f"embedding {index} has {len(vector)} dimensions, expected {width}")
        vectors[index] = vector
    return vectors


def _unit(raw: object, index: int) -> list[float]:
    """The embedding scaled to length 1, if it is a non-empty, non-zero list of numbers."""
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"embedding {index} is not a non-empty list of numbers")
    # bool is an int subclass, and JSON true is no coordinate.
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw):
        raise ValueError(f"embedding {index} holds a value that is not a number")
    values = [float(x) for x in raw]
    if not all(math.isfinite(x) for x in values):
        raise ValueError(f"embedding {index} holds NaN or infinity")
    norm = math.hypot(*values)  # hypot scales internally: no overflow on large values.
    if norm == 0.0:
        raise ValueError(f"embedding {index} is the zero vector")
    return [x / norm for x in values]


def vector_to_bytes(vector: Sequence[float]) -> bytes:
    """float32 little-endian, 4 bytes per dimension. ValueError if a value exceeds float32."""
    try:
        return struct.pack(f"<{len(vector)}f", *vector)
    except OverflowError:
        raise ValueError("a value is outside the float32 range") from None


def bytes_to_vector(data: bytes) -> list[float]:
    """The inverse of vector_to_bytes (to float32 precision). ValueError on a bad length."""
    if len(data) % _FLOAT32.size:
        raise ValueError(f"{len(data)} bytes is not a whole number of float32 values")
    return list(struct.unpack(f"<{len(data) // _FLOAT32.size}f", data))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two unit vectors: their dot product. ValueError on unequal lengths."""
    if len(a) != len(b):
        raise ValueError(f"vectors of {len(a)} and {len(b)} dimensions")
    dot: float = sum(map(operator.mul, a, b))  # The fastest pure-Python dot product.
    return dot


def top_k(
    query: Sequence[float], candidates: Iterable[tuple[str, bytes]], k: int
) -> list[tuple[str, float]]:
    """The k candidate ids most similar to the unit query vector, best first, ties by id.

    Candidates whose stored vector has another length (e.g. written under a
    different model) or a non-finite score are skipped rather than failing the
    search. O(n·d + n log k).
    """
    if k <= 0:
        return []
    size = len(query) * _FLOAT32.size

    def scored() -> Iterable[tuple[str, float]]:
        for doc_id, data in candidates:
            if len(data) != size:
                continue
            score = cosine(query, bytes_to_vector(data))
            if math.isfinite(score):
                yield doc_id, score

    return heapq.nsmallest(k, scored(), key=lambda pair: (-pair[1], pair[0]))


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], k: int = 60
) -> list[tuple[str, float]]:
    """Fuses rankings (best first) into one: score(id) = sum over lists of 1 / (k + rank).

    Ranks count from 1. An id missing from a list gets nothing from it; an id
    repeated within one list counts at its best rank only. k (60 in Cormack
    et al., 2009) damps the weight of the top ranks, so agreement across lists
    beats a single first place. Returns every id once, highest score first;
    equal scores keep the order in which ids first appear (list by list, top
    down). Each score is summed exactly-rounded (math.fsum), so ids with the
    same ranks tie exactly whatever the order of the lists.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    shares: dict[str, list[float]] = {}  # Insertion order is first appearance.
    for ranking in rankings:
        seen: set[str] = set()
        for rank, doc_id in enumerate(ranking, start=1):
            if doc_id in seen:
                continue
            seen.add(doc_id)
            shares.setdefault(doc_id, []).append(1.0 / (k + rank))
    fused = [(doc_id, math.fsum(parts)) for doc_id, parts in shares.items()]
    fused.sort(key=lambda pair: -pair[1])  # Stable: ties stay in first-appearance order.
    return fused
