"""`attune search` shows how its question was read: the words searched, the
words that did not count, the corrections and a relaxed minimum."""

from __future__ import annotations

from rich.console import Console

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.cli.render_insights import print_search


def _printed(response: executor_pb2.SearchRunsResponse, explain: bool = False) -> str:
    console = Console(record=True, width=200)
    print_search(console, "show me flaky uplods +pypi -draft", response, explain)
    return console.export_text()


def test_the_reading_of_a_question_is_shown() -> None:
    response = executor_pb2.SearchRunsResponse(
        applied_query="flaky uplods +pypi -draft",
        query_reading=memory_pb2.QueryReading(
            dropped_words=["show", "me"],
            corrections=["uplods->uploads"],
            min_should_match=1,
            relaxed=True,
        ),
    )
    text = _printed(response)
    assert "searched words: flaky uplods +pypi -draft" in text
    assert "not searched (common words): show me" in text
    assert "corrected: uplods->uploads" in text
    assert "no run had enough of the words; runs with any one of them" in text


def test_a_minimum_above_one_is_shown_with_explain() -> None:
    response = executor_pb2.SearchRunsResponse(
        applied_query="flaky uploads retries",
        query_reading=memory_pb2.QueryReading(min_should_match=2),
    )
    assert "each run has at least 2 of the unmarked words" in _printed(response, explain=True)
    # Nothing dropped, corrected or relaxed, no filter: the hits alone.
    assert "searched words" not in _printed(response)
