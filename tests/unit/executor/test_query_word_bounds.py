"""What query understanding weighs stays bounded however many distinct
question ids writers send (issue 10, findings 2 and 3: review follow-up)."""

from __future__ import annotations

import sqlite3

import pytest

from attune.memory.v1 import memory_pb2
from executor_service.runs.forms import to_form_value
from memory_service.patterns import MAX_FORM_KEY_LENGTH, MAX_FORM_RESPONSES, store_violations
from memory_service.search import query_words
from memory_service.search.index import SearchIndex

NS = "team-a"
NOW = 1_767_225_600_000_000


def numeric_pattern(pattern_id: str, keys: list[str]) -> memory_pb2.Pattern:
    made = memory_pb2.Pattern(id=pattern_id, content="x", type=memory_pb2.PATTERN_TYPE_INSIGHT)
    for key in keys:
        made.form_responses[key].CopyFrom(to_form_value(1.0))
    return made


def test_a_pattern_with_too_many_form_answers_is_refused() -> None:
    keys = [f"q{n}" for n in range(MAX_FORM_RESPONSES + 1)]
    request = memory_pb2.StorePatternRequest(namespace=NS, pattern=numeric_pattern("p", keys))
    assert ("pattern.form_responses", f"more than {MAX_FORM_RESPONSES} answers") in (
        store_violations(request)
    )
    request.pattern.form_responses.pop("q0")
    assert store_violations(request) == []


@pytest.mark.parametrize("key", ["", "q" * (MAX_FORM_KEY_LENGTH + 1)])
def test_a_question_id_out_of_bounds_is_refused(key: str) -> None:
    request = memory_pb2.StorePatternRequest(namespace=NS, pattern=numeric_pattern("p", [key]))
    assert [field for field, _ in store_violations(request)] == ["pattern.form_responses"]


def test_query_words_keep_the_most_common_within_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(query_words, "MAX_QUERY_WORDS", 50)
    connection = sqlite3.connect(":memory:")
    try:
        index = SearchIndex(connection, lambda: NOW)
        # Ids every pattern shares, and a flood of ids each used once.
        common = ["coverage", "headcount"]
        for n in range(40):
            flood = [f"noise_{n}_{k}" for k in range(10)]
            index.put(NS, numeric_pattern(f"p{n}", [*common, *flood]), "d")
        for warm in (False, True):  # Loaded from the tables, then kept up to date.
            if warm:
                index.put(NS, numeric_pattern("late", [*common, "noise_late"]), "d")
            _, numeric = index.query_vocabulary(NS)
            assert len(numeric) == 50
            assert {"coverage", "headcount"} <= set(numeric)
            assert numeric == sorted(numeric)
    finally:
        connection.close()
