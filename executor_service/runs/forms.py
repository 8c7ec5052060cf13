"""Answers to a template's form: conversion, validation and defaults."""

from __future__ import annotations

import math
from collections.abc import Mapping

from attune.common.v1 import common_pb2
from executor_service.templates.models import Answer, Question, QuestionType, Template

Violation = tuple[str, str]

_EXPECTED_KIND = {
    QuestionType.TEXT: "string_value",
    QuestionType.SINGLE_SELECT: "string_value",
    QuestionType.MULTI_SELECT: "string_list_value",
    QuestionType.BOOLEAN: "bool_value",
    QuestionType.NUMBER: "number_value",
}


def from_form_value(value: common_pb2.FormValue) -> Answer | None:
    """The Python value a FormValue carries; None if it carries nothing."""
    kind = value.WhichOneof("kind")
    if kind == "string_list_value":
        return list(value.string_list_value.values)
    if kind is None:
        return None
    answer: Answer = getattr(value, kind)
    return answer


def answer_text(answer: Answer) -> str:
    """An answer as people write it: lists comma-separated, true/false, 80 not 80.0."""
    if isinstance(answer, list):
        return ",".join(answer)
    if isinstance(answer, bool):
        return "true" if answer else "false"
    return f"{answer:g}" if isinstance(answer, float) else str(answer)


def to_form_value(answer: Answer) -> common_pb2.FormValue:
    """A FormValue carrying the Python value."""
    if isinstance(answer, bool):
        return common_pb2.FormValue(bool_value=answer)
    if isinstance(answer, int | float):
        return common_pb2.FormValue(number_value=float(answer))
    if isinstance(answer, str):
        return common_pb2.FormValue(string_value=answer)
    return common_pb2.FormValue(string_list_value=common_pb2.StringList(values=list(answer)))


# Answers travel in every run event, file and pattern: keep them bounded.
MAX_TEXT_ANSWER = 4096
MAX_ECHO = 60  # How much of a bad value an error message repeats.


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """Text as an error message may quote it: at most `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def answer_problem(question: Question, value: common_pb2.FormValue) -> str | None:
    """Why the value does not answer the question; None if it does."""
    kind = value.WhichOneof("kind")
    expected = _EXPECTED_KIND[question.type]
    if kind != expected:
        got = kind or "no value"
        return f"expects a {question.type.value} answer ({expected}), got {got}"
    if question.type is QuestionType.TEXT and question.required and not value.string_value.strip():
        return "required: must not be empty"
    if question.type is QuestionType.TEXT and len(value.string_value) > MAX_TEXT_ANSWER:
        return f"longer than the limit of {MAX_TEXT_ANSWER} characters"
    if question.type is QuestionType.SINGLE_SELECT and value.string_value not in question.options:
        offered = ", ".join(question.options)
        return f"{clip(value.string_value)!r} is not an option; choose one of {offered}"
    if question.type is QuestionType.MULTI_SELECT:
        chosen = list(value.string_list_value.values)
        unknown = [clip(option) for option in chosen if option not in question.options]
        if unknown:
            named = ", ".join(unknown[:5])
            if len(unknown) > 5:
                named += f" and {len(unknown) - 5} more"
            return f"not an option: {named}; choose from {', '.join(question.options)}"
        if len(set(chosen)) != len(chosen):
            return "an option is chosen more than once"
        if question.required and not chosen:
            return "required: choose at least one option"
    if question.type is QuestionType.NUMBER:
        number = value.number_value
        if not math.isfinite(number):  # NaN and infinities are no answer to any question.
            return "must be a finite number, not NaN or infinity"
        if question.min is not None and number < question.min:
            return f"{number:g} is below the minimum {question.min:g}"
        if question.max is not None and number > question.max:
            return f"{number:g} is above the maximum {question.max:g}"
    return None


def resolve_answers(
    template: Template, answers: Mapping[str, common_pb2.FormValue]
) -> tuple[dict[str, Answer], list[Violation]]:
    """The answers with defaults applied, and every violation at once.

    Each violation's field is the question id.
    """
    violations: list[Violation] = []
    known = {question.id for question in template.questions}
    unknown = sorted(set(answers) - known)
    for index, question_id in enumerate(unknown):
        # The form's questions are listed once, not once per unknown answer.
        hint = f"; the form asks {', '.join(sorted(known))}" if index == 0 else ""
        violations.append((clip(question_id), f"unknown question{hint}"))
    resolved: dict[str, Answer] = {}
    for question in template.questions:
        if question.id in answers:
            problem = answer_problem(question, answers[question.id])
            if problem:
                violations.append((question.id, problem))
                continue
            value = from_form_value(answers[question.id])
            if value is not None:
                resolved[question.id] = value
        elif question.default is not None:
            resolved[question.id] = question.default
        elif question.required:
            violations.append((question.id, "required: answer this question"))
    return resolved, violations
