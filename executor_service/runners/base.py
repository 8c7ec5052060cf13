"""What every runner returns, and the interface it implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from executor_service.runs.composition import PlannedAgent
from executor_service.templates.models import Tier


@dataclass(frozen=True)
class AttemptOutcome:
    """The result of one attempt at one tier."""

    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    criteria: dict[str, bool]
    output: str
    error: str = ""

    @property
    def success(self) -> bool:
        """An attempt succeeds when the call worked and every criterion is met."""
        return not self.error and all(self.criteria.values())


class Runner(Protocol):
    """Executes attempts. `name` is what run records say produced them."""

    name: str

    async def attempt(self, agent: PlannedAgent, tier: Tier, number: int) -> AttemptOutcome:
        """Runs one attempt of the agent at the tier."""
        ...
