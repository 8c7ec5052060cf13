"""Suggested answers for a form, and how similar two sets of answers are."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from executor_service.learning.facts import RunFact
from executor_service.learning.stats import Proportion
from executor_service.runs.forms import answer_problem, to_form_value
from executor_service.templates.models import Answer, QuestionType, Template

SESSION = "session"
SUCCESSFUL_RUNS = "successful_runs"
# The session's own latest choice is the best sign of what this user wants,
# but it is one observation, not a measured rate: high, short of certain.
SESSION_CONFIDENCE = 0.9


@dataclass(frozen=True)
class Suggestion:
    """A suggested answer to one question."""

    question_id: str
    value: Answer
    source: str
    confidence: float


def session_suggestions(
    template: Template, choices: Mapping[str, Answer], answered: Collection[str]
) -> list[Suggestion]:
    """The session's recent choices for the questions not answered yet.

    A remembered choice the form no longer accepts (an option since removed,
    a tighter bound) is dropped rather than suggested.
    """
    return [
        Suggestion(question.id, choices[question.id], SESSION, SESSION_CONFIDENCE)
        for question in template.questions
        if question.id not in answered
        and question.id in choices
        and answer_problem(question, to_form_value(choices[question.id])) is None
    ]


def run_suggestions(
    template: Template, runs: Iterable[RunFact], answered: Collection[str], min_runs: int
) -> list[Suggestion]:
    """For each unanswered question, the answer most successful runs gave.

    Its confidence is the Wilson lower bound of the share of successful runs
    that gave it, so a handful of runs never looks certain; with fewer than
    `min_runs` successful runs answering, there is no suggestion at all.
    Free-text questions are left out: their answers are other people's
    names and words, not choices to copy.
    """
    successful = [run for run in runs if run.template_id == template.id and run.succeeded]
    suggestions = []
    for question in template.questions:
        if question.type is QuestionType.TEXT or question.id in answered:
            continue
        given = [run.answers[question.id] for run in successful if question.id in run.answers]
        if len(given) < max(1, min_runs):
            continue
        counts = Counter(_key(value) for value in given)
        # Ties go to the value that sorts first, so the answer is stable.
        key, count = min(counts.items(), key=lambda item: (-item[1], repr(item[0])))
        value = _value(key, question.options)
        if answer_problem(question, to_form_value(value)) is not None:
            continue
        share = Proportion(count, len(given))
        suggestions.append(Suggestion(question.id, value, SUCCESSFUL_RUNS, share.lower))
    return suggestions


def similarity(ours: Mapping[str, Answer], theirs: Mapping[str, Answer]) -> float:
    """How alike two sets of answers are, in [0, 1].

    The mean agreement over every question either answered: 1 for equal
    answers, the Jaccard overlap for multi-select lists, 0 otherwise.
    """
    questions = set(ours) | set(theirs)
    if not questions:
        return 1.0
    return sum(_agreement(ours.get(q), theirs.get(q)) for q in questions) / len(questions)


def _agreement(one: Answer | None, other: Answer | None) -> float:
    if one is None or other is None:
        return 0.0
    if isinstance(one, list) and isinstance(other, list):
        union = set(one) | set(other)
        return len(set(one) & set(other)) / len(union) if union else 1.0
    # bool is an int subclass: True must not equal 1.0 here.
    if isinstance(one, bool) != isinstance(other, bool):
        return 0.0
    return 1.0 if one == other else 0.0


_Key = str | float | bool | tuple[str, ...]


def _key(value: Answer) -> _Key:
    # A multi-select answer is a set of options: order does not matter.
    return tuple(sorted(value)) if isinstance(value, list) else value


def _value(key: _Key, options: list[str]) -> Answer:
    if isinstance(key, tuple):
        order = {option: index for index, option in enumerate(options)}
        return sorted(key, key=lambda option: order.get(option, len(order)))
    return key
