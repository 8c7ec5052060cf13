"""The learned tier strategy in the team and the engine; per-role simulated chances."""

from __future__ import annotations

from dataclasses import replace

import pytest
from google.protobuf.message import Message
from pydantic import ValidationError

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.learning.recommend import TIERS_BY_COST
from executor_service.runners.factory import simulation_profile
from executor_service.runners.simulated import (
    SIMULATED_PRICES,
    SimulatedRunner,
    SimulationProfile,
)
from executor_service.runs.composition import PlannedAgent, learned_ladder
from executor_service.runs.engine import TeamExecution, strategy_to_proto
from executor_service.settings import ExecutorSettings
from executor_service.templates.models import Tier, TierStrategy


def planned(role: str, strategy: TierStrategy = TierStrategy.CHEAP_ONLY) -> PlannedAgent:
    return PlannedAgent(
        role=role, strategy=strategy, depends_on=(), stage=0, success_criteria=("done",)
    )


async def ignore(name: str, message: Message) -> None:
    """An emit callback for executions whose events the test does not read."""


def test_tiers_by_cost_are_cheapest_first() -> None:
    prices = [sum(SIMULATED_PRICES[tier]) for tier in TIERS_BY_COST]
    assert prices == sorted(prices)


def test_a_learned_agent_starts_at_its_tier_and_escalates_as_progressive() -> None:
    assert learned_ladder(Tier.CHEAP) == (Tier.CHEAP, Tier.CAPABLE, Tier.PREMIUM)
    assert learned_ladder(Tier.CAPABLE) == (Tier.CAPABLE, Tier.PREMIUM)
    assert learned_ladder(Tier.PREMIUM) == (Tier.PREMIUM,)
    agent = replace(planned("linter"), start_tier=Tier.CAPABLE)
    assert agent.learned
    assert agent.tiers == (Tier.CAPABLE, Tier.PREMIUM)
    assert agent.strategy_name == "learned"
    # The template's own strategy stays known, for comparison.
    assert agent.strategy is TierStrategy.CHEAP_ONLY
    assert strategy_to_proto(agent) == common_pb2.TIER_STRATEGY_LEARNED
    own = planned("linter")
    assert (own.learned, own.strategy_name, own.tiers) == (False, "cheap_only", (Tier.CHEAP,))
    assert strategy_to_proto(own) == common_pb2.TIER_STRATEGY_CHEAP_ONLY


async def test_the_engine_records_learned_agents_and_their_first_tier() -> None:
    everything_fails = SimulationProfile(
        success_probability={Tier.CHEAP: 0.0, Tier.CAPABLE: 0.0, Tier.PREMIUM: 0.0}
    )
    team = [replace(planned("a"), start_tier=Tier.CAPABLE), planned("b")]
    results = await TeamExecution(team, SimulatedRunner(1, everything_fails), 2, ignore).run()
    learned, own = results
    assert learned.tier_strategy == common_pb2.TIER_STRATEGY_LEARNED
    assert [a.tier for a in learned.attempts] == [common_pb2.TIER_CAPABLE, common_pb2.TIER_PREMIUM]
    assert own.tier_strategy == common_pb2.TIER_STRATEGY_CHEAP_ONLY
    assert [a.tier for a in own.attempts] == [common_pb2.TIER_CHEAP]
    assert learned.status == own.status == executor_pb2.AGENT_STATUS_FAILED


async def test_per_role_chances_override_the_per_tier_ones() -> None:
    profile = SimulationProfile(
        success_probability={Tier.CHEAP: 1.0, Tier.CAPABLE: 1.0, Tier.PREMIUM: 1.0},
        role_success_probability={"hard": {Tier.CHEAP: 0.0}},
    )
    assert profile.success_chance("hard", Tier.CHEAP) == 0.0
    assert profile.success_chance("hard", Tier.CAPABLE) == 1.0
    assert profile.success_chance("easy", Tier.CHEAP) == 1.0
    team = [planned("hard", TierStrategy.PROGRESSIVE), planned("easy", TierStrategy.PROGRESSIVE)]
    hard, easy = await TeamExecution(team, SimulatedRunner(3, profile), 2, ignore).run()
    assert [a.tier for a in hard.attempts] == [common_pb2.TIER_CHEAP, common_pb2.TIER_CAPABLE]
    assert [a.tier for a in easy.attempts] == [common_pb2.TIER_CHEAP]


def test_the_role_success_setting_reaches_the_simulation() -> None:
    settings = ExecutorSettings(simulated_role_success={"hard": {"cheap": 0.25}})
    profile = simulation_profile(settings)
    assert profile.success_chance("hard", Tier.CHEAP) == 0.25
    assert profile.success_chance("hard", Tier.PREMIUM) == 0.98


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"hard": {"cheapest": 0.5}}, "unknown tiers"),
        ({"hard": {"cheap": 1.5}}, "probabilities must lie in"),
    ],
)
def test_bad_role_success_settings_are_refused(
    value: dict[str, dict[str, float]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ExecutorSettings(simulated_role_success=value)


@pytest.mark.parametrize("field", ["recommendation_target_success", "recommendation_min_runs"])
def test_recommendation_settings_are_bounded(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ExecutorSettings(**{field: 0})  # type: ignore[arg-type]
