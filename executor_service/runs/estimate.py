"""Cost estimates of a planned team, from the price table and typical usage."""

from __future__ import annotations

from executor_service.runners.simulated import TYPICAL_TOKENS, attempt_cost
from executor_service.runs.composition import PlannedAgent


def estimate_cost(team: list[PlannedAgent]) -> tuple[float, float]:
    """(low, high) in US dollars.

    Low: every agent succeeds at its first tier with light usage. High: every
    agent escalates through its whole ladder with heavy usage.
    """
    low_in, high_in, low_out, high_out = TYPICAL_TOKENS
    low = sum(attempt_cost(agent.tiers[0], low_in, low_out) for agent in team)
    high = sum(attempt_cost(tier, high_in, high_out) for agent in team for tier in agent.tiers)
    return low, high
