"""Relaxation in the executor's fallback: the local files relax a search as
the memory service does (reading.relaxed_minimum), and the answer says how
its free text was read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from attune.executor.v1 import executor_pb2
from executor_service.rpc.searching import SearchingRpcs
from executor_service.runs.visibility import ANONYMOUS_VIEWER
from memory_service.search.planning import plan_search
from tests.support.ranked_stubs import CORRECTION, RankedRuns

QUESTION = "show me flaky uploads retries"  # Three ranked words: two needed.
NOW = datetime(2026, 3, 18, tzinfo=UTC)


class Fallback:
    """What SearchingRpcs._local_answer reads of the servicer."""

    def __init__(self, runs: RankedRuns) -> None:
        self._local_index = runs
        self._local_search = SearchingRpcs._local_search.__get__(self)


@pytest.mark.parametrize(
    ("documents", "minimums", "found"),
    [
        ({"one": {"flaky"}, "two": {"uploads"}}, [2, 1], ["one", "two"]),
        ({"one": {"flaky"}, "three": {"flaky", "uploads", "retries"}}, [2], ["three"]),
    ],
)
def test_the_fallback_relaxes_as_memory_does(
    documents: dict[str, set[str]], minimums: list[int], found: list[str]
) -> None:
    runs = RankedRuns(documents)
    planned = plan_search(QUESTION, "", True, ([], []), NOW)
    servicer = cast(Any, Fallback(runs))
    answer = SearchingRpcs._local_answer(servicer, planned, 10, "memory down", ANONYMOUS_VIEWER)
    relaxed = len(minimums) == 2
    assert runs.minimums == minimums
    assert [hit.run_id for hit in answer.hits] == found
    assert answer.source == executor_pb2.SEARCH_SOURCE_LOCAL_FILES
    assert answer.applied_query == "flaky uploads retries"
    assert answer.query_reading.relaxed is relaxed
    assert answer.query_reading.min_should_match == minimums[-1]
    assert list(answer.query_reading.dropped_words) == ["show", "me"]
    assert list(answer.query_reading.corrections) == [CORRECTION]
