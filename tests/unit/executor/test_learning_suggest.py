"""Suggested answers (session and successful runs) and answer similarity."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor_service.learning.facts import RunFact
from executor_service.learning.suggest import (
    SESSION_CONFIDENCE,
    Suggestion,
    run_suggestions,
    session_suggestions,
    similarity,
)
from executor_service.templates.catalog import load_catalog
from executor_service.templates.models import Answer, Template


def publish_template() -> Template:
    template = load_catalog(None).catalog.get("python_package_publish")
    assert template is not None
    return template


def fact(answers: Mapping[str, Answer], succeeded: bool = True, template: str = "") -> RunFact:
    return RunFact(
        run_id="r",
        template_id=template or "python_package_publish",
        runner="simulated",
        succeeded=succeeded,
        create_time=datetime(2026, 1, 5, tzinfo=UTC),
        total_cost_usd=0.0,
        answers=MappingProxyType(dict(answers)),
    )


def test_session_choices_fill_unanswered_questions_the_form_still_accepts() -> None:
    choices: dict[str, Answer] = {
        "package_name": "attune",
        "version_bump": "minor",
        "publish_target": "artifactory",  # No longer an option: dropped.
        "retired_question": True,  # No longer asked: dropped.
        "has_tests": False,  # Answered in the request: not suggested.
    }
    found = session_suggestions(publish_template(), choices, answered=["has_tests"])
    assert found == [
        Suggestion("package_name", "attune", "session", SESSION_CONFIDENCE),
        Suggestion("version_bump", "minor", "session", SESSION_CONFIDENCE),
    ]


def test_successful_runs_suggest_their_most_common_answer() -> None:
    runs = [fact({"version_bump": "minor", "package_name": "a"}) for _ in range(8)]
    runs += [fact({"version_bump": "patch", "package_name": "b"}) for _ in range(4)]
    # Failed runs and other templates' runs are no evidence.
    runs += [fact({"version_bump": "major"}, succeeded=False) for _ in range(20)]
    runs += [fact({"version_bump": "major"}, template="other") for _ in range(20)]
    found = run_suggestions(publish_template(), runs, answered=[], min_runs=10)
    by_question = {s.question_id: s for s in found}
    minor = by_question["version_bump"]
    assert (minor.value, minor.source) == ("minor", "successful_runs")
    # The Wilson lower bound of 8 out of 12: centre 0.62625, half-width 0.23564.
    assert minor.confidence == pytest.approx(0.3906, abs=5e-5)
    # Free text is never copied from other runs.
    assert "package_name" not in by_question


def test_too_few_successful_runs_suggest_nothing() -> None:
    runs = [fact({"version_bump": "minor"}) for _ in range(9)]
    assert run_suggestions(publish_template(), runs, answered=[], min_runs=10) == []


def test_multi_select_answers_count_as_sets_in_the_form_order() -> None:
    runs = [fact({"quality_checks": ["ruff", "mypy"]}) for _ in range(6)]
    runs += [fact({"quality_checks": ["mypy", "ruff"]}) for _ in range(6)]
    found = run_suggestions(publish_template(), runs, answered=["version_bump"], min_runs=10)
    checks = next(s for s in found if s.question_id == "quality_checks")
    assert checks.value == ["mypy", "ruff"]
    # 12 of 12: 12 / (12 + 1.96^2) = 0.7575.
    assert checks.confidence == pytest.approx(0.7575, abs=5e-5)


def test_answered_questions_get_no_suggestion() -> None:
    runs = [fact({"version_bump": "minor"}) for _ in range(12)]
    assert run_suggestions(publish_template(), runs, answered=["version_bump"], min_runs=10) == []


def test_similarity() -> None:
    ours: dict[str, Answer] = {"a": "x", "b": True, "c": ["m", "n"]}
    assert similarity(ours, ours) == 1.0
    # a equal, b differs, c overlaps one of three options: (1 + 0 + 1/3) / 3.
    theirs: dict[str, Answer] = {"a": "x", "b": False, "c": ["n", "o"]}
    assert similarity(ours, theirs) == pytest.approx((1 + 0 + 1 / 3) / 3)
    # A question only one side answered counts as disagreement.
    assert similarity({"a": "x"}, {"a": "x", "d": 1.0}) == 0.5
    # True is not 1.0.
    assert similarity({"a": True}, {"a": 1.0}) == 0.0
    assert similarity({}, {}) == 1.0


answers = st.dictionaries(
    st.sampled_from("abcde"),
    st.one_of(
        st.booleans(),
        st.sampled_from(["x", "y"]),
        st.sampled_from([1.0, 2.0]),
        st.lists(st.sampled_from("mno"), unique=True),
    ),
)


@given(answers, answers)
def test_similarity_is_symmetric_and_bounded(
    ours: dict[str, Answer], theirs: dict[str, Answer]
) -> None:
    assert similarity(ours, theirs) == pytest.approx(similarity(theirs, ours))
    assert 0.0 <= similarity(ours, theirs) <= 1.0
    assert similarity(ours, ours) == 1.0
