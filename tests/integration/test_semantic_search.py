"""Semantic and hybrid search against an embeddings API over real HTTP.

The fake API embeds text as a hashed bag of words, so similarity is word
overlap: enough to check the whole path (embed on write, store the vector,
embed the query, rank, fuse) and the fallbacks when the API is down or unset.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from attune.memory.v1 import memory_pb2
from memory_service import metrics
from tests.corpus.generate import NEEDLES
from tests.support.scrape import grew, read
from tests.support.stack import Stack, running_stack

DIMENSIONS = 64


def bag_of_words(text: str) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for word in text.lower().split():
        word = "".join(char for char in word if char.isalnum())
        if word:
            vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        data = [
            {"index": i, "embedding": bag_of_words(text)} for i, text in enumerate(body["input"])
        ]
        payload = json.dumps({"data": data, "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def embeddings_api() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def needles() -> list[memory_pb2.StorePatternRequest]:
    return [
        memory_pb2.StorePatternRequest(
            namespace="sem",
            pattern=memory_pb2.Pattern(
                id=pattern_id, type=memory_pb2.PATTERN_TYPE_INSIGHT, content=text
            ),
        )
        for pattern_id, text in NEEDLES.items()
    ]


@pytest.fixture
async def semantic_stack(
    tmp_path: Path, embeddings_api: ThreadingHTTPServer
) -> AsyncIterator[Stack]:
    host, port = embeddings_api.server_address[:2]
    async with running_stack(tmp_path) as stack:
        await stack.stop_memory()
        stack.memory_overrides = {"embeddings_url": f"http://{host!s}:{port}"}
        await stack.start_memory()
        stub = stack.memory_stub()
        await stub.BatchStorePatterns(
            memory_pb2.BatchStorePatternsRequest(requests=needles()), timeout=10
        )
        yield stack


async def search(
    stack: Stack, query: str, mode: memory_pb2.SearchMode.ValueType
) -> memory_pb2.SearchPatternsResponse:
    request = memory_pb2.SearchPatternsRequest(
        namespace="sem", query=query, mode=mode, disable_query_understanding=True, explain=True
    )
    response: memory_pb2.SearchPatternsResponse = await stack.memory_stub().SearchPatterns(
        request, timeout=10
    )
    return response


async def test_semantic_ranks_by_meaning(semantic_stack: Stack) -> None:
    # No needle contains all these words, so keyword search requiring each
    # (+word) finds nothing.
    query = "payments fixture retried sphinx"
    required = " ".join(f"+{word}" for word in query.split())
    before = read(metrics.REGISTRY)
    keyword = await search(semantic_stack, required, memory_pb2.SEARCH_MODE_KEYWORD)
    assert keyword.results == []
    semantic = await search(semantic_stack, query, memory_pb2.SEARCH_MODE_SEMANTIC)
    assert semantic.effective_mode == memory_pb2.SEARCH_MODE_SEMANTIC
    assert semantic.mode_fallback_reason == ""
    top = semantic.results[0]
    assert top.pattern.id in {"needle-flaky", "needle-docs"}
    assert top.explanation.semantic_score > 0
    after = read(metrics.REGISTRY)
    searches = "attune_memory_search_seconds_count"
    assert grew(before, after, searches, mode="keyword", source="embedded") == 1
    assert grew(before, after, searches, mode="semantic", source="embedded") == 1
    degraded = "attune_memory_searches_degraded_total"
    assert after.total(degraded) == before.total(degraded)
    assert not top.pattern.embedding, "vectors stay internal to search"
    stored = await semantic_stack.memory_stub().GetPattern(
        memory_pb2.GetPatternRequest(namespace="sem", pattern_id="needle-flaky"), timeout=5
    )
    assert len(stored.pattern.embedding) == 4 * DIMENSIONS


async def test_hybrid_fuses_keyword_and_meaning(semantic_stack: Stack) -> None:
    before = read(metrics.REGISTRY)
    response = await search(semantic_stack, "wheel", memory_pb2.SEARCH_MODE_HYBRID)
    assert response.effective_mode == memory_pb2.SEARCH_MODE_HYBRID
    searches = "attune_memory_search_seconds_count"
    assert grew(before, read(metrics.REGISTRY), searches, mode="hybrid", source="embedded") == 1
    assert response.results[0].pattern.id == "needle-wheel"


async def test_semantic_falls_back_to_keyword_when_the_api_is_down(
    semantic_stack: Stack, embeddings_api: ThreadingHTTPServer
) -> None:
    embeddings_api.shutdown()
    embeddings_api.server_close()
    before = read(metrics.REGISTRY)
    response = await search(semantic_stack, "wheel manylinux", memory_pb2.SEARCH_MODE_SEMANTIC)
    assert response.effective_mode == memory_pb2.SEARCH_MODE_KEYWORD
    assert "unavailable" in response.mode_fallback_reason
    after = read(metrics.REGISTRY)
    degraded = "attune_memory_searches_degraded_total"
    assert grew(before, after, degraded, reason="embeddings_unavailable") == 1
    assert after.total(degraded) - before.total(degraded) == 1
    searches = "attune_memory_search_seconds_count"
    assert grew(before, after, searches, mode="keyword", source="embedded") == 1
    assert [r.pattern.id for r in response.results] == ["needle-wheel"]
    # Writes go on without an embedding.
    late = memory_pb2.StorePatternRequest(
        namespace="sem",
        pattern=memory_pb2.Pattern(id="late", type=memory_pb2.PATTERN_TYPE_INSIGHT, content="x"),
    )
    stored = await semantic_stack.memory_stub().StorePattern(late, timeout=10)
    assert not stored.deduped


async def test_without_a_provider_semantic_says_so(stack: Stack) -> None:
    stub = stack.memory_stub()
    await stub.BatchStorePatterns(
        memory_pb2.BatchStorePatternsRequest(requests=needles()), timeout=10
    )
    before = read(metrics.REGISTRY)
    response = await search(stack, "wheel", memory_pb2.SEARCH_MODE_SEMANTIC)
    assert response.effective_mode == memory_pb2.SEARCH_MODE_KEYWORD
    assert "no embeddings provider" in response.mode_fallback_reason
    degraded = "attune_memory_searches_degraded_total"
    after = read(metrics.REGISTRY)
    assert grew(before, after, degraded, reason="no_embeddings_provider") == 1
    assert after.total(degraded) - before.total(degraded) == 1
    assert [r.pattern.id for r in response.results] == ["needle-wheel"]
