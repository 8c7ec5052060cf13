"""Per role and tier tallies of attempts: the evidence of recommendations.

A tier appears at most once in a strategy's ladder, so the attempts of a
role at a tier are also the runs in which the role tried that tier.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from executor_service.learning.facts import RunFact
from executor_service.learning.stats import Proportion
from executor_service.templates.models import Tier


@dataclass
class Tally:
    """Attempts of one role at one tier: how many, how many succeeded, their cost."""

    attempts: int = 0
    successes: int = 0
    cost_usd: float = 0.0

    def add(self, success: bool, cost_usd: float) -> None:
        """Counts one attempt."""
        self.attempts += 1
        self.successes += success
        self.cost_usd += cost_usd

    @property
    def success_rate(self) -> Proportion:
        """The share of attempts that succeeded, with its interval."""
        return Proportion(self.successes, self.attempts)

    @property
    def mean_cost_usd(self) -> float:
        """The mean cost of an attempt; 0 without attempts."""
        return self.cost_usd / self.attempts if self.attempts else 0.0


RoleTiers = dict[tuple[str, Tier], Tally]


def add_runs(tallies: RoleTiers, runs: Iterable[RunFact]) -> RoleTiers:
    """Adds every attempt of the runs to the tallies; returns them."""
    for run in runs:
        for agent in run.agents:
            for attempt in agent.attempts:
                key = (agent.role, attempt.tier)
                tally = tallies.get(key)
                if tally is None:
                    tally = tallies[key] = Tally()
                tally.add(attempt.success, attempt.cost_usd)
    return tallies


def role_tallies(tallies: RoleTiers, role: str) -> dict[Tier, Tally]:
    """One role's tallies by tier; a tier never tried is absent."""
    return {tier: tally for (name, tier), tally in tallies.items() if name == role}
