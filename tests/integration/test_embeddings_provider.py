"""EmbeddingsProvider over real HTTP against a scripted server on 127.0.0.1."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from memory_service.search.embeddings import (
    EmbeddingsConfig,
    EmbeddingsProvider,
    EmbeddingsUnavailable,
)
from tests.support.fake_llm_server import FakeLLMServer, Scripted

API_KEY = "sk-embed-0123456789-very-secret"
MODEL = "text-embedding-3-small"


def answer(vectors: Sequence[Sequence[object]], order: Sequence[int] | None = None) -> Scripted:
    """An embeddings answer; `order` lists the indexes in the order the data comes."""
    listed = range(len(vectors)) if order is None else order
    return Scripted(
        body={
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": list(vectors[i])} for i in listed
            ],
            "model": MODEL,
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
    )


def marker(n: int) -> list[float]:
    """A vector that identifies text n once normalised."""
    return [float(n + 1), 1.0]


def unit(values: Sequence[float]) -> list[float]:
    norm = math.hypot(*values)
    return [value / norm for value in values]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


@dataclass
class Providers:
    """Builds providers against the fake server; closes them after the test."""

    server: FakeLLMServer
    built: list[EmbeddingsProvider]

    def make(self, **overrides: Any) -> EmbeddingsProvider:
        fields: dict[str, Any] = {
            "base_url": f"{self.server.url}/v1",
            "model": MODEL,
            "api_key": SecretStr(API_KEY),
            "timeout_seconds": 5.0,
            "max_retries": 2,
            # Backoff shrunk so retries cost milliseconds.
            "backoff_seconds": 0.01,
            "backoff_max_seconds": 0.05,
        }
        provider = EmbeddingsProvider(EmbeddingsConfig(**(fields | overrides)))
        self.built.append(provider)
        return provider


@pytest.fixture
async def providers(server: FakeLLMServer) -> AsyncIterator[Providers]:
    made = Providers(server, [])
    yield made
    for provider in made.built:
        await provider.aclose()


async def unavailable(provider: EmbeddingsProvider, texts: Sequence[str]) -> str:
    """The message of the EmbeddingsUnavailable that embedding the texts raises."""
    with pytest.raises(EmbeddingsUnavailable) as caught:
        await provider.embed(texts)
    message = str(caught.value)
    assert API_KEY not in message
    return message


async def test_success_sends_model_input_and_bearer_key(
    server: FakeLLMServer, providers: Providers
) -> None:
    server.script(answer([[3.0, 4.0], [0.0, -2.0]]))
    provider = providers.make()

    vectors = await provider.embed(["deploy the package", "run the tests"])

    assert vectors == [pytest.approx([0.6, 0.8]), pytest.approx([0.0, -1.0])]
    (request,) = server.requests
    assert request.path == "/v1/embeddings"
    assert request.body == {"model": MODEL, "input": ["deploy the package", "run the tests"]}
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_no_key_sends_no_authorization(server: FakeLLMServer, providers: Providers) -> None:
    server.script(answer([[1.0, 0.0]]))
    provider = providers.make(api_key=None)

    assert await provider.embed(["one"]) == [[1.0, 0.0]]
    assert "authorization" not in server.requests[0].headers


async def test_no_texts_make_no_request(server: FakeLLMServer, providers: Providers) -> None:
    provider = providers.make()

    assert await provider.embed([]) == []
    assert server.requests == []
    with pytest.raises(TypeError):
        await provider.embed("one string")


async def test_batches_keep_input_order_whatever_the_answer_order(
    server: FakeLLMServer, providers: Providers
) -> None:
    batch_size = 2
    texts = [f"text {n}" for n in range(2 * batch_size + 1)]
    server.script(
        answer([marker(0), marker(1)], order=[1, 0]),
        answer([marker(2), marker(3)], order=[1, 0]),
        answer([marker(4)]),
    )
    provider = providers.make(batch_size=batch_size)

    vectors = await provider.embed(texts)

    assert [request.body["input"] for request in server.requests] == [
        texts[0:2],
        texts[2:4],
        texts[4:5],
    ]
    assert vectors == [pytest.approx(unit(marker(n))) for n in range(len(texts))]


async def test_a_500_is_retried(server: FakeLLMServer, providers: Providers) -> None:
    server.script(Scripted(status=500, body={"error": {"message": "overloaded"}}), answer([[1.0]]))
    provider = providers.make()

    assert await provider.embed(["one"]) == [[1.0]]
    assert len(server.requests) == 2


async def test_a_429_waits_for_retry_after(server: FakeLLMServer, providers: Providers) -> None:
    server.script(
        Scripted(
            status=429, body={"error": {"message": "slow down"}}, headers={"Retry-After": "0.3"}
        ),
        answer([[1.0]]),
    )
    provider = providers.make()

    assert await provider.embed(["one"]) == [[1.0]]
    first, second = server.requests
    # The backoff alone would be ~0.01 s; the gap shows the server's wait was honoured.
    # (A little slack: the event loop may wake a timer a clock tick early.)
    assert second.at - first.at >= 0.28


async def test_a_retry_after_beyond_the_limit_fails_at_once(
    server: FakeLLMServer, providers: Providers
) -> None:
    server.script(Scripted(status=429, body={}, headers={"Retry-After": "120"}))
    provider = providers.make(retry_after_max_seconds=5.0)

    message = await unavailable(provider, ["one"])

    assert "retry after 120 s" in message
    assert len(server.requests) == 1


async def test_persistent_5xx_gives_up_after_the_retries(
    server: FakeLLMServer, providers: Providers
) -> None:
    server.script(Scripted(status=503, body={"error": {"message": "down for maintenance"}}))
    provider = providers.make(max_retries=2)

    message = await unavailable(provider, ["one"])

    assert "503" in message
    assert "gave up after 3 tries" in message
    assert len(server.requests) == 3


async def test_a_4xx_is_not_retried_and_the_echoed_key_is_scrubbed(
    server: FakeLLMServer, providers: Providers
) -> None:
    server.script(Scripted(status=401, body={"error": {"message": f"Incorrect key {API_KEY}"}}))
    provider = providers.make()

    message = await unavailable(provider, ["one"])

    assert "401" in message
    assert "[redacted]" in message
    assert len(server.requests) == 1


async def test_server_down_fails_fast(providers: Providers) -> None:
    # A port that was free a moment ago: nothing listens, so connecting is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = providers.make(base_url=f"http://127.0.0.1:{port}/v1", max_retries=2)

    started = time.monotonic()
    message = await unavailable(provider, ["one"])

    assert "connection failed" in message
    assert "gave up after 3 tries" in message
    assert time.monotonic() - started < 2.0


async def test_a_hanging_server_times_out(server: FakeLLMServer, providers: Providers) -> None:
    server.script(Scripted(hang=True))
    provider = providers.make(timeout_seconds=0.2, max_retries=1)

    message = await unavailable(provider, ["one"])

    assert "timed out after 0.2 s" in message
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(Scripted(body=b"<html>oops</html>"), "not JSON", id="not-json"),
        pytest.param(Scripted(body={"embeddings": []}), '{"data"', id="no-data"),
        pytest.param(Scripted(body={"data": ["x", "y"]}), '{"data"', id="data-not-objects"),
        pytest.param(answer([[1.0, 0.0]]), "1 embeddings for 2 texts", id="too-few"),
        pytest.param(answer([[1.0], [1.0], [1.0]]), "3 embeddings for 2 texts", id="too-many"),
        pytest.param(answer([[1.0], [1.0]], order=[0, 0]), "indexes", id="duplicate-index"),
        pytest.param(answer([[1.0, 0.0], [1.0]]), "1 dimensions, expected 2", id="ragged"),
        pytest.param(answer([[1.0, "x"], [1.0, 0.0]]), "not a number", id="string-value"),
        pytest.param(answer([[True, 0.0], [1.0, 0.0]]), "not a number", id="bool-value"),
        pytest.param(answer([[], [1.0]]), "non-empty list", id="empty-vector"),
        pytest.param(answer([[0.0, 0.0], [1.0, 0.0]]), "zero vector", id="zero-vector"),
        pytest.param(
            Scripted(
                body=b'{"data": [{"index": 0, "embedding": [NaN, 1]},'
                b' {"index": 1, "embedding": [1, 0]}]}'
            ),
            "NaN or infinity",
            id="nan",
        ),
    ],
)
async def test_malformed_answers_are_unavailable(
    server: FakeLLMServer, providers: Providers, response: Scripted, expected: str
) -> None:
    server.script(response)
    provider = providers.make()

    message = await unavailable(provider, ["one", "two"])

    assert expected in message
    assert len(server.requests) == 1  # A malformed answer is not retried.


async def test_vectors_must_have_the_configured_dimensions(
    server: FakeLLMServer, providers: Providers
) -> None:
    server.script(answer([[1.0, 0.0, 0.0, 0.0]]))
    provider = providers.make(dimensions=3)

    message = await unavailable(provider, ["one"])

    assert "4 dimensions, expected 3" in message


async def test_later_batches_must_match_the_first(
    server: FakeLLMServer, providers: Providers
) -> None:
    server.script(answer([[1.0, 0.0]]), answer([[1.0, 0.0, 0.0]]))
    provider = providers.make(batch_size=1)

    message = await unavailable(provider, ["one", "two"])

    assert "3 dimensions, expected 2" in message


def test_a_key_unfit_for_a_header_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as caught:
        EmbeddingsConfig(base_url="http://127.0.0.1:1", model=MODEL, api_key=f"{API_KEY}\n")

    assert "whitespace" in str(caught.value)
    assert API_KEY not in str(caught.value)
