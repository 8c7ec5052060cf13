"""Tier recommendations: the cheapest tier a role can trust, and what it saves.

A tier is trusted for a role when the role's attempts at it number at least
`min_runs` and the 95% Wilson lower bound of their success rate reaches the
target. The lower bound, not the observed rate, so that 3 successes out of 3
never outrank 96 out of 100. With too little data the recommendation says
so and recommends nothing: the template's own strategy stays in force.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from executor_service.learning.stats import Proportion
from executor_service.learning.tally import Tally
from executor_service.runs.composition import learned_ladder
from executor_service.templates.models import TIER_LADDERS, Tier, TierStrategy

# Cheapest first: the order of the Tier enum.
TIERS_BY_COST = tuple(Tier)


@dataclass(frozen=True)
class Policy:
    """What a tier must show before it is recommended."""

    target: float
    min_runs: int


@dataclass(frozen=True)
class TierChoice:
    """The recommendation for one role.

    `tier` is None when no tier is trusted: the role keeps the template's
    strategy, and `evidence` is that of the tier it starts at.
    """

    role: str
    tier: Tier | None
    evidence: Proportion
    saving_usd: float
    rationale: str


def expected_cost(ladder: Sequence[Tier], tallies: Mapping[Tier, Tally]) -> float | None:
    """The expected cost of a role climbing the ladder until an attempt succeeds.

    Each tier costs its observed mean attempt cost, paid with the chance that
    every tier below it failed (the observed failure rates). None when a tier
    reached with a chance above zero has never been tried: its cost is unknown.
    """
    total, reach = 0.0, 1.0
    for tier in ladder:
        if reach == 0.0:
            break
        tally = tallies.get(tier)
        if tally is None or tally.attempts == 0:
            return None
        total += reach * tally.mean_cost_usd
        reach *= 1.0 - tally.success_rate.value
    return total


def recommend_tier(
    role: str,
    template_strategy: TierStrategy,
    tallies: Mapping[Tier, Tally],
    policy: Policy,
    runner: str,
) -> TierChoice:
    """The cheapest trusted tier for the role, with its evidence and saving."""
    judged = {
        tier: tally.success_rate
        for tier, tally in tallies.items()
        if tally.attempts >= policy.min_runs
    }
    trusted = [t for t in TIERS_BY_COST if t in judged and judged[t].lower >= policy.target]
    template_ladder = TIER_LADDERS[template_strategy]
    rule = (
        f"a tier needs at least {policy.min_runs} attempts and a 95% lower bound of "
        f"{policy.target:.2f}"
    )
    if not trusted:
        start = template_ladder[0]
        evidence = tallies[start].success_rate if start in tallies else Proportion(0, 0)
        keep = f"keeping the template's strategy ({template_strategy.value}, from {start.value})"
        if len(judged) < len(TIERS_BY_COST):
            counts = ", ".join(_count(tier, tallies) for tier in TIERS_BY_COST)
            reason = f"too little data from {runner} runs ({counts}); {rule}"
        else:
            best = max(judged, key=lambda tier: judged[tier].lower)
            reason = (
                f"no tier meets the {policy.target:.2f} target in {runner} runs: the best "
                f"lower bound is {best.value}'s {judged[best].lower:.2f} (n={judged[best].n})"
            )
        return TierChoice(role, None, evidence, 0.0, f"{reason}; {keep}")
    tier = trusted[0]
    evidence = judged[tier]
    parts = [
        f"{tier.value}: {evidence.successes} of {evidence.n} {runner} attempts succeeded "
        f"(95% interval {evidence.lower:.2f}-{evidence.upper:.2f}), meeting the "
        f"{policy.target:.2f} target"
    ]
    for cheaper in TIERS_BY_COST[: TIERS_BY_COST.index(tier)]:
        if cheaper in judged:
            parts.append(
                f"{cheaper.value}'s lower bound {judged[cheaper].lower:.2f} "
                f"(n={judged[cheaper].n}) falls short"
            )
        else:
            parts.append(f"{cheaper.value} has too little data ({_count(cheaper, tallies)})")
    ours = expected_cost(learned_ladder(tier), tallies)
    theirs = expected_cost(template_ladder, tallies)
    if ours is None or theirs is None:
        saving = 0.0
        parts.append(
            f"the saving against the template's {template_strategy.value} is unknown: "
            "a tier it may reach has never been tried"
        )
    else:
        saving = theirs - ours
        parts.append(
            f"expected cost ${ours:.4f} per run against ${theirs:.4f} with the template's "
            f"{template_strategy.value}"
        )
    return TierChoice(role, tier, evidence, saving, "; ".join(parts))


def _count(tier: Tier, tallies: Mapping[Tier, Tally]) -> str:
    tally = tallies.get(tier)
    return f"{tier.value} n={tally.attempts if tally else 0}"
