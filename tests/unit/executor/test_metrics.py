"""The executor's metric families, and the helpers that count into them.

The families are the process's own: counters are compared before and after.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from attune.executor.v1 import executor_pb2
from executor_service import metrics
from executor_service.convert.enums import tier_name
from executor_service.memory.breaker import State
from executor_service.memory.delivery import Delivery, _fresh_outcome
from executor_service.runners.simulated import SimulatedRunner, SimulationProfile
from executor_service.runs.composition import PlannedAgent
from executor_service.runs.engine import TeamExecution
from executor_service.templates.models import Tier, TierStrategy
from tests.support.metric_families import scraped_labels
from tests.support.metrics_contract import EXECUTOR
from tests.support.scrape import Scrape, read


def scrape() -> Scrape:
    return read(metrics.REGISTRY)


def test_every_contract_family_is_registered_with_its_type() -> None:
    families = metrics.families()
    for name, (kind, _) in EXECUTOR.items():
        assert families.get(name) == kind, name


@pytest.mark.parametrize("name", sorted(EXECUTOR))
def test_every_contract_family_has_exactly_its_labels(name: str) -> None:
    _, labels = EXECUTOR[name]
    if not labels:
        with pytest.raises(ValueError, match="No label names"):
            scraped_labels(metrics, name, labels)
        return
    found = scraped_labels(metrics, name, labels)
    assert found
    assert all(names == set(labels) for names in found)


def test_fresh_outcomes_name_what_the_first_offer_did() -> None:
    assert _fresh_outcome(Delivery(stored=True)) == "stored"
    assert _fresh_outcome(Delivery(stored=True, deduped=True)) == "deduped"
    assert _fresh_outcome(Delivery(stored=False, rejected=True)) == "rejected"
    assert _fresh_outcome(Delivery(stored=False, outage=True)) == "queued"
    assert _fresh_outcome(Delivery(stored=False, reason="FAILED_PRECONDITION")) == "queued"
    assert set(metrics.DELIVERY_OUTCOMES) >= {
        _fresh_outcome(Delivery(stored=s, deduped=d, rejected=r))
        for s in (True, False)
        for d in (True, False)
        for r in (True, False)
    }


@dataclass
class Sources:
    """What the bound gauges read, changed by the test between scrapes."""

    depth: int = 3
    age: float | None = 12.5
    breaker: State = State.OPEN
    reachable: bool | None = False
    runs: int = 2

    def bind(self) -> Callable[[], None]:
        return metrics.bind_state(
            outbox_depth=lambda: self.depth,
            outbox_oldest_age=lambda: self.age,
            breaker_state=lambda: self.breaker,
            memory_reachable=lambda: self.reachable,
            runs_in_flight=lambda: self.runs,
        )


def test_bound_gauges_read_their_sources_at_each_scrape_until_unbound() -> None:
    sources = Sources()
    unbind = sources.bind()
    try:
        first = scrape()
        assert first.value("attune_executor_outbox_depth") == 3
        assert first.value("attune_executor_outbox_oldest_age_seconds") == 12.5
        assert first.value("attune_executor_breaker_state") == 2
        assert first.value("attune_executor_memory_reachable") == 0
        assert first.value("attune_executor_runs_in_flight") == 2
        sources.depth, sources.breaker, sources.reachable, sources.runs = (
            0,
            State.HALF_OPEN,
            True,
            0,
        )
        second = scrape()
        assert second.value("attune_executor_outbox_depth") == 0
        assert second.value("attune_executor_breaker_state") == 1
        assert second.value("attune_executor_memory_reachable") == 1
        assert second.value("attune_executor_runs_in_flight") == 0
        sources.breaker = State.CLOSED
        assert scrape().value("attune_executor_breaker_state") == 0
    finally:
        unbind()
    sources.depth = 9
    assert scrape().value("attune_executor_outbox_depth") == 0


def test_an_empty_outbox_reads_age_zero_and_unknown_reachability_zero() -> None:
    unbind = Sources(depth=0, age=None, breaker=State.CLOSED, reachable=None).bind()
    try:
        assert scrape().value("attune_executor_outbox_oldest_age_seconds") == 0
        assert scrape().value("attune_executor_memory_reachable") == 0
    finally:
        unbind()


def test_history_view_age_grows_from_its_last_listing() -> None:
    metrics.HISTORY_VIEW.refreshed()
    age = scrape().value("attune_executor_history_catch_up_lag_seconds")
    assert 0 <= age < 5
    metrics.HISTORY_VIEW.refreshed()
    assert scrape().value("attune_executor_history_catch_up_lag_seconds") <= age + 5


def _attempt_counts() -> Counter[tuple[str, str]]:
    scraped = scrape()
    return Counter(
        {
            (tier.value, outcome): scraped.value(
                "attune_executor_agent_attempts_total", tier=tier.value, outcome=outcome
            )
            for tier in Tier
            for outcome in ("succeeded", "failed")
        }
    )


async def test_each_attempt_a_team_makes_is_counted_by_tier_and_outcome() -> None:
    team = [
        PlannedAgent(role=f"r{n}", strategy=TierStrategy.PROGRESSIVE, depends_on=(), stage=0)
        for n in range(6)
    ]
    profile = SimulationProfile(
        success_probability={Tier.CHEAP: 0.3, Tier.CAPABLE: 0.5, Tier.PREMIUM: 0.9}
    )

    async def ignore(name: str, message: object) -> None:
        return None

    before = _attempt_counts()
    results = await TeamExecution(team, SimulatedRunner(11, profile), 2, ignore).run()
    made = Counter(
        (tier_name(attempt.tier), "succeeded" if attempt.success else "failed")
        for result in results
        for attempt in result.attempts
    )
    assert sum(made.values()) >= len(team)
    after = _attempt_counts()
    assert after - before == made


def test_a_finished_run_counts_by_template_status_and_runner_with_its_cost() -> None:
    labels = {"template_id": "probe_template", "status": "failed", "runner": "simulated"}
    before = scrape()
    metrics.run_finished("probe_template", "failed", "simulated", 0.02)
    metrics.run_finished("probe_template", "failed", "simulated", 0.3)
    after = scrape()
    assert (
        after.value("attune_executor_runs_total", **labels)
        - before.value("attune_executor_runs_total", **labels)
        == 2
    )
    cost = {"template_id": "probe_template"}
    assert (
        after.value("attune_executor_run_cost_usd_count", **cost)
        - before.value("attune_executor_run_cost_usd_count", **cost)
        == 2
    )
    assert (
        after.value("attune_executor_run_cost_usd_bucket", **cost, le="0.025")
        - before.value("attune_executor_run_cost_usd_bucket", **cost, le="0.025")
        == 1
    )


def test_run_status_names_cover_every_final_status() -> None:
    finals = {
        executor_pb2.RUN_STATUS_SUCCEEDED,
        executor_pb2.RUN_STATUS_FAILED,
        executor_pb2.RUN_STATUS_CANCELLED,
    }
    assert set(metrics.RUN_STATUSES) == finals
    assert set(metrics.RUN_STATUSES.values()) == {"succeeded", "failed", "cancelled"}
