"""Asking the labelled questions, and how well they were answered.

Each question is asked as its asker through the executor's SearchRuns, as a
user asks: in MEMORY mode (the memory service answers) and in LOCAL_FILES
mode (the executor's fallback over its run files), one page of 100.

Measures, per question and source:

- precision at 5: the relevant runs among the first five results, over
  min(5, |relevant|). A question with fewer than five relevant runs is
  perfect when all of them are in the first five; results fewer than five
  count against it when more relevant runs exist (a page of three relevant
  runs where ten exist scores 3/5). Only questions with relevant runs are
  asked (the yardstick checks that), so the measure is always defined.
- recall: the relevant runs in the page of 100, over |relevant|.
- empty: no result although relevant runs exist.

A question the service refuses (for example INVALID_ARGUMENT) counts as
answered with nothing, its error kept for the report.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grpc

from attune.executor.v1 import executor_pb2
from tests.support.search_corpus import Corpus, LabelledStack
from tests.support.search_truth import Question

TOP = 5
PAGE = 100
SOURCES = {
    "memory": executor_pb2.SEARCH_RUNS_MODE_MEMORY,
    "fallback": executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES,
}
# Relative times are planned to the second on each side, a call apart.
_TIMESTAMP = re.compile(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"')


@dataclass(frozen=True)
class Answered:
    """What one source returned for one question."""

    question: Question
    source: str
    ids: tuple[str, ...]
    relevant: frozenset[str]
    applied_filter: str = ""
    error: str = ""

    @property
    def precision(self) -> float:
        found = sum(1 for run_id in self.ids[:TOP] if run_id in self.relevant)
        return found / min(TOP, len(self.relevant))

    @property
    def recall(self) -> float:
        return sum(1 for run_id in self.ids if run_id in self.relevant) / len(self.relevant)

    @property
    def empty(self) -> bool:
        return not self.ids and bool(self.relevant)

    def same_meaning(self) -> tuple[tuple[str, ...], str]:
        """The ids in order and the applied filter, relative times blurred."""
        return self.ids, _TIMESTAMP.sub('"<relative time>"', self.applied_filter)


async def ask(
    labelled: LabelledStack, question: Question, source: str, page: int = PAGE
) -> Answered:
    """The question asked as its asker, of one source."""
    request = executor_pb2.SearchRunsRequest(
        query=question.text, filter=question.filter, mode=SOURCES[source], page_size=page
    )
    relevant = frozenset(question.relevant(labelled.corpus))
    try:
        response = await labelled.stub().SearchRuns(
            request, metadata=labelled.auth(question.asker), timeout=30
        )
    except grpc.aio.AioRpcError as error:
        return Answered(
            question, source, (), relevant, error=f"{error.code().name}: {error.details()}"
        )
    ids = tuple(hit.run_id for hit in response.hits)
    return Answered(question, source, ids, relevant, response.applied_filter)


async def ask_all(
    labelled: LabelledStack, questions: Iterable[Question], page: int = PAGE
) -> dict[str, list[Answered]]:
    """Every question of every source, by source, in question order."""
    questions = list(questions)
    return {
        source: [await ask(labelled, question, source, page) for question in questions]
        for source in SOURCES
    }


def shown(answer: Answered, corpus: Corpus, count: int = TOP) -> str:
    """A question and its first results, each as template/outcome and whether relevant."""
    runs = corpus.by_id()
    parts = []
    for run_id in answer.ids[:count]:
        run = runs.get(run_id)
        described = f"{run.template}/{'ok' if run.succeeded else 'failed'}" if run else run_id
        parts.append(f"{described}{'+' if run_id in answer.relevant else '-'}")
    got = ", ".join(parts) or (answer.error or "nothing")
    applied = f" applied={answer.applied_filter!r}" if answer.applied_filter else ""
    return (
        f"[{answer.question.kind}] {answer.question.label()!r}: P@5={answer.precision:.2f} "
        f"recall={answer.recall:.2f} of {len(answer.relevant)} relevant, "
        f"{len(answer.ids)} results{applied}; first: {got}"
    )


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def class_table(answers: dict[str, list[Answered]], classes: Sequence[str]) -> str:
    """P@5, recall and empty answers per class and source, then the overall means."""
    header = f"{'class':<22} {'n':>4}" + "".join(
        f" {source + ' P@5':>13} {source + ' recall':>16} {'empty':>6}" for source in answers
    )
    lines = [header]
    for kind in (*classes, "all"):
        row = f"{kind:<22}"
        for source, answered in answers.items():
            picked = [a for a in answered if kind in ("all", a.question.kind)]
            if source == next(iter(answers)):
                row += f" {len(picked):>4}"
            row += (
                f" {mean([a.precision for a in picked]):>13.3f}"
                f" {mean([a.recall for a in picked]):>16.3f}"
                f" {sum(a.empty for a in picked):>6}"
            )
        lines.append(row)
    return "\n".join(lines)


def worst(answered: Sequence[Answered], corpus: Corpus, count: int) -> list[str]:
    """Up to `count` questions below a perfect P@5, lowest first within each
    class, taken from the classes in turn so that every weak class shows."""
    by_class: dict[str, list[Answered]] = {}
    for answer in sorted(answered, key=lambda a: (a.precision, a.recall)):
        if answer.precision < 1:
            by_class.setdefault(answer.question.kind, []).append(answer)
    picked: list[Answered] = []
    while len(picked) < count and any(by_class.values()):
        for queue in by_class.values():
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return [
        shown(answer, corpus) for answer in sorted(picked, key=lambda a: (a.precision, a.recall))
    ]
