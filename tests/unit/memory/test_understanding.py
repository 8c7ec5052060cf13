"""Query understanding: phrasings in free text that become filter terms."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_service.search.filter import (
    MAX_FILTER_LENGTH,
    And,
    FilterError,
    compile_filter,
    matches,
    parse_filter,
)
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.search.understanding import Understanding, Vocabulary, combine, understand

BUILTIN = Path(__file__).parents[3] / "executor_service" / "templates" / "builtin"


def _builtin_vocabulary() -> Vocabulary:
    """The six built-in templates as the service would describe them."""
    templates: dict[str, str] = {}
    numeric: list[str] = []
    for path in sorted(BUILTIN.glob("*.json")):
        document = json.loads(path.read_text())
        templates[document["id"]] = document["name"]
        numeric += [q["id"] for q in document["questions"] if q["type"] == "number"]
    return Vocabulary(templates, tuple(numeric))


BUILTIN_VOCABULARY = _builtin_vocabulary()
# The same, with the publish template's coverage question preferred on ties.
VOCABULARY = Vocabulary(
    BUILTIN_VOCABULARY.templates,
    (
        "test_coverage_required",
        *(f for f in BUILTIN_VOCABULARY.numeric_fields if f != "test_coverage_required"),
    ),
)
NOW = datetime(2026, 3, 18, 14, 30, 15, 250_000, tzinfo=UTC)  # A Wednesday.


def run(query: str, vocabulary: Vocabulary = VOCABULARY, now: datetime = NOW) -> Understanding:
    result = understand(query, vocabulary, now)
    compile_filter(result.filter_text, PATTERN_SCHEMA)  # Every result must compile.
    return result


def test_builtin_vocabulary_is_what_the_templates_say() -> None:
    assert len(BUILTIN_VOCABULARY.templates) == 6
    assert BUILTIN_VOCABULARY.templates["python_package_publish"] == "Publish a Python package"
    assert "test_coverage_required" in BUILTIN_VOCABULARY.numeric_fields
    assert "test_coverage_target" in BUILTIN_VOCABULARY.numeric_fields


# --- the brief's examples -------------------------------------------------------


def test_successful_workflows_with_coverage() -> None:
    result = run("successful workflows with test coverage > 80%")
    assert result.filter_text == "success = true AND form_responses.test_coverage_required > 80"
    assert result.remaining_query == ""
    assert result.interpretations == (
        '"successful" -> success = true',
        '"test coverage > 80%" -> form_responses.test_coverage_required > 80',
    )


def test_failed_publish_runs_last_week_with_premium_agents() -> None:
    result = run("failed publish runs last week that used premium agents")
    assert result.filter_text == (
        'success = false AND create_time >= "2026-03-11T14:30:15Z" AND agents.tier = "premium"'
    )
    assert result.remaining_query == "publish"


# --- each family of phrasings -----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("successful", "success = true"),
        ("succeeded", "success = true"),
        ("passing", "success = true"),
        ("success", "success = true"),
        ("SUCCESSFULLY", "success = true"),
        ("failed", "success = false"),
        ("failing", "success = false"),
        ("unsuccessful", "success = false"),
        ("failures", "success = false"),
        ("Failed", "success = false"),
        ("not successful", "success = false"),
        ("never failed", "success = true"),
        ("non-passing", "success = false"),
    ],
)
def test_success_words(query: str, expected: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == (expected, "")


@pytest.mark.parametrize("query", ["failedx", "xfailed", "fail", "successor", "fail_on_cvss"])
def test_success_words_need_word_boundaries(query: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == ("", query)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cost under $0.50", "total_cost_usd < 0.5"),
        ("cheaper than 0.5 dollars", "total_cost_usd < 0.5"),
        ("costing less than $1", "total_cost_usd < 1"),
        ("over $2", "total_cost_usd > 2"),
        ("more than $0.10", "total_cost_usd > 0.1"),
        ("cost <= 0.25", "total_cost_usd <= 0.25"),
        ("total cost was at most $3", "total_cost_usd <= 3"),
        ("under 50 cents", "total_cost_usd < 0.5"),
        ("more expensive than 2 USD", "total_cost_usd > 2"),
        ("up to $1,000", "total_cost_usd <= 1000"),
        ("above $.5.", "total_cost_usd > 0.5"),
        ("between $0.1 and $0.5", "total_cost_usd >= 0.1 AND total_cost_usd <= 0.5"),
        ("cost between 0.5 and 0.1", "total_cost_usd >= 0.1 AND total_cost_usd <= 0.5"),
        ("$0.10-$0.50", "total_cost_usd >= 0.1 AND total_cost_usd <= 0.5"),
    ],
)
def test_cost_bounds(query: str, expected: str) -> None:
    result = run(query)
    assert result.filter_text == expected
    assert result.remaining_query in ("", ".")  # A sentence's full stop may stay.


def test_a_bare_number_is_not_a_cost() -> None:
    assert run("over 2 retries").filter_text == ""
    assert run("between 2 and 4 minutes").filter_text == ""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("more than 5 agents", "agent_count > 5"),
        ("at least 3 agents", "agent_count >= 3"),
        ("fewer than 4 agents", "agent_count < 4"),
        ("with 6 agents", "agent_count = 6"),
        ("one agent", "agent_count = 1"),
        ("with at least three agents", "agent_count >= 3"),
        ("3+ agents", "agent_count >= 3"),
        ("4 or fewer agents", "agent_count <= 4"),
        ("agent count >= 2", "agent_count >= 2"),
        ("number of agents is above 7", "agent_count > 7"),
        ("between 2 and 4 agents", "agent_count >= 2 AND agent_count <= 4"),
        ("2-4 agents", "agent_count >= 2 AND agent_count <= 4"),
    ],
)
def test_agent_counts(query: str, expected: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == (expected, "")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("premium agents", 'agents.tier = "premium"'),
        ("used premium", 'agents.tier = "premium"'),
        ("premium tier", 'agents.tier = "premium"'),
        ("cheap tier", 'agents.tier = "cheap"'),
        ("capable model", 'agents.tier = "capable"'),
        ("using the Capable models", 'agents.tier = "capable"'),
        ("premium-tier", 'agents.tier = "premium"'),
        ("tier: cheap", 'agents.tier = "cheap"'),
        ("without premium agents", 'NOT agents.tier = "premium"'),
        ("no premium models", 'NOT agents.tier = "premium"'),
    ],
)
def test_tiers(query: str, expected: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == (expected, "")


@pytest.mark.parametrize("query", ["premium", "cheap", "cheaper runs", "a capable team"])
def test_a_lone_tier_word_is_free_text(query: str) -> None:
    assert run(query).filter_text == ""


def _since(moment: str) -> str:
    return f'create_time >= "{moment}"'


def _window(start: str, end: str) -> str:
    return f'create_time >= "{start}" AND create_time < "{end}"'


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("last week", _since("2026-03-11T14:30:15Z")),
        ("in the last week", _since("2026-03-11T14:30:15Z")),
        ("past 7 days", _since("2026-03-11T14:30:15Z")),
        ("last 24 hours", _since("2026-03-17T14:30:15Z")),
        ("over the past three weeks", _since("2026-02-25T14:30:15Z")),
        ("past 2 months", _since("2026-01-18T14:30:15Z")),
        ("past month", _since("2026-02-18T14:30:15Z")),
        ("3 days ago", _since("2026-03-15T14:30:15Z")),
        ("yesterday", _window("2026-03-17T00:00:00Z", "2026-03-18T00:00:00Z")),
        ("since yesterday", _since("2026-03-17T00:00:00Z")),
        ("today", _since("2026-03-18T00:00:00Z")),
        ("this week", _since("2026-03-16T00:00:00Z")),
        ("this month", _since("2026-03-01T00:00:00Z")),
        ("this year", _since("2026-01-01T00:00:00Z")),
        ("last month", _window("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")),
        ("last year", _window("2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z")),
        ("since 2026-01-01", _since("2026-01-01T00:00:00Z")),
        ("since 2026-01-01T12:00:00+02:00", _since("2026-01-01T10:00:00Z")),
        ("after 2026-01-01", _since("2026-01-02T00:00:00Z")),
        ("before 2026-02-01", 'create_time < "2026-02-01T00:00:00Z"'),
        ("until 2026-02-01", 'create_time < "2026-02-02T00:00:00Z"'),
        ("on 2026-02-03", _window("2026-02-03T00:00:00Z", "2026-02-04T00:00:00Z")),
        (
            "between 2026-01-31 and 2026-01-01",
            _window("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
        ),
    ],
)
def test_relative_time(query: str, expected: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == (expected, "")


def test_time_is_utc_whatever_now_is() -> None:
    naive = NOW.replace(tzinfo=None)
    assert run("today", now=naive).filter_text == _since("2026-03-18T00:00:00Z")
    # 01:00 on the 19th in UTC+2 is still the 18th in UTC.
    eastern = datetime(2026, 3, 19, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert run("today", now=eastern).filter_text == _since("2026-03-18T00:00:00Z")


def test_calendar_edges() -> None:
    january = datetime(2026, 1, 10, tzinfo=UTC)
    assert run("last month", now=january).filter_text == _window(
        "2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z"
    )
    end_of_march = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
    assert run("past month", now=end_of_march).filter_text == _since("2026-02-28T09:00:00Z")
    dawn_of_time = datetime(1, 1, 1, tzinfo=UTC)
    result = run("yesterday last month past 5 years", now=dawn_of_time)
    assert result.filter_text == ""  # Before year 1: not a term, so the words stay.
    assert result.remaining_query == "yesterday last month past 5 years"


@pytest.mark.parametrize("query", ["since 2026-13-45", "since 2026-02-30", "on 2026-01-01T10:00"])
def test_impossible_dates_stay_free_text(query: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == ("", query)


@pytest.mark.parametrize(
    ("query", "expected", "remaining"),
    [
        ("python_package_publish", "python_package_publish", ""),
        ("python package publish", "python_package_publish", ""),
        ("python-package-publish runs", "python_package_publish", ""),
        ("Publish a Python package", "python_package_publish", ""),
        ("publish python package template", "python_package_publish", ""),
        ("code review", "code_review", ""),
        ("Security audit for auth", "security_audit", "auth"),
        ("test coverage boost", "test_coverage_boost", ""),
        ("documentation runs", "documentation", ""),
        ("template documentation", "documentation", ""),
        ("Write or refresh documentation", "documentation", ""),
    ],
)
def test_template_names(query: str, expected: str, remaining: str) -> None:
    result = run(query)
    assert result.filter_text == f'template_id = "{expected}"'
    assert result.remaining_query == remaining


@pytest.mark.parametrize(
    "query", ["python", "python package", "publish", "documentation", "review"]
)
def test_a_common_word_alone_is_not_a_template(query: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == ("", query)


def test_the_longest_template_name_wins() -> None:
    vocabulary = Vocabulary({"release": "Release", "release_prep": "Prepare a release"}, ())
    assert run("release prep runs", vocabulary).filter_text == 'template_id = "release_prep"'
    assert run("release template", vocabulary).filter_text == 'template_id = "release"'


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("test coverage > 80%", "form_responses.test_coverage_required > 80"),
        ("coverage at least 90", "form_responses.test_coverage_required >= 90"),
        ("test coverage above 75 percent", "form_responses.test_coverage_required > 75"),
        ("coverage >= 80", "form_responses.test_coverage_required >= 80"),
        ("coverage is below 50", "form_responses.test_coverage_required < 50"),
        ("at least 80% test coverage", "form_responses.test_coverage_required >= 80"),
        ("test_coverage_required=70", "form_responses.test_coverage_required = 70"),
        ("test coverage target >= 95", "form_responses.test_coverage_target >= 95"),
        ("docstring coverage exactly 60", "form_responses.docstring_coverage_target = 60"),
        ("fail on cvss >= 7.5", "form_responses.fail_on_cvss >= 7.5"),
        ("max comments under 20", "form_responses.max_comments < 20"),
        ("green runs at least 3", "form_responses.ci_green_runs_required >= 3"),
    ],
)
def test_numeric_form_answers(query: str, expected: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == (expected, "")


def test_ties_go_to_the_first_question_in_the_vocabulary() -> None:
    # The built-in order lists the documentation template's question first.
    assert run("coverage >= 80", BUILTIN_VOCABULARY).filter_text == (
        "form_responses.docstring_coverage_target >= 80"
    )
    assert run("test coverage >= 80", BUILTIN_VOCABULARY).filter_text == (
        "form_responses.test_coverage_required >= 80"
    )


@pytest.mark.parametrize("query", ["required > 3", "speed > 3", "test > 5", "runs > 2"])
def test_words_that_name_no_question_stay_free_text(query: str) -> None:
    result = run(query)
    assert (result.filter_text, result.remaining_query) == ("", query)


def test_field_ids_that_cannot_be_filter_names_are_ignored() -> None:
    vocabulary = Vocabulary({}, ("test coverage", "1coverage", "flaky.rate", "flaky_rate"))
    assert run("coverage > 5 flaky rate < 0.1", vocabulary).filter_text == (
        "form_responses.flaky_rate < 0.1"
    )


# --- combinations, free text and limits --------------------------------------------


def test_everything_at_once() -> None:
    result = run(
        "Show me failed python package publish runs since 2026-01-01 costing less than $1 "
        "with at least 3 agents and coverage >= 80 that used cheap tier about flaky uploads"
    )
    assert result.filter_text == (
        'success = false AND template_id = "python_package_publish" '
        'AND create_time >= "2026-01-01T00:00:00Z" AND total_cost_usd < 1 '
        "AND agent_count >= 3 AND form_responses.test_coverage_required >= 80 "
        'AND agents.tier = "cheap"'
    )
    # "about" is a stop word now (one list with the free text's): it only tied
    # the words to the sentence, and is listed as dropped.
    assert result.remaining_query == "flaky uploads"
    assert result.dropped_words == ("show", "me", "runs", "and", "that", "about")
    assert len(result.interpretations) == 7


def test_the_filter_selects_what_the_words_describe() -> None:
    result = run("failed runs yesterday with premium agents costing over $0.20")
    tree = compile_filter(result.filter_text, PATTERN_SCHEMA)
    record: dict[str, Any] = {
        "success": False,
        "create_time": datetime(2026, 3, 17, 8, 0, tzinfo=UTC),
        "total_cost_usd": 0.35,
        "agents": [{"tier": "CHEAP"}, {"tier": "PREMIUM"}],
    }
    assert matches(tree, record, PATTERN_SCHEMA)
    assert not matches(tree, {**record, "create_time": NOW}, PATTERN_SCHEMA)
    assert not matches(tree, {**record, "agents": [{"tier": "CAPABLE"}]}, PATTERN_SCHEMA)


def test_a_negated_tier_excludes_runs_that_used_it() -> None:
    result = run("failed without premium agents")
    assert result.filter_text == 'success = false AND NOT agents.tier = "premium"'
    tree = compile_filter(result.filter_text, PATTERN_SCHEMA)
    cheap = {"success": False, "agents": [{"tier": "CHEAP"}]}
    assert matches(tree, cheap, PATTERN_SCHEMA)
    assert not matches(tree, {**cheap, "agents": [{"tier": "PREMIUM"}]}, PATTERN_SCHEMA)


def test_count_phrasings_next_to_each_other_keep_their_own_agents() -> None:
    result = run("with 6 agents more than 5 agents")
    assert result.filter_text == "agent_count = 6 AND agent_count > 5"


def test_quoted_phrases_are_never_consumed() -> None:
    result = run('"failed to publish" yesterday')
    assert result.filter_text == _window("2026-03-17T00:00:00Z", "2026-03-18T00:00:00Z")
    assert result.remaining_query == '"failed to publish"'


def test_repeated_phrases_give_one_term_and_are_all_consumed() -> None:
    result = run("failed failing runs that failed")
    assert result.filter_text == "success = false"
    assert result.remaining_query == ""
    assert len(result.interpretations) == 3


@pytest.mark.parametrize(
    ("query", "remaining"),
    [
        ("show me the failed runs", ""),  # Nothing but filler is left.
        ("find the documentation of the api for failed runs", "find the documentation of the api"),
        ("flaky - failed ; uploads", "flaky uploads"),  # Dangling punctuation goes too.
        ("flaky, failed; uploads", "flaky, uploads"),  # Punctuation on a kept word stays.
        ("  the   api  docs  ", "the api docs"),  # Nothing consumed: the text, tidied.
        ("", ""),
    ],
)
def test_only_dangling_filler_is_dropped(query: str, remaining: str) -> None:
    assert run(query).remaining_query == remaining


def test_the_filter_never_outgrows_its_limit() -> None:
    dates = [datetime(2000, 1, 1) + timedelta(days=n) for n in range(200)]
    query = " ".join(f"since {d:%Y-%m-%d}" for d in dates)
    result = run(query)
    assert 0 < len(result.filter_text) <= MAX_FILTER_LENGTH
    consumed = len(result.interpretations)
    assert 0 < consumed < len(dates)
    # Phrases that did not fit stay free text rather than being silently lost.
    assert result.remaining_query.count("since") == len(dates) - consumed


# --- properties -----------------------------------------------------------------

PHRASES = (
    *("successful", "succeeded", "passing", "success"),
    *("failed", "failing", "unsuccessful", "failures"),
    *("cost under $0.50", "cheaper than 0.5 dollars", "costing less than $1", "over $2"),
    *("more than $0.10", "between $0.1 and $0.5"),
    *("more than 5 agents", "at least 3 agents", "fewer than 4 agents", "with 6 agents"),
    *("premium agents", "used premium", "premium tier", "cheap tier", "capable model"),
    *("last week", "past 7 days", "last 24 hours", "yesterday", "today", "this month"),
    *("last month", "since 2026-01-01"),
    *("python_package_publish", "python package publish", "Publish a Python package"),
    *("code review", "Security audit"),
    *("test coverage > 80%", "coverage at least 90", "test coverage above 75 percent"),
    "coverage >= 80",
)
# Not "the": a template's name reads across it ("... publish | the | python package ...")
# as one longer phrasing, which then wins over the two it overlaps; the template is still
# understood once, but neither generated phrasing is consumed on its own.
NEUTRAL_WORDS = (
    *("flaky", "sphinx", "wheel", "lint", "deploy", "kafka", "timeout", "docs", "api"),
    *("with", "runs", "that", "show", "me", "find", "workflows", "of", "for", "where"),
)
NOWS = st.datetimes(timezones=st.none() | st.just(UTC))


def _consumed(result: Understanding) -> list[str]:
    return [re.match(r'"(.*)" -> ', note).group(1) for note in result.interpretations]  # type: ignore[union-attr]


@settings(max_examples=150, deadline=None)
@given(
    st.text(
        st.characters(codec="utf-8") | st.sampled_from('0123456789$%<>=.,-:"\u017f\u212a '),
        max_size=80,
    ),
    NOWS,
)
def test_any_text_understands_to_a_filter_that_compiles(query: str, now: datetime) -> None:
    result = understand(query, VOCABULARY, now)
    compile_filter(result.filter_text, PATTERN_SCHEMA)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(PHRASES).map(lambda p: ("phrase", p))
        | st.sampled_from(NEUTRAL_WORDS).map(lambda w: ("word", w)),
        max_size=10,
    ),
    NOWS,
)
def test_phrasings_amid_other_words_are_consumed(
    items: list[tuple[str, str]], now: datetime
) -> None:
    query = " ".join(text for _, text in items)
    result = understand(query, VOCABULARY, now)
    compile_filter(result.filter_text, PATTERN_SCHEMA)
    consumed = [phrase.lower() for phrase in _consumed(result)]
    if datetime(1, 3, 1) <= now.replace(tzinfo=None) <= datetime(9999, 11, 1):
        # Away from the ends of the calendar every phrasing is understood.
        for kind, text in items:
            if kind == "phrase":
                assert any(text.lower() in phrase for phrase in consumed), (text, consumed)
    for phrase in consumed:
        assert not re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", result.remaining_query, re.I)


# --- combine ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "derived", "expected"),
    [
        ("", "", ""),
        ("  ", "", ""),
        ("success = true", "", "success = true"),
        ("", "agent_count > 3", "agent_count > 3"),
        ("success = true", "agent_count > 3", "success = true AND agent_count > 3"),
        (
            'tags:"x" OR tags:"y"',
            "agent_count > 3 AND success = false",
            '(tags:"x" OR tags:"y") AND (agent_count > 3 AND success = false)',
        ),
        ("NOT pinned = true", "agent_count>3", "NOT pinned = true AND agent_count > 3"),
    ],
)
def test_combine(user: str, derived: str, expected: str) -> None:
    combined = combine(user, derived)
    assert combined == expected
    if user.strip() and derived.strip():
        assert parse_filter(combined) == And((parse_filter(user), parse_filter(derived)))  # type: ignore[arg-type]


def test_combine_keeps_or_inside_its_group() -> None:
    # OR binds tighter than AND, yet the derived terms must hold for every match.
    combined = combine("success = true OR pinned = true", run("over $2").filter_text)
    tree = compile_filter(combined, PATTERN_SCHEMA)
    assert not matches(
        tree, {"success": True, "pinned": False, "total_cost_usd": 1.0}, PATTERN_SCHEMA
    )
    assert matches(tree, {"success": True, "pinned": False, "total_cost_usd": 3.0}, PATTERN_SCHEMA)


def test_combine_rejects_a_broken_filter() -> None:
    with pytest.raises(FilterError):
        combine("success = ", "agent_count > 3")
