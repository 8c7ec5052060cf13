"""The query language of questions: marks, stop words, the minimum of ranked
words a result needs, and what applied_query shows (reading.py, query.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.search.documents import searchable_text
from memory_service.search.phrases import FILLER
from memory_service.search.planning import PlanError, SearchPlan, plan_search
from memory_service.search.query import (
    Occur,
    QueryError,
    Term,
    format_query,
    parse_query,
)
from memory_service.search.reading import minimum_should_match, read_text, relaxed_minimum
from memory_service.search.stopwords import STOP_WORDS
from memory_service.search.understanding import Vocabulary, understand

NOW = datetime(2026, 3, 18, 14, 30, tzinfo=UTC)
BUILTIN = Path(__file__).parents[3] / "executor_service" / "templates" / "builtin"
SHOULD, MUST, MUST_NOT = Occur.SHOULD, Occur.MUST, Occur.MUST_NOT


def plan(query: str, filter_text: str = "", understand_query: bool = True) -> SearchPlan:
    vocabulary = (["python_package_publish", "test_coverage_boost"], ["test_coverage_required"])
    return plan_search(query, filter_text, understand_query, vocabulary, NOW)


# --- marks -------------------------------------------------------------------------------


def test_bare_words_and_phrases_rank_marked_ones_require_or_exclude() -> None:
    assert parse_query('python "test coverage" +publish +"read the docs" -draft -"dry run"') == [
        Term(("python",)),
        Term(("test", "coverage")),
        Term(("publish",), occur=MUST),
        Term(("read", "the", "docs"), occur=MUST),
        Term(("draft",), occur=MUST_NOT),
        Term(("dry", "run"), occur=MUST_NOT),
    ]


def test_prefix_keeps_its_mark() -> None:
    assert parse_query("pack* +pub* -dra*") == [
        Term(("pack",), prefix=True),
        Term(("pub",), prefix=True, occur=MUST),
        Term(("dra",), prefix=True, occur=MUST_NOT),
    ]


def test_a_mark_counts_only_at_the_start_of_a_token() -> None:
    # Inside a word "+" and "-" are punctuation, as before: the phrase of its words.
    assert parse_query("a+b attune-services") == [Term(("a", "b")), Term(("attune", "services"))]
    assert parse_query("+-draft") == [Term(("draft",), occur=MUST)]


@pytest.mark.parametrize("text", ["+", "-", '+""', "- + -", '-"'])
def test_a_mark_without_words_is_nothing(text: str) -> None:
    with pytest.raises(QueryError, match="no searchable words"):
        parse_query(text)


# --- stop words --------------------------------------------------------------------------


def test_stop_words_do_not_rank() -> None:
    reading = read_text("show me runs using jest for the flaky uploads please", has_filter=False)
    assert reading.terms == [Term(("jest",)), Term(("flaky",)), Term(("uploads",))]
    assert reading.dropped_words == ("show", "me", "runs", "using", "for", "the", "please")


def test_quoted_required_excluded_and_prefix_stop_words_stay() -> None:
    reading = read_text('jest "with" +using -the run*', has_filter=False)
    assert reading.terms == [
        Term(("jest",)),
        Term(("with",)),
        Term(("using",), occur=MUST),
        Term(("the",), occur=MUST_NOT),
        Term(("run",), prefix=True),
    ]
    assert reading.dropped_words == ()


def test_a_phrase_of_stop_words_stays() -> None:
    assert read_text('"show me" jest', has_filter=False).terms == [
        Term(("show", "me")),
        Term(("jest",)),
    ]


def test_only_stop_words_rank_on_them_without_a_filter() -> None:
    reading = read_text("show me what you have", has_filter=False)
    assert [term.words for term in reading.terms] == [
        ("show",),
        ("me",),
        ("what",),
        ("you",),
        ("have",),
    ]
    assert reading.dropped_words == ()
    assert reading.min_should_match == 3


def test_only_stop_words_with_a_filter_leave_the_filter_alone() -> None:
    reading = read_text("show me all of them", has_filter=True)
    assert reading.terms == []
    assert reading.min_should_match == 0


def test_only_stop_words_and_an_exclusion_rank_on_the_stop_words() -> None:
    assert read_text("show me -draft", has_filter=False).terms == [
        Term(("show",)),
        Term(("me",)),
        Term(("draft",), occur=MUST_NOT),
    ]


def test_only_exclusions_need_a_filter() -> None:
    with pytest.raises(QueryError, match="nothing to rank"):
        read_text('-draft -"dry run"', has_filter=False)
    reading = read_text("-draft", has_filter=True)
    assert reading.terms == [Term(("draft",), occur=MUST_NOT)]
    assert reading.min_should_match == 0


def test_a_repeated_term_counts_once() -> None:
    reading = read_text("flaky Flaky uploads flaky", has_filter=False)
    assert reading.terms == [Term(("flaky",)), Term(("uploads",))]
    assert reading.min_should_match == 1


def test_understanding_drops_the_same_words_as_the_free_text() -> None:
    # One list: what ties an understood phrase to the sentence is what does not rank.
    assert FILLER is STOP_WORDS


def test_no_stop_word_is_a_negation() -> None:
    # Dropping one silently would turn a question's meaning around.
    assert not STOP_WORDS & {"not", "no", "without", "never", "none", "except", "nor"}


def _template_words() -> set[str]:
    """Template id words and one-word option values of the built-in templates."""
    words: set[str] = set()
    for path in BUILTIN.glob("*.json"):
        document = json.loads(path.read_text())
        words |= set(document["id"].split("_"))
        for question in document["questions"]:
            words |= {str(option) for option in question.get("options", []) if "_" not in option}
    return words


def test_no_stop_word_is_a_template_id_word_or_an_option() -> None:
    words = _template_words()
    assert {"python", "jest", "go", "other", "hipaa", "strict"} <= words
    assert not words & STOP_WORDS


def test_no_stop_word_is_a_word_the_index_adds_to_a_pattern() -> None:
    # Tier names and success words: what searchable_text adds besides the content.
    added: set[str] = set()
    for success in (True, False):
        pattern = memory_pb2.Pattern(success=success)
        for tier in common_pb2.Tier.values():
            pattern.agents.add(role="x", tier=tier)
        added |= set(searchable_text(pattern).split())
    assert "premium" in added
    assert not added & STOP_WORDS


# --- the minimum-should-match rule --------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "minimum"),
    [(0, 0), (1, 1), (2, 1), (3, 2), (4, 3), (5, 3), (6, 4), (7, 5), (8, 5), (10, 6), (20, 12)],
)
def test_minimum_should_match(groups: int, minimum: int) -> None:
    assert minimum_should_match(groups) == minimum


@given(st.integers(min_value=1, max_value=200))
def test_minimum_is_at_least_one_at_most_all_and_grows_with_the_words(groups: int) -> None:
    minimum = minimum_should_match(groups)
    assert 1 <= minimum <= groups
    assert minimum_should_match(groups + 1) >= minimum
    # Never every word past two: one word no pattern has cannot empty a result.
    assert groups <= 1 or minimum < groups


def test_the_minimum_counts_ranked_words_only() -> None:
    reading = read_text("flaky uploads retries +pypi -draft", has_filter=False)
    assert reading.min_should_match == 2  # Of the three ranked words.


# --- relaxation ---------------------------------------------------------------------------


def test_a_search_that_found_nothing_needing_more_than_one_word_is_relaxed() -> None:
    assert relaxed_minimum(3, 0) == 1
    assert relaxed_minimum(2, 0) == 1


@pytest.mark.parametrize(("minimum", "total"), [(3, 1), (2, 40), (1, 0), (0, 0)])
def test_a_search_that_found_something_or_needed_one_stands(minimum: int, total: int) -> None:
    assert relaxed_minimum(minimum, total) is None


# --- planning: what applied_query shows -------------------------------------------------


def test_a_question_in_a_sentence_ranks_on_its_content_words() -> None:
    planned = plan("show me runs using flaky uploads for the python package publish that failed")
    assert planned.applied_filter == 'template_id = "python_package_publish" AND success = false'
    assert planned.applied_query == "flaky uploads"
    assert planned.terms == [Term(("flaky",)), Term(("uploads",))]
    assert set(planned.dropped_words) == {"show", "me", "runs", "using", "for", "the", "that"}
    assert planned.min_should_match == 1


def test_applied_query_shows_marks_and_quotes_stop_words_that_rank() -> None:
    planned = plan('flaky "with" uploads +pypi -"dry run" pack* attune-serv*', "", False)
    assert planned.applied_query == 'flaky "with" uploads +pypi -"dry run" pack* attune-serv*'


def test_applied_query_of_only_stop_words_quotes_them() -> None:
    planned = plan("show me", "", False)
    assert planned.applied_query == '"show" "me"'
    assert plan(planned.applied_query, "", False).terms == planned.terms


def test_marked_words_are_not_understood() -> None:
    # +word and -word are exact control over the text, as quoting is.
    planned = plan("-premium +failed flaky")
    assert planned.applied_filter == ""
    assert planned.terms == [
        Term(("premium",), occur=MUST_NOT),
        Term(("failed",), occur=MUST),
        Term(("flaky",)),
    ]


def test_marked_words_are_never_filler() -> None:
    understood = understand("failed +runs -with", Vocabulary({}, ()), NOW)
    assert understood.remaining_query == "+runs -with"
    assert understood.dropped_words == ()


def test_exclusions_alone_exclude_from_an_understood_filter() -> None:
    planned = plan("failed runs -flaky")
    assert planned.applied_filter == "success = false"
    assert planned.terms == [Term(("flaky",), occur=MUST_NOT)]
    assert planned.applied_query == "-flaky"


def test_exclusions_alone_and_no_filter_are_an_invalid_argument() -> None:
    with pytest.raises(PlanError) as error:
        plan("-flaky")
    assert error.value.violations == [
        ("query", "nothing to rank: -word only excludes; add a word to search for, or a filter")
    ]


def test_ranked_text_leaves_out_the_exclusions() -> None:
    planned = plan('flaky +"test coverage" -draft', "", False)
    assert planned.ranked_text == "flaky test coverage"


# --- properties -----------------------------------------------------------------------------

# Marks, quotes, stars and stop words among any characters, joined in any order.
PIECES = ['"', "*", "+", "-", " ", "\t", "show", "the", "with", "pack", "failed", "İ", "ß", "_"]
query_text = st.lists(st.one_of(st.sampled_from(PIECES), st.characters()), max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=query_text, has_filter=st.booleans())
def test_any_text_reads_or_is_a_query_error(text: str, has_filter: bool) -> None:
    try:
        reading = read_text(text, has_filter)
    except QueryError:
        return
    for term in reading.terms:
        # Only word characters reach an engine: no quote, star, mark or space.
        assert term.words
        assert all(re.fullmatch(r"\w+", word) for word in term.words)
    should = sum(1 for term in reading.terms if term.occur is SHOULD)
    assert reading.min_should_match == minimum_should_match(should)


@settings(max_examples=400, deadline=None)
@given(text=query_text)
def test_printed_terms_parse_back_to_the_same_terms(text: str) -> None:
    try:
        terms = parse_query(text)
    except QueryError:
        return
    assert parse_query(format_query(terms)) == terms


@settings(max_examples=300, deadline=None)
@given(text=query_text, filter_text=st.sampled_from(["", "success = true"]))
def test_applied_query_plans_back_to_the_same_terms(text: str, filter_text: str) -> None:
    try:
        planned = plan(text, filter_text)
    except PlanError:
        return
    if not planned.applied_query:
        return
    again = plan(planned.applied_query, planned.applied_filter, understand_query=False)
    assert again.terms == planned.terms
    assert again.applied_query == planned.applied_query
    assert again.min_should_match == planned.min_should_match


def test_with_a_filter_words_that_match_none_of_its_patterns_only_rank() -> None:
    # The filter selects; a leftover word no pattern holds must not empty it.
    assert relaxed_minimum(1, 0, filtered=True) == 0
    assert relaxed_minimum(3, 0, filtered=True) == 0
    assert relaxed_minimum(0, 0, filtered=True) is None
    assert relaxed_minimum(1, 4, filtered=True) is None
    assert relaxed_minimum(1, 0, filtered=False) is None
