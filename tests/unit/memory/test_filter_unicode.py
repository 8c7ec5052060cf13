"""Filter string literals are valid Unicode, or the filter is refused (issue 10, finding 7).

A literal uses JSON escapes, so `"\\ud800"` (ASCII on the wire) decodes to a
lone surrogate, which SQLite cannot bind. Whatever a literal escapes, the
filter either fails to compile with FilterError or runs on the index.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from memory_service.search.filter import FilterError, compile_filter, matches
from memory_service.search.index import PageQuery, ReadQuery, SearchIndex, every_should
from memory_service.search.planning import PlanError, plan_search
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
any_text = st.text(alphabet=st.characters(codec=None) | surrogates, max_size=6)
FIELDS = ["content", "tags", "template_id", "agents.role", "form_responses.name", "id"]


def is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def index_with(pattern: memory_pb2.Pattern) -> SearchIndex:
    index = SearchIndex(sqlite3.connect(":memory:"))
    index.put("ns", pattern, "digest")
    return index


PATTERN = memory_pb2.Pattern(id="p", type=memory_pb2.PATTERN_TYPE_INSIGHT, content="x\U0001f600")
INDEX = index_with(PATTERN)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), op=st.sampled_from(["=", "!=", ":", "<"]), value=any_text)
def test_a_literal_is_valid_unicode_or_the_filter_is_refused(
    field: str, op: str, value: str
) -> None:
    text = f"{field} {op} {json.dumps(value)}"  # ensure_ascii: surrogates as \\uXXXX
    if not is_unicode(value):
        with pytest.raises(FilterError, match="surrogate"):
            compile_filter(text, PATTERN_SCHEMA)
        return
    try:
        condition = compile_filter(text, PATTERN_SCHEMA)
    except FilterError:
        return  # Refused for another reason (a comparison the field does not take).
    patterns, total = INDEX.page(PageQuery("ns", condition, [("id", False)], 10, 0))
    expected = matches(condition, pattern_record(PATTERN), PATTERN_SCHEMA) if condition else True
    assert (total == 1) is expected
    assert [p.id for p in patterns] == (["p"] if expected else [])


def test_a_surrogate_pair_is_one_character_and_matches() -> None:
    condition = compile_filter('content = "x\\ud83d\\ude00"', PATTERN_SCHEMA)
    assert INDEX.page(PageQuery("ns", condition, [("id", False)], 10, 0))[1] == 1


QUERY_WORDS = st.sampled_from(
    [
        "\\ud800",
        '"\\udfff"',
        "template",
        "python_package_publish",
        "coverage",
        "> 80%",
        "failed",
        "premium",
        "since 2026-01-01",
        "cost under $1",
        "\ud83d\ude00",
    ]
)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(QUERY_WORDS | any_text, min_size=1, max_size=6), filter_value=any_text)
def test_a_planned_search_runs_on_the_index_or_is_refused(
    words: list[str], filter_value: str
) -> None:
    query = " ".join(word for word in words if is_unicode(word))  # The wire carries no other.
    filter_text = f"content != {json.dumps(filter_value)}"
    vocabulary = (["python_package_publish"], ["coverage"])
    if not is_unicode(filter_value):
        with pytest.raises(PlanError) as raised:
            plan_search(query, filter_text, True, vocabulary, datetime.now(UTC))
        assert "filter" in dict(raised.value.violations)
        return
    try:
        plan = plan_search(query, filter_text, True, vocabulary, datetime.now(UTC))
    except PlanError:
        return  # Nothing searchable in the query: refused with a field, never an error.
    INDEX.search(
        ReadQuery("ns", plan.terms, plan.condition, 10, min_should_match=every_should(plan.terms))
    )
