"""Search quality on the labelled set: what a new user asks, measured.

One corpus of real runs (tests/support/search_corpus.py: all six templates,
many answer combinations, failures, escalations, every tier strategy,
SENSITIVE runs of the asker and of another user), made once for the module
through a real executor and memory service with authentication on. Every
labelled question (tests/support/search_questions.py: at least 150, in the
classes search must handle) is asked as its asker through SearchRuns, of the
memory service and of the executor's fallback over its run files.

Done when (issue 15): the memory service and the fallback return the same
runs in the same order for every question (the cross-check of
test_search_cross_check.py, grown to the whole set); mean precision at 5 is
at least 0.95 for each; no question comes back empty while runs match it.
And nobody is ever shown a run they may not see. Measures are defined in
tests/support/search_quality.py; `make bench` prints them per class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from attune.common.v1 import common_pb2
from tests.support.search_corpus import LabelledStack, labelled_stack
from tests.support.search_corpus_specs import ASKER, OTHER, builtin_templates
from tests.support.search_quality import (
    SOURCES,
    TOP,
    Answered,
    ask,
    ask_all,
    class_table,
    mean,
    shown,
)
from tests.support.search_questions import CLASSES, all_questions
from tests.support.search_questions_runs import SENSITIVE
from tests.support.search_truth import Question, escalated, failed, succeeded

# Building the corpus and asking everything takes a while on a loaded machine.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]
MIN_QUESTIONS = 150
MIN_PER_CLASS = 10
TARGET_PRECISION = 0.95
Answers = dict[str, list[Answered]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def labelled(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LabelledStack]:
    async with labelled_stack(tmp_path_factory.mktemp("labelled")) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def answers(labelled: LabelledStack) -> Answers:
    """Every question asked of both sources, one page of 100 each."""
    return await ask_all(labelled, all_questions())


async def test_the_yardstick_covers_every_class_and_kind_of_run(labelled: LabelledStack) -> None:
    questions = all_questions()
    assert len(questions) >= MIN_QUESTIONS
    per_class = Counter(question.kind for question in questions)
    assert set(per_class) == set(CLASSES)
    assert min(per_class.values()) >= MIN_PER_CLASS, per_class
    unanswerable = [q.label() for q in questions if not q.relevant(labelled.corpus)]
    assert not unanswerable, f"questions no visible run answers: {unanswerable}"

    runs = labelled.corpus.runs
    for template_id in builtin_templates():
        of_template = [run for run in runs if run.template == template_id]
        assert any(map(succeeded, of_template)), template_id
        assert any(map(failed, of_template)), template_id
    assert any(map(escalated, runs))
    used = {agent.tier_strategy for run in runs for agent in run.run.agents}
    template_strategies = {
        common_pb2.TIER_STRATEGY_CHEAP_ONLY,
        common_pb2.TIER_STRATEGY_PROGRESSIVE,
        common_pb2.TIER_STRATEGY_CAPABLE_FIRST,
        common_pb2.TIER_STRATEGY_PREMIUM_ONLY,
    }
    assert template_strategies <= used
    assert template_strategies <= {run.strategy for run in runs}  # Each as a run-wide choice too.
    for user in (ASKER, OTHER):
        mine = [run for run in runs if run.owner == user]
        assert any(run.sensitive for run in mine), user
        assert not all(run.sensitive for run in mine), user


def _disagreements(
    memory: list[Answered], fallback: list[Answered], labelled: LabelledStack
) -> list[str]:
    corpus = labelled.corpus
    return [
        f"{shown(m, corpus, 10)}\n    fallback: {shown(f, corpus, 10)}"
        for m, f in zip(memory, fallback, strict=True)
        if m.same_meaning() != f.same_meaning()
    ]


async def test_memory_and_fallback_return_the_same_runs_in_the_same_order(
    labelled: LabelledStack, answers: Answers
) -> None:
    """Every question, on a page of 100 and on a page of five (a cut through
    the merged order): the same ids in the same order, the same applied filter."""
    first_pages = await ask_all(labelled, all_questions(), page=TOP)
    differ = [
        *_disagreements(answers["memory"], answers["fallback"], labelled),
        *_disagreements(first_pages["memory"], first_pages["fallback"], labelled),
    ]
    assert not differ, f"{len(differ)} answers differ (memory, then fallback):\n" + "\n".join(
        differ
    )


@pytest.mark.parametrize("source", SOURCES)
async def test_mean_precision_at_5_reaches_the_target(
    labelled: LabelledStack, answers: Answers, source: str
) -> None:
    answered = answers[source]
    precision = mean([answer.precision for answer in answered])
    below = [shown(a, labelled.corpus) for a in answered if a.precision < 1]
    assert precision >= TARGET_PRECISION, (
        f"{source}: mean P@5 {precision:.3f} < {TARGET_PRECISION} over {len(answered)} questions\n"
        f"{class_table({source: answered}, CLASSES)}\n"
        f"{len(below)} questions below 1:\n" + "\n".join(below)
    )


@pytest.mark.parametrize("source", SOURCES)
async def test_no_question_comes_back_empty_while_runs_match(
    labelled: LabelledStack, answers: Answers, source: str
) -> None:
    empty = [shown(a, labelled.corpus) for a in answers[source] if a.empty]
    assert not empty, f"{source}: {len(empty)} questions found nothing:\n" + "\n".join(empty)


async def test_no_answer_shows_a_run_its_asker_may_not_see(
    labelled: LabelledStack, answers: Answers
) -> None:
    """Including every SENSITIVE best-match question asked by the other user."""
    corpus = labelled.corpus
    swapped = [
        Question(q.kind, q.text, q.truth, q.filter, OTHER if q.asker == ASKER else ASKER)
        for q in all_questions()
        if q.kind == SENSITIVE
    ]
    asked = [answer for answered in answers.values() for answer in answered]
    asked += [await ask(labelled, question, source) for question in swapped for source in SOURCES]
    leaks = []
    for answer in asked:
        hidden = {run.run_id for run in corpus.runs if not run.visible_to(answer.question.asker)}
        if shown_hidden := [run_id for run_id in answer.ids if run_id in hidden]:
            leaks.append(f"{answer.source}: {answer.question.label()!r} showed {shown_hidden}")
    assert not leaks, "\n".join(leaks)
