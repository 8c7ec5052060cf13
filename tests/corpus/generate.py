"""A seeded corpus of realistic execution patterns, made by the executor itself.

Each pattern comes from a real plan (templates, forms, composition) executed
by the simulated runner, then turned into a pattern exactly as the executor
stores it. A handful of written insights are mixed in as known needles.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.runners.simulated import SimulatedRunner
from executor_service.runs.as_pattern import run_to_pattern
from executor_service.runs.composition import compose_team
from executor_service.runs.engine import TeamExecution
from executor_service.runs.forms import resolve_answers, to_form_value
from executor_service.templates.catalog import load_builtin
from executor_service.templates.models import Question, QuestionType

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

# Written insights with distinctive words: the needles relevance tests look for.
NEEDLES = {
    "needle-flaky": "Flaky integration tests in the payments service were fixed by retrying "
    "the database fixture; coverage went back above the gate.",
    "needle-wheel": "The wheel build failed on musl because a C extension lacked a manylinux tag; "
    "publishing to PyPI waited for cibuildwheel.",
    "needle-secrets": "Rotating leaked deploy tokens: the security audit found credentials in "
    "the changelog history and rewrote it.",
    "needle-docs": "Sphinx documentation warnings about duplicate labels broke the docs build "
    "until autosectionlabel prefixes were enabled.",
}


def random_answer(
    question: Question, rng: random.Random, text_words: Sequence[str] = ()
) -> common_pb2.FormValue | None:
    """A random valid answer; text answers start with one of `text_words` if given."""
    if question.type is QuestionType.TEXT:
        word = f"{rng.choice(text_words)}-" if text_words else ""
        return to_form_value(f"{word}{question.id.split('_')[0]}-{rng.randint(1, 99)}")
    if question.type is QuestionType.SINGLE_SELECT:
        return to_form_value(rng.choice(question.options))
    if question.type is QuestionType.MULTI_SELECT:
        return to_form_value(rng.sample(question.options, rng.randint(1, len(question.options))))
    if question.type is QuestionType.BOOLEAN:
        return to_form_value(rng.random() < 0.7)
    low = question.min if question.min is not None else 0.0
    high = question.max if question.max is not None else 100.0
    return to_form_value(float(rng.randint(int(low), int(high))))


async def _noop(field: str, message: Message) -> None:
    return None


async def _pattern(seed: int, rng: random.Random) -> memory_pb2.Pattern:
    templates = load_builtin().all()
    template = templates[seed % len(templates)]
    answers = {q.id: a for q in template.questions if (a := random_answer(q, rng)) is not None}
    resolved, violations = resolve_answers(template, answers)
    assert not violations, violations
    team = compose_team(template, resolved)
    runner = SimulatedRunner(seed)
    agents = await TeamExecution(team, runner, 4, _noop).run()
    run = executor_pb2.Run(
        run_id=f"corpus-{seed:05d}",
        template_id=template.id,
        template_version=template.version,
        runner=common_pb2.RUNNER_SIMULATED,
        seed=seed,
        answers={key: to_form_value(value) for key, value in resolved.items()},
        agents=agents,
        total_cost_usd=sum(agent.cost_usd for agent in agents),
    )
    ok = all(agent.status == executor_pb2.AGENT_STATUS_SUCCEEDED for agent in agents)
    run.status = executor_pb2.RUN_STATUS_SUCCEEDED if ok else executor_pb2.RUN_STATUS_FAILED
    run.create_time.FromDatetime(NOW - timedelta(hours=seed * 7 % (24 * 60)))
    return run_to_pattern(run, template)


def corpus(size: int, seed: int = 7) -> list[memory_pb2.Pattern]:
    """`size` execution patterns plus the needle insights, deterministically."""
    rng = random.Random(seed)

    async def build() -> list[memory_pb2.Pattern]:
        return [await _pattern(n, rng) for n in range(size)]

    patterns = asyncio.run(build())
    for offset, (pattern_id, text) in enumerate(NEEDLES.items()):
        needle = memory_pb2.Pattern(
            id=pattern_id, type=memory_pb2.PATTERN_TYPE_INSIGHT, content=text, tags=["insight"]
        )
        needle.create_time.FromDatetime(NOW - timedelta(days=offset))
        patterns.append(needle)
    return patterns
