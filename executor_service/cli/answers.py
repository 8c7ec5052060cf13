"""Answers for the CLI: typed by the template's questions, from flags and files.

Only the type of an answer is checked here, so that a malformed value is
reported before anything is sent. Options, ranges and required answers are
the server's to judge: it reports every violation at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.convert.templates import question_from_proto
from executor_service.runs.forms import answer_problem

Violation = tuple[str, str]
FormValue = common_pb2.FormValue
Question = executor_pb2.Question

TYPE_NAMES: dict[executor_pb2.QuestionType.ValueType, str] = {
    executor_pb2.QUESTION_TYPE_TEXT: "text",
    executor_pb2.QUESTION_TYPE_SINGLE_SELECT: "single_select",
    executor_pb2.QUESTION_TYPE_MULTI_SELECT: "multi_select",
    executor_pb2.QUESTION_TYPE_BOOLEAN: "boolean",
    executor_pb2.QUESTION_TYPE_NUMBER: "number",
}
TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "0"})


class AnswerError(Exception):
    """Answers that cannot be sent: (question id, problem) pairs."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in violations))
        self.violations = list(violations)


def _fail(question: Question, problem: str) -> AnswerError:
    return AnswerError([(question.id, problem)])


def type_name(question: Question) -> str:
    """The question's type as the templates spell it, e.g. "multi_select"."""
    return TYPE_NAMES.get(question.type, "unspecified")


def _number_value(question_id: str, number: float) -> FormValue:
    if not math.isfinite(number):
        raise AnswerError([(question_id, f"expects a finite number, got {number!r}")])
    return FormValue(number_value=number)


def parse_text(question: Question, text: str) -> FormValue:
    """The answer typed as text (flag or prompt), typed by the question."""
    kind = question.type
    if kind == executor_pb2.QUESTION_TYPE_NUMBER:
        try:
            number = float(text.strip())
        except ValueError:
            raise _fail(question, f"expects a number, got {text!r}") from None
        return _number_value(question.id, number)
    if kind == executor_pb2.QUESTION_TYPE_BOOLEAN:
        word = text.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return FormValue(bool_value=word in TRUE_WORDS)
        raise _fail(question, f"expects true/false/yes/no/1/0, got {text!r}")
    if kind == executor_pb2.QUESTION_TYPE_MULTI_SELECT:
        chosen = [part.strip() for part in text.split(",") if part.strip()]
        return FormValue(string_list_value=common_pb2.StringList(values=chosen))
    return FormValue(string_value=text)


def parse_value(question: Question, value: object) -> FormValue:
    """An answer from an answers file (JSON or YAML), typed by the question."""
    if isinstance(value, str):
        return parse_text(question, value)
    kind = question.type
    # bool is an int in Python; it only answers boolean questions.
    if kind == executor_pb2.QUESTION_TYPE_BOOLEAN and isinstance(value, bool):
        return FormValue(bool_value=value)
    if isinstance(value, bool) or value is None:
        raise _fail(question, f"expects a {type_name(question)} answer, got {value!r}")
    if kind == executor_pb2.QUESTION_TYPE_NUMBER and isinstance(value, int | float):
        try:
            return _number_value(question.id, float(value))
        except OverflowError:
            raise _fail(question, "the number is too large") from None
    if kind == executor_pb2.QUESTION_TYPE_MULTI_SELECT and isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise _fail(question, f"expects a list of option names, got {value!r}")
        return FormValue(string_list_value=common_pb2.StringList(values=value))
    if kind in (executor_pb2.QUESTION_TYPE_TEXT, executor_pb2.QUESTION_TYPE_SINGLE_SELECT):
        if isinstance(value, int):  # YAML reads `version: 2` as an int; no precision is lost.
            return FormValue(string_value=str(value))
        raise _fail(question, f"expects text, got {value!r}; quote it in the answers file")
    raise _fail(question, f"expects a {type_name(question)} answer, got {value!r}")


def _untyped(question_id: str, value: object) -> FormValue:
    """A value for a question the template does not ask: the server reports it."""
    if isinstance(value, bool):
        return FormValue(bool_value=value)
    if isinstance(value, int | float):
        try:
            return _number_value(question_id, float(value))
        except OverflowError:
            raise AnswerError([(question_id, "the number is too large")]) from None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return FormValue(string_list_value=common_pb2.StringList(values=value))
    if isinstance(value, str):
        return FormValue(string_value=value)
    raise AnswerError([(question_id, f"unsupported answer {value!r}")])


def split_assignment(item: str) -> tuple[str, str]:
    """`question=value` from --answer, split at the first `=`."""
    question_id, sep, value = item.partition("=")
    if not sep or not question_id.strip():
        raise AnswerError([("--answer", f"expected QUESTION=VALUE, got {item!r}")])
    return question_id.strip(), value


def load_answers_file(path: Path) -> dict[str, object]:
    """A JSON or YAML mapping of question id to answer."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AnswerError([("--answers-file", f"cannot read {path}: {error.strerror}")]) from None
    except UnicodeDecodeError:
        raise AnswerError([("--answers-file", f"{path} is not UTF-8 text")]) from None
    try:
        # JSON files get JSON's error messages; anything else is read as YAML.
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise AnswerError([("--answers-file", f"{path} is not valid: {error}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise AnswerError(
            [("--answers-file", f"{path} must hold a mapping of question id to answer")]
        )
    return data


def collect_answers(
    questions: Iterable[Question],
    file_values: Mapping[str, object],
    assignments: Sequence[str],
) -> dict[str, FormValue]:
    """Every answer typed; --answer overrides the file. Raises every problem at once."""
    by_id = {question.id: question for question in questions}
    raw: dict[str, object] = dict(file_values)
    problems: list[Violation] = []
    for item in assignments:
        try:
            question_id, text = split_assignment(item)
        except AnswerError as error:
            problems += error.violations
            continue
        raw[question_id] = text
    answers: dict[str, FormValue] = {}
    for question_id, value in raw.items():
        question = by_id.get(question_id)
        try:
            answers[question_id] = (
                parse_value(question, value) if question else _untyped(question_id, value)
            )
        except AnswerError as error:
            problems += error.violations
    if problems:
        raise AnswerError(problems)
    return answers


def check(question: Question, value: FormValue) -> str | None:
    """Why a typed answer is not acceptable (option, range, emptiness); None if it is.

    The executor's own rules, so a prompt rejects exactly what the server would.
    """
    return answer_problem(question_from_proto(question), value)


def format_number(number: float) -> str:
    """A number as a person writes it: 80, not 80.0; exact otherwise."""
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def format_value(value: FormValue) -> str:
    """A FormValue as text, in the form parse_text reads back."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return format_number(value.number_value)
    if kind == "bool_value":
        return "yes" if value.bool_value else "no"
    if kind == "string_list_value":
        return ",".join(value.string_list_value.values)
    return ""
