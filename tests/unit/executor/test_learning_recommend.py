"""Tier recommendations: the cheapest trusted tier, too little data, the saving."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor_service.learning.recommend import (
    TIERS_BY_COST,
    Policy,
    expected_cost,
    recommend_tier,
)
from executor_service.learning.stats import Proportion
from executor_service.learning.tally import Tally
from executor_service.runs.composition import learned_ladder
from executor_service.templates.models import Tier, TierStrategy

CHEAP, CAPABLE, PREMIUM = Tier.CHEAP, Tier.CAPABLE, Tier.PREMIUM
POLICY = Policy(target=0.9, min_runs=10)
# Mean attempt costs used throughout: cheap $0.01, capable $0.03, premium $0.10.
COST = {CHEAP: 0.01, CAPABLE: 0.03, PREMIUM: 0.10}


def tally(tier: Tier, successes: int, attempts: int) -> Tally:
    return Tally(attempts=attempts, successes=successes, cost_usd=COST[tier] * attempts)


def tallies(**counts: tuple[int, int]) -> dict[Tier, Tally]:
    return {Tier(name): tally(Tier(name), *pair) for name, pair in counts.items()}


def test_the_cheapest_tier_whose_lower_bound_meets_the_target() -> None:
    # cheap 30/40: lower bound 0.60; capable 40/40: lower bound 40/43.84 = 0.912.
    evidence = tallies(cheap=(30, 40), capable=(40, 40), premium=(20, 20))
    choice = recommend_tier("coder", TierStrategy.PROGRESSIVE, evidence, POLICY, "simulated")
    assert choice.tier is CAPABLE
    assert choice.evidence == Proportion(40, 40)
    assert "40 of 40 simulated attempts" in choice.rationale
    assert "cheap's lower bound 0.60 (n=40) falls short" in choice.rationale
    # Progressive: 0.01 + 0.25 * 0.03 = 0.0175 expected; capable first: 0.03.
    # Starting higher costs more here: the saving is negative, and says so.
    assert choice.saving_usd == pytest.approx(0.0175 - 0.03)


def test_saving_against_the_template_strategy() -> None:
    # capable_first costs 0.03 + 0 * premium; learned from cheap costs 0.01.
    evidence = tallies(cheap=(40, 40), capable=(40, 40))
    choice = recommend_tier("linter", TierStrategy.CAPABLE_FIRST, evidence, POLICY, "simulated")
    assert choice.tier is CHEAP
    assert choice.saving_usd == pytest.approx(0.02)
    assert "against $0.0300 with the template's capable_first" in choice.rationale


def test_saving_when_the_template_escalates_through_failures() -> None:
    # Progressive pays cheap, then capable half the time, then premium a
    # quarter of the time: 0.01 + 0.5 * 0.03 + 0.5 * 0.5 * 0.10 = 0.05.
    # Premium first (premium is trusted at 40/40) costs 0.10.
    evidence = tallies(cheap=(20, 40), capable=(20, 40), premium=(40, 40))
    choice = recommend_tier("auditor", TierStrategy.PROGRESSIVE, evidence, POLICY, "simulated")
    assert choice.tier is PREMIUM
    assert choice.saving_usd == pytest.approx(0.05 - 0.10)


def test_too_little_data_says_so_and_recommends_nothing() -> None:
    evidence = tallies(cheap=(3, 3))
    choice = recommend_tier("coder", TierStrategy.PROGRESSIVE, evidence, POLICY, "simulated")
    assert choice.tier is None
    assert choice.saving_usd == 0.0
    assert choice.evidence == Proportion(3, 3)  # The template's first tier.
    assert choice.rationale.startswith("too little data from simulated runs")
    assert "cheap n=3, capable n=0, premium n=0" in choice.rationale
    assert "keeping the template's strategy (progressive, from cheap)" in choice.rationale


def test_no_data_at_all_is_too_little_data() -> None:
    choice = recommend_tier("coder", TierStrategy.CAPABLE_FIRST, {}, POLICY, "anthropic")
    assert choice.tier is None
    assert choice.evidence == Proportion(0, 0)
    assert "too little data from anthropic runs" in choice.rationale


def test_enough_data_everywhere_but_no_tier_good_enough() -> None:
    # premium 9/10 has the best lower bound, 0.596: short of 0.9.
    evidence = tallies(cheap=(5, 10), capable=(8, 10), premium=(9, 10))
    choice = recommend_tier("coder", TierStrategy.PROGRESSIVE, evidence, POLICY, "simulated")
    assert choice.tier is None
    assert "no tier meets the 0.90 target" in choice.rationale
    assert "premium's 0.60 (n=10)" in choice.rationale


def test_a_cheaper_tier_with_too_little_data_is_named() -> None:
    # cheap 5/5 looks perfect but counts fewer than 10 attempts.
    evidence = tallies(cheap=(5, 5), capable=(40, 40))
    choice = recommend_tier("coder", TierStrategy.PROGRESSIVE, evidence, POLICY, "simulated")
    assert choice.tier is CAPABLE
    assert "cheap has too little data (cheap n=5)" in choice.rationale


def test_an_untried_tier_the_template_may_reach_makes_the_saving_unknown() -> None:
    # capable_first starts at capable, never tried: its cost is unknown.
    evidence = tallies(cheap=(40, 40))
    choice = recommend_tier("linter", TierStrategy.CAPABLE_FIRST, evidence, POLICY, "simulated")
    assert choice.tier is CHEAP
    assert choice.saving_usd == 0.0
    assert "unknown" in choice.rationale


def test_expected_cost_of_a_ladder() -> None:
    evidence = tallies(cheap=(20, 40), capable=(30, 40), premium=(40, 40))
    # 0.01 + 0.5 * 0.03 + 0.5 * 0.25 * 0.10
    assert expected_cost(learned_ladder(CHEAP), evidence) == pytest.approx(0.0375)
    # A tier never reached needs no data: cheap always succeeds.
    assert expected_cost(learned_ladder(CHEAP), tallies(cheap=(10, 10))) == pytest.approx(0.01)
    # A tier reached but never tried makes the cost unknown.
    assert expected_cost(learned_ladder(CHEAP), tallies(cheap=(5, 10))) is None


counts = st.integers(0, 80).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(
    cheap=counts,
    capable=counts,
    premium=counts,
    target=st.floats(0.5, 0.99),
    min_runs=st.integers(1, 30),
    strategy=st.sampled_from(TierStrategy),
)
def test_the_recommended_tier_is_trusted_and_no_cheaper_one_is(
    cheap: tuple[int, int],
    capable: tuple[int, int],
    premium: tuple[int, int],
    target: float,
    min_runs: int,
    strategy: TierStrategy,
) -> None:
    evidence = {
        tier: tally(tier, *pair)
        for tier, pair in ((CHEAP, cheap), (CAPABLE, capable), (PREMIUM, premium))
        if pair[1]
    }
    policy = Policy(target, min_runs)
    choice = recommend_tier("role", strategy, evidence, policy, "simulated")

    def trusted(tier: Tier) -> bool:
        found = evidence.get(tier)
        return (
            found is not None and found.attempts >= min_runs and found.success_rate.lower >= target
        )

    if choice.tier is None:
        assert not any(trusted(tier) for tier in Tier)
        assert choice.saving_usd == 0.0
    else:
        assert trusted(choice.tier)
        cheaper = TIERS_BY_COST[: TIERS_BY_COST.index(choice.tier)]
        assert not any(trusted(tier) for tier in cheaper)
    if choice.tier is None and any(
        tier not in evidence or evidence[tier].attempts < min_runs for tier in Tier
    ):
        assert "too little data" in choice.rationale
