"""The CLI's answers: typed by question, from flags, files and prompts."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.cli.answers import (
    AnswerError,
    check,
    collect_answers,
    format_value,
    load_answers_file,
    parse_text,
    parse_value,
)
from executor_service.cli.prompt import ask_answers, interpret

FormValue = common_pb2.FormValue
T = TypeVar("T")

NAME = executor_pb2.Question(id="package_name", type=executor_pb2.QUESTION_TYPE_TEXT, required=True)
HAS_TESTS = executor_pb2.Question(
    id="has_tests",
    type=executor_pb2.QUESTION_TYPE_BOOLEAN,
    default_value=FormValue(bool_value=True),
)
COVERAGE = executor_pb2.Question(
    id="coverage",
    type=executor_pb2.QUESTION_TYPE_NUMBER,
    min=0,
    max=100,
    default_value=FormValue(number_value=80),
)
CHECKS = executor_pb2.Question(
    id="checks",
    type=executor_pb2.QUESTION_TYPE_MULTI_SELECT,
    options=["mypy", "ruff", "bandit"],
    default_value=FormValue(string_list_value=common_pb2.StringList(values=["mypy", "ruff"])),
)
BUMP = executor_pb2.Question(
    id="bump",
    type=executor_pb2.QUESTION_TYPE_SINGLE_SELECT,
    options=["patch", "minor", "none"],
    default_value=FormValue(string_value="patch"),
)
NOTES = executor_pb2.Question(id="notes", type=executor_pb2.QUESTION_TYPE_TEXT)
QUESTIONS = [NAME, HAS_TESTS, COVERAGE, CHECKS, BUMP, NOTES]


def problems(error: pytest.ExceptionInfo[AnswerError]) -> dict[str, str]:
    return dict(error.value.violations)


# --- typing text -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("80", 80.0), (" 12.5 ", 12.5), ("-0", -0.0), ("1e2", 100.0), ("1_000", 1000.0)],
)
def test_number_text_parses_to_a_float(text: str, expected: float) -> None:
    assert parse_text(COVERAGE, text).number_value == expected


@pytest.mark.parametrize("text", ["", "abc", "80%", "nan", "inf", "-Infinity", "1,5"])
def test_number_text_that_is_not_a_finite_number_names_the_question(text: str) -> None:
    with pytest.raises(AnswerError) as error:
        parse_text(COVERAGE, text)
    assert list(problems(error)) == ["coverage"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("yes", True),
        ("1", True),
        ("YES", True),
        (" y ", True),
        ("false", False),
        ("no", False),
        ("0", False),
        ("No", False),
    ],
)
def test_boolean_words(text: str, expected: bool) -> None:
    value = parse_text(HAS_TESTS, text)
    assert value.WhichOneof("kind") == "bool_value"
    assert value.bool_value is expected


def test_boolean_rejects_maybe_with_the_question_id() -> None:
    with pytest.raises(AnswerError) as error:
        parse_text(HAS_TESTS, "maybe")
    assert "maybe" in problems(error)["has_tests"]


def test_multi_select_is_comma_separated_and_trimmed() -> None:
    assert list(parse_text(CHECKS, "mypy, ruff ,,bandit").string_list_value.values) == [
        "mypy",
        "ruff",
        "bandit",
    ]
    empty = parse_text(CHECKS, "")
    assert empty.WhichOneof("kind") == "string_list_value"
    assert list(empty.string_list_value.values) == []


def test_text_and_single_select_stay_strings() -> None:
    assert parse_text(NAME, " my pkg ").string_value == " my pkg "
    # Whether it is an option is the server's (or the prompt's) to judge.
    assert parse_text(BUMP, "huge").string_value == "huge"


# --- typing file values ------------------------------------------------------


def test_file_values_of_native_types() -> None:
    assert parse_value(HAS_TESTS, False).bool_value is False
    assert parse_value(COVERAGE, 90).number_value == 90.0
    assert parse_value(COVERAGE, "90.5").number_value == 90.5
    assert list(parse_value(CHECKS, ["ruff"]).string_list_value.values) == ["ruff"]
    assert list(parse_value(CHECKS, "mypy,ruff").string_list_value.values) == ["mypy", "ruff"]
    assert parse_value(NAME, 2).string_value == "2"
    assert parse_value(HAS_TESTS, "no").bool_value is False


@pytest.mark.parametrize(
    ("question", "value"),
    [
        (COVERAGE, True),  # A bool is an int in Python, never a number answer.
        (COVERAGE, 10**400),
        (COVERAGE, math.nan),
        (HAS_TESTS, 1),
        (CHECKS, ["mypy", 3]),
        (CHECKS, {"a": 1}),
        (NAME, 1.5),
        (NAME, None),
        (BUMP, ["patch"]),
    ],
)
def test_file_values_of_the_wrong_type_name_the_question(
    question: executor_pb2.Question, value: object
) -> None:
    with pytest.raises(AnswerError) as error:
        parse_value(question, value)
    assert list(problems(error)) == [question.id]


# --- collecting --------------------------------------------------------------


def test_answer_flags_override_the_file() -> None:
    answers = collect_answers(
        QUESTIONS,
        {"package_name": "from-file", "coverage": 90, "checks": ["bandit"]},
        ["package_name=from-flag", "has_tests=no"],
    )
    assert answers["package_name"].string_value == "from-flag"
    assert answers["coverage"].number_value == 90.0
    assert list(answers["checks"].string_list_value.values) == ["bandit"]
    assert answers["has_tests"].bool_value is False


def test_a_value_may_contain_equals_signs() -> None:
    assert collect_answers(QUESTIONS, {}, ["notes=a=b"])["notes"].string_value == "a=b"


def test_unknown_questions_are_passed_on_for_the_server_to_report() -> None:
    answers = collect_answers(QUESTIONS, {"extra_list": ["a"]}, ["nonsense=1"])
    assert answers["nonsense"].string_value == "1"
    assert list(answers["extra_list"].string_list_value.values) == ["a"]


def test_every_local_problem_is_reported_at_once() -> None:
    with pytest.raises(AnswerError) as error:
        collect_answers(
            QUESTIONS, {"coverage": "lots"}, ["has_tests=maybe", "no-equals-sign", "=x"]
        )
    found = error.value.violations
    assert [field for field, _ in found] == ["--answer", "--answer", "coverage", "has_tests"]


# --- answers files -----------------------------------------------------------


def test_answers_file_json_and_yaml(tmp_path: Path) -> None:
    json_file = tmp_path / "answers.json"
    json_file.write_text('{"package_name": "x", "checks": ["mypy"], "coverage": 70}')
    yaml_file = tmp_path / "answers.yaml"
    yaml_file.write_text("package_name: x\nchecks: [mypy]\ncoverage: 70\n")
    expected = {"package_name": "x", "checks": ["mypy"], "coverage": 70}
    assert load_answers_file(json_file) == expected
    assert load_answers_file(yaml_file) == expected
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_answers_file(empty) == {}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("list.yaml", "- a\n- b\n"),
        ("bad.json", "{nope"),
        ("bad.yaml", "a: [1\n"),
        ("int.yaml", "1: a"),
    ],
)
def test_bad_answers_files_are_answer_errors(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(AnswerError) as error:
        load_answers_file(path)
    assert list(problems(error)) == ["--answers-file"]


def test_unreadable_answers_files_are_answer_errors(tmp_path: Path) -> None:
    with pytest.raises(AnswerError, match="cannot read"):
        load_answers_file(tmp_path / "absent.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(AnswerError, match="not UTF-8"):
        load_answers_file(binary)


def test_huge_numbers_for_unknown_questions_are_answer_errors() -> None:
    with pytest.raises(AnswerError, match="too large"):
        collect_answers(QUESTIONS, {"unknown": 10**400}, [])


# --- checking and prompting --------------------------------------------------


def test_check_mirrors_the_server_rules() -> None:
    assert check(COVERAGE, FormValue(number_value=150)) == "150 is above the maximum 100"
    assert check(COVERAGE, FormValue(number_value=-1)) == "-1 is below the minimum 0"
    assert check(COVERAGE, FormValue(number_value=100)) is None
    assert "pylint" in (check(CHECKS, parse_text(CHECKS, "mypy,pylint")) or "")
    assert "more than once" in (check(CHECKS, parse_text(CHECKS, "mypy,mypy")) or "")
    assert "not an option" in (check(BUMP, FormValue(string_value="huge")) or "")
    assert check(NAME, FormValue(string_value="  ")) == "required: must not be empty"
    assert check(NOTES, FormValue(string_value="")) is None


def test_interpret_uses_defaults_and_skips_optional_questions() -> None:
    assert interpret(COVERAGE, "", "80") == FormValue(number_value=80)
    assert interpret(NOTES, "  ", None) is None
    none_chosen = interpret(CHECKS, "-", "mypy,ruff")
    assert none_chosen is not None
    assert list(none_chosen.string_list_value.values) == []
    with pytest.raises(AnswerError, match="required"):
        interpret(NAME, "", None)


def test_ask_answers_re_asks_until_valid_and_skips_given_answers() -> None:
    replies = iter(["", "demo", "maybe", "no", "150", "55", "mypy,pylint", "ruff", "", ""])
    asked: list[str] = []

    def ask(console: Console, prompt: str, default: str | None) -> str:
        asked.append(prompt.strip())
        return next(replies)

    console = Console(file=io.StringIO(), width=120)
    given = {"bump": FormValue(string_value="minor")}
    answers = ask_answers(QUESTIONS, given, console, ask)
    assert asked == [
        "package_name",
        "package_name",
        "has_tests",
        "has_tests",
        "coverage",
        "coverage",
        "checks",
        "checks",
        "notes",
    ]
    assert answers["package_name"].string_value == "demo"
    assert answers["has_tests"].bool_value is False
    assert answers["coverage"].number_value == 55
    assert list(answers["checks"].string_list_value.values) == ["ruff"]
    assert answers["bump"].string_value == "minor"
    assert "notes" not in answers  # Optional, left empty: the server applies no answer.
    assert next(replies) == ""  # Exactly one reply was left over.
    assert console.file.getvalue().count("invalid:") == 4  # type: ignore[attr-defined]


def test_format_value_reads_back() -> None:
    for question, text in [(COVERAGE, "12.5"), (HAS_TESTS, "no"), (CHECKS, "mypy,ruff")]:
        value = parse_text(question, text)
        assert parse_text(question, format_value(value)) == value


# --- properties --------------------------------------------------------------


def attempt(call: Callable[[], T]) -> T | AnswerError:
    """The call's result, or the AnswerError it raised; anything else propagates."""
    try:
        return call()
    except AnswerError as error:
        return error


@given(st.floats(min_value=0, max_value=100))
def test_any_number_within_bounds_parses_back_equal(number: float) -> None:
    for text in (repr(number), str(number), f" {number!r} "):
        value = parse_text(COVERAGE, text)
        assert value.number_value == number
        assert check(COVERAGE, value) is None


@given(st.sampled_from(QUESTIONS), st.text())
def test_garbage_text_is_an_answer_or_an_answer_error(
    question: executor_pb2.Question, text: str
) -> None:
    for outcome in (
        attempt(lambda: parse_text(question, text)),
        attempt(lambda: interpret(question, text, None)),
    ):
        if isinstance(outcome, AnswerError):
            assert outcome.violations
            assert all(field == question.id for field, _ in outcome.violations)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.sampled_from([q.id for q in QUESTIONS] + ["unknown"]), json_values, max_size=6
    ),
    st.lists(st.text(), max_size=4),
)
def test_garbage_files_and_flags_are_answers_or_an_answer_error(
    file_values: dict[str, object], assignments: list[str]
) -> None:
    outcome = attempt(lambda: collect_answers(QUESTIONS, file_values, assignments))
    if isinstance(outcome, AnswerError):
        assert outcome.violations
    else:
        assert all(value.WhichOneof("kind") for value in outcome.values())
