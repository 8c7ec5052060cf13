"""Composing the agent team from a template's rules and resolved answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from executor_service.runs.forms import answer_text
from executor_service.templates.models import (
    TIER_LADDERS,
    AgentRule,
    Answer,
    Template,
    Tier,
    TierStrategy,
)

# The learned strategy's name where strategies are named (config.json, protos).
LEARNED = "learned"


def learned_ladder(start: Tier) -> tuple[Tier, ...]:
    """The tiers a learned agent tries: from its start tier up, as progressive escalates."""
    progressive = TIER_LADDERS[TierStrategy.PROGRESSIVE]
    return progressive[progressive.index(start) :]


@dataclass(frozen=True)
class PlannedAgent:
    """One agent of a team, placed in the dependency graph."""

    role: str
    strategy: TierStrategy
    depends_on: tuple[str, ...]
    stage: int
    config: dict[str, str] = field(default_factory=dict)
    success_criteria: tuple[str, ...] = ()
    # Set by the learned strategy: the recommended tier the agent starts at.
    # `strategy` then still names the template's own, which the learner
    # compares against and which applies again if the evidence goes away.
    start_tier: Tier | None = None

    @property
    def learned(self) -> bool:
        """Whether the agent follows the learned strategy."""
        return self.start_tier is not None

    @property
    def strategy_name(self) -> str:
        """The strategy the agent follows, as named in run files."""
        return LEARNED if self.learned else self.strategy.value

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The tiers the agent tries, in order."""
        if self.start_tier is not None:
            return learned_ladder(self.start_tier)
        return TIER_LADDERS[self.strategy]


def _holds(required: Answer, answer: Answer | None) -> bool:
    """Whether one required answer holds.

    A multi-select answer holds if a required value is among those chosen
    (a required list: any overlap); a scalar answer if it equals the
    required value (a required list: any of them).
    """
    if answer is None:
        return False
    wanted = required if isinstance(required, list) else [required]
    if isinstance(answer, list):
        return any(value in answer for value in wanted)
    return any(_same(answer, value) for value in wanted)


def _same(answer: Answer, required: Answer) -> bool:
    # bool is an int subclass: True must not equal 1 here.
    if isinstance(answer, bool) or isinstance(required, bool):
        return answer is required
    return answer == required


def rule_applies(rule: AgentRule, answers: dict[str, Answer]) -> bool:
    """Whether every required answer of the rule holds."""
    return all(_holds(required, answers.get(qid)) for qid, required in rule.when.items())


def compose_team(
    template: Template, answers: dict[str, Answer], strategy: TierStrategy | None = None
) -> list[PlannedAgent]:
    """The team in execution order: by stage, then by rule order.

    Dependencies on roles that are not in the team are dropped: they only
    order agents that are both present.
    """
    rules = [rule for rule in template.agent_rules if rule_applies(rule, answers)]
    present = {rule.role for rule in rules}
    stages: dict[str, int] = {}
    pending = list(rules)
    while pending:
        placed = [
            rule
            for rule in pending
            if all(dep in stages for dep in rule.depends_on if dep in present)
        ]
        if not placed:
            cycle = sorted(rule.role for rule in pending)
            raise ValueError(f"template {template.id!r} has a dependency cycle among {cycle}")
        for rule in placed:
            deps = [stages[dep] for dep in rule.depends_on if dep in present]
            stages[rule.role] = 1 + max(deps) if deps else 0
        pending = [rule for rule in pending if rule.role not in stages]
    team = [
        PlannedAgent(
            role=rule.role,
            strategy=strategy or rule.tier_strategy,
            depends_on=tuple(dep for dep in rule.depends_on if dep in present),
            stage=stages[rule.role],
            config={
                key: answer_text(answers[qid])
                for key, qid in rule.config_mapping.items()
                if qid in answers
            },
            success_criteria=tuple(rule.success_criteria),
        )
        for rule in rules
    ]
    order = {rule.role: index for index, rule in enumerate(rules)}
    return sorted(team, key=lambda agent: (agent.stage, order[agent.role]))
