"""A run as a memory-service pattern: typed fields plus a searchable summary."""

from __future__ import annotations

from collections import Counter

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.convert.enums import RUNNER_NAMES, strategy_name, tier_name
from executor_service.runs.forms import answer_text, from_form_value
from executor_service.templates.models import Template
from memory_service.security.identity import ANONYMOUS_USER_ID


def _text(value: common_pb2.FormValue) -> str:
    answer = from_form_value(value)
    return "" if answer is None else answer_text(answer)


def _first_tier(agent: executor_pb2.AgentResult) -> common_pb2.Tier.ValueType:
    return agent.attempts[0].tier if agent.attempts else common_pb2.TIER_UNSPECIFIED


def _how(agent: executor_pb2.AgentResult) -> str:
    """The agent's strategy and, when it escalated, from which tier: words a
    search can rank on ("progressive", "escalated")."""
    notes = []
    if agent.tier_strategy != common_pb2.TIER_STRATEGY_UNSPECIFIED:
        notes.append(f"strategy {strategy_name(agent.tier_strategy)}")
    if agent.final_tier > _first_tier(agent) != common_pb2.TIER_UNSPECIFIED:
        notes.append(f"escalated from {tier_name(_first_tier(agent))}")
    return f" ({', '.join(notes)})" if notes else ""


def run_summary(run: executor_pb2.Run, template: Template | None) -> str:
    """The searchable text of a run."""
    outcome = "succeeded" if run.status == executor_pb2.RUN_STATUS_SUCCEEDED else "failed"
    title = f"{run.template_id} ({template.name})" if template else run.template_id
    lines = [
        f"Run {run.run_id} of template {title} {outcome}.",
        f"Runner: {RUNNER_NAMES.get(run.runner, 'unknown')}. "
        f"Total cost ${run.total_cost_usd:.4f} over {len(run.agents)} agents.",
    ]
    for agent in run.agents:
        state = executor_pb2.AgentStatus.Name(agent.status).removeprefix("AGENT_STATUS_").lower()
        tier = f" at tier {tier_name(agent.final_tier)}" if agent.attempts else ""
        lines.append(
            f"Agent {agent.role} {state}{tier} after {len(agent.attempts)} attempts{_how(agent)}."
        )
    answers = ", ".join(f"{key}={_text(run.answers[key])}" for key in sorted(run.answers))
    lines.append(f"Answers: {answers}.")
    return "\n".join(lines)


def run_owner(run: executor_pb2.Run) -> str:
    """The user who started the run; "" when ownerless (started with
    authentication off, or before runs had owners)."""
    return "" if run.owner == ANONYMOUS_USER_ID else run.owner


def run_to_pattern(run: executor_pb2.Run, template: Template | None) -> memory_pb2.Pattern:
    """The execution pattern of a finished run; its id is the run id."""
    finished = Counter(tier_name(agent.final_tier) for agent in run.agents if agent.attempts)
    pattern = memory_pb2.Pattern(
        id=run.run_id,
        type=memory_pb2.PATTERN_TYPE_EXECUTION,
        template_id=run.template_id,
        success=run.status == executor_pb2.RUN_STATUS_SUCCEEDED,
        total_cost_usd=run.total_cost_usd,
        agents=[
            memory_pb2.PatternAgent(
                role=agent.role,
                tier=agent.final_tier,
                success=agent.status == executor_pb2.AGENT_STATUS_SUCCEEDED,
                cost_usd=agent.cost_usd,
                attempt_count=len(agent.attempts),
                duration=agent.duration,
                tier_strategy=agent.tier_strategy,
                first_tier=_first_tier(agent),
            )
            for agent in run.agents
        ],
        tier_distribution=dict(finished),
        form_responses=dict(run.answers),
        tags=list(template.tags) if template else [],
        content=run_summary(run, template),
        run_id=run.run_id,
        runner=RUNNER_NAMES.get(run.runner, "unknown"),
        # Stored on the owner's behalf, so memory applies their visibility
        # (see MemoryClient.store); with authentication off, as the executor.
        owner=run_owner(run),
    )
    pattern.create_time.CopyFrom(run.create_time)
    pattern.total_duration.CopyFrom(run.total_duration)
    return pattern
