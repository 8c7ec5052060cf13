"""Compact, immutable facts of finished runs: what learning reads.

A run's `Run` proto carries outputs, durations and criteria that no
statistic needs; facts keep what analytics and recommendations use, so a
history of many thousands of runs stays small and cheap to scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from attune.executor.v1 import executor_pb2
from executor_service.convert.enums import RUNNER_NAMES, tier_name
from executor_service.runs.forms import from_form_value
from executor_service.templates.models import Answer, Tier


@dataclass(frozen=True)
class AttemptFact:
    """One attempt of an agent at one tier."""

    tier: Tier
    success: bool
    cost_usd: float
    error: str = ""


@dataclass(frozen=True)
class AgentFact:
    """One agent of a run, with its attempts in order."""

    role: str
    succeeded: bool
    attempts: tuple[AttemptFact, ...] = ()


@dataclass(frozen=True)
class RunFact:
    """One finished run."""

    run_id: str
    template_id: str
    runner: str
    # A cancelled run counts as not succeeded, as in the run's pattern.
    succeeded: bool
    create_time: datetime
    total_cost_usd: float
    agents: tuple[AgentFact, ...] = ()
    answers: Mapping[str, Answer] = field(default_factory=lambda: MappingProxyType({}))


def run_fact(run: executor_pb2.Run) -> RunFact:
    """The facts of a finished run."""
    answers = {
        question_id: answer
        for question_id, value in run.answers.items()
        if (answer := from_form_value(value)) is not None
    }
    return RunFact(
        run_id=run.run_id,
        template_id=run.template_id,
        runner=RUNNER_NAMES.get(run.runner, "unknown"),
        succeeded=run.status == executor_pb2.RUN_STATUS_SUCCEEDED,
        create_time=run.create_time.ToDatetime(tzinfo=UTC),
        total_cost_usd=run.total_cost_usd,
        agents=tuple(
            AgentFact(
                role=agent.role,
                succeeded=agent.status == executor_pb2.AGENT_STATUS_SUCCEEDED,
                attempts=tuple(
                    AttemptFact(
                        tier=Tier(tier_name(attempt.tier)),
                        success=attempt.success,
                        cost_usd=attempt.cost_usd,
                        error=attempt.error,
                    )
                    for attempt in agent.attempts
                    # An attempt without a tier is not evidence about any tier.
                    if attempt.tier != 0
                ),
            )
            for agent in run.agents
        ),
        answers=MappingProxyType(answers),
    )
