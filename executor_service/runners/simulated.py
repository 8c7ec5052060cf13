"""The simulated runner: deterministic outcomes from a seed.

Nothing here is model output. Every outcome is labelled `simulated`, its
model is named `simulated-<tier>`, and the same seed replays the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from executor_service.runners.base import AttemptOutcome
from executor_service.runs.composition import PlannedAgent
from executor_service.templates.models import Tier

# US dollars per million (input, output) tokens, priced like the real tiers
# they stand in for, so simulated cost accounting has realistic magnitudes.
SIMULATED_PRICES: dict[Tier, tuple[float, float]] = {
    Tier.CHEAP: (1.0, 5.0),
    Tier.CAPABLE: (3.0, 15.0),
    Tier.PREMIUM: (15.0, 75.0),
}

# Typical tokens of one attempt: (input low, input high, output low, output high).
TYPICAL_TOKENS = (1_200, 4_000, 200, 1_200)


@dataclass(frozen=True)
class SimulationProfile:
    """The knobs of the simulation."""

    success_probability: dict[Tier, float]
    latency_seconds: float = 0.0
    input_tokens: tuple[int, int] = (TYPICAL_TOKENS[0], TYPICAL_TOKENS[1])
    output_tokens: tuple[int, int] = (TYPICAL_TOKENS[2], TYPICAL_TOKENS[3])
    # Per role, chances that differ from the per-tier ones: some work is
    # mechanical, some is hard, and learning which tier a role needs is only
    # testable when roles differ.
    role_success_probability: Mapping[str, Mapping[Tier, float]] = field(default_factory=dict)

    def success_chance(self, role: str, tier: Tier) -> float:
        """The chance that an attempt of the role at the tier succeeds."""
        return self.role_success_probability.get(role, {}).get(tier, self.success_probability[tier])


def role_overrides(raw: Mapping[str, Mapping[str, float]]) -> dict[str, dict[Tier, float]]:
    """Per-role chances from the setting's JSON shape (role to tier name to chance)."""
    return {role: {Tier(tier): p for tier, p in chances.items()} for role, chances in raw.items()}


DEFAULT_PROFILE = SimulationProfile(
    success_probability={Tier.CHEAP: 0.75, Tier.CAPABLE: 0.9, Tier.PREMIUM: 0.98}
)


def attempt_cost(tier: Tier, input_tokens: int, output_tokens: int) -> float:
    """The cost of an attempt from its token usage."""
    input_price, output_price = SIMULATED_PRICES[tier]
    return (input_tokens * input_price + output_tokens * output_price) / 1_000_000


class SimulatedRunner:
    """Outcomes drawn from a random stream keyed by (seed, role, attempt)."""

    name = "simulated"

    def __init__(self, seed: int, profile: SimulationProfile = DEFAULT_PROFILE) -> None:
        self.seed = seed
        self._profile = profile

    def _rng(self, role: str, number: int, tier: Tier) -> random.Random:
        key = f"{self.seed}:{role}:{number}:{tier.value}".encode()
        return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))

    async def attempt(self, agent: PlannedAgent, tier: Tier, number: int) -> AttemptOutcome:
        if self._profile.latency_seconds:
            await asyncio.sleep(self._profile.latency_seconds)
        rng = self._rng(agent.role, number, tier)
        input_tokens = rng.randint(*self._profile.input_tokens)
        output_tokens = rng.randint(*self._profile.output_tokens)
        succeeded = rng.random() < self._profile.success_chance(agent.role, tier)
        criteria = dict.fromkeys(agent.success_criteria, True)
        error = ""
        if not succeeded and criteria:
            criteria[rng.choice(sorted(criteria))] = False
        elif not succeeded:
            error = "simulated failure"
        unmet = [name for name, met in criteria.items() if not met]
        missed = ", ".join(unmet) or "the task"
        verdict = "met every criterion" if succeeded else f"did not meet: {missed}"
        return AttemptOutcome(
            model=f"simulated-{tier.value}",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=attempt_cost(tier, input_tokens, output_tokens),
            criteria=criteria,
            output=f"[simulated] {agent.role} at tier {tier.value}: {verdict}",
            error=error,
        )
