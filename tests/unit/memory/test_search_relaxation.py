"""Relaxation in SearchPatterns: a search that needs more than one ranked
word and finds nothing runs again needing one, on every page, and says so
in its query_reading (the rule is reading.relaxed_minimum)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, cast

from attune.memory.v1 import memory_pb2
from memory_service.rpc.search import PatternSearchRpcs
from memory_service.security.identity import Principal
from tests.support.ranked_stubs import CORRECTION, RankedStore

# Ranks on three words ("show", "me" do not rank), so a result needs two.
QUESTION = "show me flaky uploads retries"

SearchPatterns = cast(
    Callable[..., Awaitable[memory_pb2.SearchPatternsResponse]],
    inspect.unwrap(PatternSearchRpcs.SearchPatterns),  # Past the gate: no caller to check.
)


async def _search(store: RankedStore, **fields: Any) -> memory_pb2.SearchPatternsResponse:
    rpcs = PatternSearchRpcs()
    rpcs._store = cast(Any, store)
    rpcs._semantic = None
    request = memory_pb2.SearchPatternsRequest(namespace="ns", **fields)
    return await SearchPatterns(rpcs, request, None, Principal.ANONYMOUS)


async def test_a_search_that_found_nothing_is_relaxed() -> None:
    store = RankedStore({"one": {"flaky"}, "two": {"uploads"}})
    response = await _search(store, query=QUESTION)
    assert store.minimums == [2, 1]
    assert [result.pattern.id for result in response.results] == ["one", "two"]
    assert response.applied_query == "flaky uploads retries"
    assert response.query_reading == memory_pb2.QueryReading(
        dropped_words=["show", "me"], corrections=[CORRECTION], min_should_match=1, relaxed=True
    )


async def test_the_minimum_stands_when_something_has_it() -> None:
    store = RankedStore({"one": {"flaky"}, "three": {"flaky", "uploads", "retries"}})
    response = await _search(store, query=QUESTION)
    assert store.minimums == [2]
    assert [result.pattern.id for result in response.results] == ["three"]
    assert response.query_reading.min_should_match == 2
    assert not response.query_reading.relaxed


async def test_a_search_needing_one_word_is_not_run_again() -> None:
    store = RankedStore({})
    response = await _search(store, query="flaky uploads")
    assert store.minimums == [1]
    assert not response.results
    assert not response.query_reading.relaxed


async def test_every_page_of_a_relaxed_search_is_relaxed() -> None:
    store = RankedStore({f"d{n}": {"flaky"} for n in range(5)})
    first = await _search(store, query=QUESTION, page_size=2)
    second = await _search(store, query=QUESTION, page_size=2, page_token=first.next_page_token)
    assert first.query_reading.relaxed
    assert second.query_reading.relaxed
    pages = [r.pattern.id for r in first.results] + [r.pattern.id for r in second.results]
    assert pages == ["d0", "d1", "d2", "d3"]
    assert second.next_page_token
