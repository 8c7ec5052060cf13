"""The labelled question set: every class of question the search must answer.

Each question has its class, its text (and maybe an explicit filter), who
asks, and a ground-truth predicate over the run's own fields
(search_truth.py). Classes: see the three modules; `CLASSES` lists them in
the order tables print them.
"""

from __future__ import annotations

from tests.support.search_questions_forms import AMBIGUOUS, OPTION_VALUE, form_questions
from tests.support.search_questions_runs import EXACT, PLAIN, SENSITIVE, TIERS, run_questions
from tests.support.search_questions_words import (
    FILLER,
    MISSPELLING,
    TEMPLATE_NAME,
    word_questions,
)
from tests.support.search_truth import Question

CLASSES = (
    FILLER,
    MISSPELLING,
    TEMPLATE_NAME,
    OPTION_VALUE,
    AMBIGUOUS,
    TIERS,
    SENSITIVE,
    PLAIN,
    EXACT,
)


def all_questions() -> list[Question]:
    """Every labelled question."""
    return [*word_questions(), *form_questions(), *run_questions()]
