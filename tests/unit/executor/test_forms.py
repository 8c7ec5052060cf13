"""Form answers against the built-in python_package_publish template."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from executor_service.runs.forms import from_form_value, resolve_answers, to_form_value
from executor_service.templates.catalog import load_builtin
from executor_service.templates.models import Answer, Template
from tests.support.helpers import PUBLISH_DEFAULT_ANSWERS


@pytest.fixture(scope="module")
def template() -> Template:
    found = load_builtin().get("python_package_publish")
    assert found is not None
    return found


def fv(answer: Answer) -> common_pb2.FormValue:
    return to_form_value(answer)


def violations_by_field(
    template: Template, answers: dict[str, common_pb2.FormValue]
) -> dict[str, str]:
    _, violations = resolve_answers(template, answers)
    fields = [field for field, _ in violations]
    assert len(fields) == len(set(fields)), f"one violation per field expected: {violations}"
    return dict(violations)


def test_minimal_answers_get_every_default(template: Template) -> None:
    resolved, violations = resolve_answers(template, {"package_name": fv("demo")})
    assert violations == []
    assert resolved == PUBLISH_DEFAULT_ANSWERS


def test_given_answers_override_defaults(template: Template) -> None:
    resolved, violations = resolve_answers(
        template,
        {
            "package_name": fv("demo"),
            "has_tests": fv(False),
            "test_coverage_required": fv(95),
            "quality_checks": fv(["bandit"]),
            "publish_target": fv("pypi"),
        },
    )
    assert violations == []
    assert resolved["has_tests"] is False
    assert resolved["test_coverage_required"] == 95.0
    assert resolved["quality_checks"] == ["bandit"]
    assert resolved["publish_target"] == "pypi"
    # Omitted optional answers still get their defaults.
    assert resolved["version_bump"] == "patch"
    assert resolved["update_changelog"] is True


def test_empty_multi_select_is_an_answer_not_a_default(template: Template) -> None:
    resolved, violations = resolve_answers(
        template, {"package_name": fv("demo"), "quality_checks": fv([])}
    )
    assert violations == []
    assert resolved["quality_checks"] == []


def test_unknown_question_is_a_violation(template: Template) -> None:
    found = violations_by_field(template, {"package_name": fv("demo"), "colour": fv("red")})
    assert set(found) == {"colour"}
    assert "unknown question" in found["colour"]


def test_missing_required_answer_is_a_violation(template: Template) -> None:
    resolved, violations = resolve_answers(template, {})
    assert [field for field, _ in violations] == ["package_name"]
    assert "required" in violations[0][1]
    assert "package_name" not in resolved
    # The defaults are still applied to the rest.
    assert resolved["version_bump"] == "patch"


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_blank_required_text_is_a_violation(template: Template, blank: str) -> None:
    found = violations_by_field(template, {"package_name": fv(blank)})
    assert set(found) == {"package_name"}
    assert "empty" in found["package_name"]


@pytest.mark.parametrize(
    ("question_id", "wrong", "expected_kind"),
    [
        ("package_name", 3.0, "string_value"),
        ("has_tests", "yes", "bool_value"),
        ("has_tests", 1.0, "bool_value"),
        ("test_coverage_required", True, "number_value"),
        ("test_coverage_required", "80", "number_value"),
        ("quality_checks", "mypy", "string_list_value"),
        ("version_bump", ["patch"], "string_value"),
        ("publish_target", False, "string_value"),
    ],
)
def test_wrong_type_is_a_violation(
    template: Template, question_id: str, wrong: Answer, expected_kind: str
) -> None:
    answers = {"package_name": fv("demo"), question_id: fv(wrong)}
    found = violations_by_field(template, answers)
    assert set(found) == {question_id}
    assert expected_kind in found[question_id]


def test_empty_form_value_is_a_wrong_type(template: Template) -> None:
    found = violations_by_field(
        template, {"package_name": fv("demo"), "has_tests": common_pb2.FormValue()}
    )
    assert set(found) == {"has_tests"}
    assert "no value" in found["has_tests"]


def test_single_select_option_not_offered(template: Template) -> None:
    found = violations_by_field(template, {"package_name": fv("demo"), "version_bump": fv("huge")})
    assert set(found) == {"version_bump"}
    assert "'huge' is not an option" in found["version_bump"]


def test_single_select_is_case_sensitive(template: Template) -> None:
    found = violations_by_field(
        template, {"package_name": fv("demo"), "publish_target": fv("PyPI")}
    )
    assert set(found) == {"publish_target"}


def test_multi_select_option_not_offered(template: Template) -> None:
    found = violations_by_field(
        template, {"package_name": fv("demo"), "quality_checks": fv(["mypy", "pylint"])}
    )
    assert set(found) == {"quality_checks"}
    assert "pylint" in found["quality_checks"]
    assert "'mypy'" not in found["quality_checks"].split("not among")[0]


def test_multi_select_duplicate_option(template: Template) -> None:
    found = violations_by_field(
        template, {"package_name": fv("demo"), "quality_checks": fv(["ruff", "mypy", "ruff"])}
    )
    assert set(found) == {"quality_checks"}
    assert "more than once" in found["quality_checks"]


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (-0.5, "below the minimum 0"),
        (-100.0, "below the minimum"),
        (100.5, "above the maximum 100"),
    ],
)
def test_number_out_of_range(template: Template, number: float, words: str) -> None:
    found = violations_by_field(
        template, {"package_name": fv("demo"), "test_coverage_required": fv(number)}
    )
    assert set(found) == {"test_coverage_required"}
    assert words in found["test_coverage_required"]


@pytest.mark.parametrize("number", [0.0, 100.0, 42.5])
def test_number_bounds_are_inclusive(template: Template, number: float) -> None:
    resolved, violations = resolve_answers(
        template, {"package_name": fv("demo"), "test_coverage_required": fv(number)}
    )
    assert violations == []
    assert resolved["test_coverage_required"] == number


@pytest.mark.parametrize("number", [math.inf, -math.inf])
def test_infinite_number_is_out_of_range(template: Template, number: float) -> None:
    found = violations_by_field(
        template, {"package_name": fv("demo"), "test_coverage_required": fv(number)}
    )
    assert set(found) == {"test_coverage_required"}


def test_nan_is_a_violation(template: Template) -> None:
    found = violations_by_field(
        template, {"package_name": fv("demo"), "test_coverage_required": fv(math.nan)}
    )
    assert set(found) == {"test_coverage_required"}
    assert "NaN" in found["test_coverage_required"]


def test_every_violation_is_reported_at_once(template: Template) -> None:
    resolved, violations = resolve_answers(
        template,
        {
            # package_name omitted: required.
            "has_tests": fv("yes"),
            "test_coverage_required": fv(101),
            "quality_checks": fv(["mypy", "mypy"]),
            "version_bump": fv("huge"),
            "publish_target": fv(["pypi"]),
            "create_git_tag": fv(True),
            "zzz_unknown": fv(1),
            "aaa_unknown": fv("x"),
        },
    )
    fields = [field for field, _ in violations]
    assert sorted(fields) == sorted(
        [
            "aaa_unknown",
            "zzz_unknown",
            "package_name",
            "has_tests",
            "test_coverage_required",
            "quality_checks",
            "version_bump",
            "publish_target",
        ]
    )
    assert len(fields) == len(set(fields))
    # The one valid answer and the untouched defaults still resolve; bad ones do not.
    assert resolved == {"create_git_tag": True, "update_changelog": True}


def test_violations_come_in_a_stable_order(template: Template) -> None:
    answers = {
        "zeta": fv(1),
        "alpha": fv(1),
        "version_bump": fv("huge"),
        "has_tests": fv("yes"),
    }
    _, first = resolve_answers(template, answers)
    _, again = resolve_answers(template, dict(reversed(answers.items())))
    assert first == again
    # Unknown questions first (sorted), then the form's questions in form order.
    assert [field for field, _ in first] == [
        "alpha",
        "zeta",
        "package_name",
        "has_tests",
        "version_bump",
    ]


# --- FormValue conversion ---------------------------------------------------------------

answers_strategy = st.one_of(
    st.text(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.text(), max_size=8),
)


@settings(max_examples=200)
@given(answers_strategy)
def test_form_value_round_trip(answer: Answer) -> None:
    value = to_form_value(answer)
    back = from_form_value(value)
    assert type(back) is type(answer)
    assert back == answer
    # Also across the wire.
    wire = common_pb2.FormValue.FromString(value.SerializeToString())
    assert from_form_value(wire) == answer


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (True, "bool_value"),
        (False, "bool_value"),
        (0.0, "number_value"),
        (7, "number_value"),
        ("", "string_value"),
        ([], "string_list_value"),
        (["a", "b"], "string_list_value"),
    ],
)
def test_to_form_value_picks_the_right_kind(answer: Answer, kind: str) -> None:
    assert to_form_value(answer).WhichOneof("kind") == kind


def test_integer_becomes_a_float_and_bool_stays_a_bool() -> None:
    assert from_form_value(to_form_value(7)) == 7.0
    assert isinstance(from_form_value(to_form_value(7)), float)
    assert from_form_value(to_form_value(True)) is True


def test_empty_form_value_carries_nothing() -> None:
    assert from_form_value(common_pb2.FormValue()) is None
