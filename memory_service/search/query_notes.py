"""What a search response tells of how its free text was read, besides
applied_query: the words dropped, the corrections made, the minimum of
ranked words a result has and whether it was relaxed. Both services answer
with it (SearchPatterns and SearchRuns)."""

from __future__ import annotations

from collections.abc import Iterable

from attune.memory.v1 import memory_pb2
from memory_service.search.index import Hit
from memory_service.search.planning import SearchPlan


def query_reading(plan: SearchPlan, minimum: int, hits: Iterable[Hit]) -> memory_pb2.QueryReading:
    """The reading of a search planned as `plan`, run needing `minimum`
    ranked words, that found `hits` (whose corrections it lists)."""
    corrections = dict.fromkeys(note for hit in hits for note in hit.fuzzy_expansions)
    return memory_pb2.QueryReading(
        dropped_words=plan.dropped_words,
        corrections=list(corrections),
        min_should_match=minimum,
        relaxed=minimum < plan.min_should_match,
    )
