"""Semantic and hybrid ranking, when an embeddings provider is configured.

Embeddings are best effort: a pattern stored while the provider is down is
stored without one, and a semantic search whose provider fails answers by
keyword and says why. Nothing here can fail a store or a search.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from attune.memory.v1 import memory_pb2
from memory_service.search.documents import searchable_text
from memory_service.search.embeddings import (
    EmbeddingsProvider,
    EmbeddingsUnavailable,
    reciprocal_rank_fusion,
    top_k,
    vector_to_bytes,
)
from memory_service.search.index import Hit, ReadQuery
from memory_service.search.planning import SearchPlan
from memory_service.search.reading import relaxed_minimum
from memory_service.store.base import PatternStore

log = logging.getLogger("attune.memory.semantic")

# How many candidates each ranking contributes to a hybrid fusion.
FUSION_DEPTH = 50

# Why a semantic or hybrid search fell back to keyword (mode_fallback_reason).
NO_FREE_TEXT = "no free text to compare by meaning; ranked by filter and recency"
PROVIDER_UNAVAILABLE = "the embeddings provider is unavailable; ranked by keyword"


@dataclass(frozen=True)
class Ranked:
    """A page of semantically (or hybrid) ranked results."""

    results: list[memory_pb2.SearchResult]
    total: int


class Semantic:
    """Embeds patterns on write and ranks by similarity on search."""

    def __init__(self, provider: EmbeddingsProvider, timeout_seconds: float) -> None:
        self._provider = provider
        self._timeout = timeout_seconds

    async def _embed(self, texts: Sequence[str]) -> list[list[float]] | None:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._provider.embed(texts)
        except (EmbeddingsUnavailable, TimeoutError) as error:
            log.warning("embeddings unavailable", extra={"reason": str(error) or "timeout"})
            return None

    async def embed_patterns(self, patterns: Sequence[memory_pb2.Pattern]) -> None:
        """Sets each pattern's embedding, or leaves them all without one."""
        texts = [searchable_text(pattern) for pattern in patterns]
        vectors = await self._embed(texts) if texts else None
        for pattern, vector in zip(patterns, vectors or [], strict=False):
            pattern.embedding = vector_to_bytes(vector)

    async def rank(
        self,
        store: PatternStore,
        namespace: str,
        plan: SearchPlan,
        hybrid: bool,
        size: int,
        offset: int,
        viewer: str,
    ) -> Ranked | str:
        """A ranked page of what the viewer may see, or why it fell back to keyword."""
        if not plan.ranked_text:
            return NO_FREE_TEXT
        vectors = await self._embed([plan.ranked_text])
        if vectors is None:
            return PROVIDER_UNAVAILABLE
        depth = FUSION_DEPTH if hybrid else offset + size
        candidates = await store.vectors(namespace, plan.condition, viewer=viewer)
        similar = top_k(vectors[0], candidates, max(depth, offset + size))
        similarity = dict(similar)
        if hybrid:
            keyword = await _keyword(store, namespace, plan, viewer)
            fused = reciprocal_rank_fusion(
                [[hit.pattern.id for hit in keyword], [i for i, _ in similar]]
            )
            order = [(pattern_id, score) for pattern_id, score in fused]
        else:
            order = similar
        page = order[offset : offset + size]
        patterns = await store.get_many(
            namespace, [pattern_id for pattern_id, _ in page], viewer=viewer
        )
        results = []
        for pattern_id, score in page:
            if pattern_id not in patterns:
                continue
            pattern = patterns[pattern_id]
            pattern.ClearField("embedding")
            result = memory_pb2.SearchResult(pattern=pattern, score=score)
            result.explanation.semantic_score = similarity.get(pattern_id, 0.0)
            result.explanation.recency_factor = 1.0
            results.append(result)
        return Ranked(results, len(order))


async def _keyword(store: PatternStore, namespace: str, plan: SearchPlan, viewer: str) -> list[Hit]:
    """The keyword ranking fused with the semantic one, relaxed as a keyword
    search relaxes (reading.py)."""
    query = ReadQuery(
        namespace, plan.terms, plan.condition, FUSION_DEPTH, min_should_match=plan.min_should_match
    )
    hits, total = await store.search(query, viewer=viewer)
    if (
        relaxed := relaxed_minimum(query.min_should_match, total, query.condition is not None)
    ) is not None:
        hits, _ = await store.search(replace(query, min_should_match=relaxed), viewer=viewer)
    return hits
