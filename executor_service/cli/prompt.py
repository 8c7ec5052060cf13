"""--interactive: asks each unanswered question, re-asking until the answer is valid."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rich.console import Console
from rich.prompt import Prompt
from rich.text import Text

from attune.executor.v1 import executor_pb2
from executor_service.cli.answers import (
    AnswerError,
    FormValue,
    Question,
    check,
    format_number,
    format_value,
    parse_text,
    type_name,
)

# Reads one line: (console, prompt, default or None) -> the line.
Ask = Callable[[Console, str, str | None], str]
# Typed at a multi-select prompt to choose no option even when there is a default.
NONE_CHOSEN = "-"


def rich_ask(console: Console, prompt: str, default: str | None) -> str:
    """One line from the user through rich's Prompt."""
    label = Text(prompt)  # A Text, so rich reads no markup in it.
    if default is None:
        return str(Prompt.ask(label, console=console))
    return str(Prompt.ask(label, console=console, default=default))


def describe(question: Question, position: int, total: int) -> Text:
    """The question with its help, options, range and whether it is required."""
    text = Text.assemble((f"[{position}/{total}] ", "dim"), (question.text, "bold"))
    details = [f"{question.id}, {type_name(question)}"]
    if question.options:
        details.append("options: " + ", ".join(question.options))
    if question.HasField("min") or question.HasField("max"):
        low = format_number(question.min) if question.HasField("min") else "-inf"
        high = format_number(question.max) if question.HasField("max") else "inf"
        details.append(f"range {low}..{high}")
    if question.type == executor_pb2.QUESTION_TYPE_MULTI_SELECT:
        details.append(f"comma-separated, {NONE_CHOSEN} for none")
    if question.type == executor_pb2.QUESTION_TYPE_BOOLEAN:
        details.append("yes/no")
    if question.required:
        details.append("required")
    text.append("\n  " + "; ".join(details), style="dim")
    if question.help:
        text.append("\n  " + question.help, style="italic")
    return text


def interpret(question: Question, line: str, default: str | None) -> FormValue | None:
    """The typed, checked answer; None to leave the question unanswered."""
    if question.type == executor_pb2.QUESTION_TYPE_MULTI_SELECT and line.strip() == NONE_CHOSEN:
        line = ""
    elif not line.strip():
        if default is not None:
            line = default
        elif question.required:
            raise AnswerError([(question.id, "required: answer this question")])
        else:
            return None
    value = parse_text(question, line)
    problem = check(question, value)
    if problem:
        raise AnswerError([(question.id, problem)])
    return value


def ask_question(
    question: Question, position: int, total: int, console: Console, ask: Ask = rich_ask
) -> FormValue | None:
    """Asks until the answer is valid; None when an optional question is skipped."""
    default = format_value(question.default_value) if question.HasField("default_value") else None
    console.print(describe(question, position, total))
    while True:
        line = ask(console, f"  {question.id}", default)
        try:
            return interpret(question, line, default)
        except AnswerError as error:
            for _, problem in error.violations:
                console.print(Text(f"  invalid: {problem}; try again", style="red"))


def ask_answers(
    questions: Sequence[Question],
    given: Mapping[str, FormValue],
    console: Console,
    ask: Ask = rich_ask,
) -> dict[str, FormValue]:
    """The given answers plus an answer for each question not given."""
    answers = dict(given)
    pending = [question for question in questions if question.id not in given]
    for position, question in enumerate(pending, start=1):
        value = ask_question(question, position, len(pending), console, ask)
        if value is not None:
            answers[question.id] = value
    return answers
