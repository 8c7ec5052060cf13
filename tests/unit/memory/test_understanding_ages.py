"""Query understanding of ages and windows around a time ("older than two
weeks", "before yesterday") and of negated outcomes ("didn't succeed")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_service.search.filter import compile_filter, matches
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.search.understanding import understand
from tests.unit.memory.test_understanding import NOW, VOCABULARY


def understood(query: str, now: datetime = NOW) -> tuple[str, str]:
    result = understand(query, VOCABULARY, now)
    compile_filter(result.filter_text, PATTERN_SCHEMA)
    return result.filter_text, result.remaining_query


def created(op: str, moment: str) -> str:
    return f'create_time {op} "{moment}"'


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("older than two weeks", created("<", "2026-03-04T14:30:15Z")),
        ("older than a week", created("<", "2026-03-11T14:30:15Z")),
        ("more than 3 days ago", created("<", "2026-03-15T14:30:15Z")),
        ("over a month old", created("<", "2026-02-18T14:30:15Z")),
        ("at least 2 hours old", created("<=", "2026-03-18T12:30:15Z")),
        ("less than 2 hours ago", created(">", "2026-03-18T12:30:15Z")),
        ("newer than a day", created(">", "2026-03-17T14:30:15Z")),
        ("younger than 1 year", created(">", "2025-03-18T14:30:15Z")),
        ("within 3 days ago", created(">=", "2026-03-15T14:30:15Z")),
        ("at most a week old", created(">=", "2026-03-11T14:30:15Z")),
        ("a week ago", created(">=", "2026-03-11T14:30:15Z")),
        ("since an hour ago", created(">=", "2026-03-18T13:30:15Z")),
        ("before yesterday", created("<", "2026-03-17T00:00:00Z")),
        ("before today", created("<", "2026-03-18T00:00:00Z")),
        ("earlier than last week", created("<", "2026-03-11T14:30:15Z")),
        ("prior to the last 3 days", created("<", "2026-03-15T14:30:15Z")),
        ("older than last month", created("<", "2026-02-01T00:00:00Z")),
        ("before this month", created("<", "2026-03-01T00:00:00Z")),
        ("before this week", created("<", "2026-03-16T00:00:00Z")),
        ("after yesterday", created(">=", "2026-03-18T00:00:00Z")),
        ("after last month", created(">=", "2026-03-01T00:00:00Z")),
        ("later than last year", created(">=", "2026-01-01T00:00:00Z")),
        (
            "the day before yesterday",
            f"{created('>=', '2026-03-16T00:00:00Z')} AND {created('<', '2026-03-17T00:00:00Z')}",
        ),
        ("in the last 3 days", created(">=", "2026-03-15T14:30:15Z")),
        ("this past week", created(">=", "2026-03-11T14:30:15Z")),
    ],
)
def test_ages_and_windows(query: str, expected: str) -> None:
    assert understood(query) == (expected, "")


@pytest.mark.parametrize(
    "query",
    [
        "more than 3 days",  # A duration, as likely as an age.
        "under 2 hours",
        "within 3 days",
    ],
)
def test_an_amount_of_time_alone_is_no_age(query: str) -> None:
    assert understood(query) == ("", query)


def test_before_yesterday_excludes_yesterday() -> None:
    tree = compile_filter(understood("before yesterday")[0], PATTERN_SCHEMA)
    assert matches(tree, {"create_time": datetime(2026, 3, 16, 23, 59, tzinfo=UTC)}, PATTERN_SCHEMA)
    assert not matches(tree, {"create_time": datetime(2026, 3, 17, tzinfo=UTC)}, PATTERN_SCHEMA)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("didn't succeed", "success = false"),
        ("did not succeed", "success = false"),
        ("wasn't successful", "success = false"),
        ("weren\u2019t successful", "success = false"),
        ("hasn't been successful", "success = false"),
        ("no success", "success = false"),
        ("not passed", "success = false"),
        ("did not fail", "success = true"),
        ("didn't fail", "success = true"),
        ("never failed", "success = true"),
        ("without failures", "success = true"),
        ("with no failures", "success = true"),
        ("zero failures", "success = true"),
        ("have not failed", "success = true"),
        ("not failed", "success = true"),
        ("non-passing", "success = false"),
    ],
)
def test_negated_outcomes(query: str, expected: str) -> None:
    assert understood(query) == (expected, "")


@pytest.mark.parametrize("query", ["fail", "succeed", "pass", "fail_on_cvss", "passes"])
def test_bare_verbs_need_a_negation(query: str) -> None:
    filter_text, _ = understood(query)
    assert filter_text == ("success = true" if query == "passes" else "")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            (
                *("older", "than", "more", "less", "over", "under", "at", "least", "most"),
                *("a", "an", "two", "3", "days", "weeks", "month", "hour", "ago", "old"),
                *("before", "after", "earlier", "later", "prior", "to", "the", "last", "past"),
                *("yesterday", "today", "this", "year", "day", "since", "within", "newer"),
                *("didn't", "not", "no", "never", "succeed", "fail", "failed", "successful"),
            )
        ),
        max_size=10,
    ),
    st.datetimes(timezones=st.none() | st.just(UTC)),
)
def test_any_time_or_outcome_wording_compiles(words: list[str], now: datetime) -> None:
    understood(" ".join(words), now)
