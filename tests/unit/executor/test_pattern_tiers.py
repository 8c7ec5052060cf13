"""A run's pattern records each agent's tier strategy and first tier, so
escalation filters answer the same from memory and from the local index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.memory.local_index import INDEX_DIR, INDEX_VERSION
from executor_service.runs.as_pattern import run_to_pattern
from executor_service.runs.store import RunStore
from executor_service.templates.catalog import Catalog
from memory_service.patterns import store_violations
from memory_service.rpc.reads import groupable
from memory_service.search.index import SearchIndex
from memory_service.search.schema import pattern_record
from tests.unit.executor.test_local_index import (
    _set_manifest,
    catalog,
    make_run,
    opened,
    persist,
    search,
)

__all__ = ["catalog"]  # The fixture, imported for pytest.

CHEAP, CAPABLE, PREMIUM = common_pb2.TIER_CHEAP, common_pb2.TIER_CAPABLE, common_pb2.TIER_PREMIUM
SUCCEEDED, FAILED = executor_pb2.AGENT_STATUS_SUCCEEDED, executor_pb2.AGENT_STATUS_FAILED


def escalated_run(
    number: int,
    *tiers: common_pb2.Tier.ValueType,
    strategy: common_pb2.TierStrategy.ValueType = common_pb2.TIER_STRATEGY_PROGRESSIVE,
) -> executor_pb2.Run:
    """A run whose one agent tried `tiers` in order, succeeding at the last."""
    run = make_run(number, package_name="demo")
    agent = run.agents[0]
    del agent.attempts[:]
    for attempt, tier in enumerate(tiers, start=1):
        agent.attempts.add(number=attempt, tier=tier, success=attempt == len(tiers))
    agent.final_tier = tiers[-1]
    agent.tier_strategy = strategy
    return run


def test_the_pattern_records_each_agents_strategy_and_first_tier() -> None:
    run = escalated_run(0, CHEAP, CAPABLE, PREMIUM)
    run.agents.add(
        role="publisher",
        status=executor_pb2.AGENT_STATUS_SKIPPED,
        tier_strategy=common_pb2.TIER_STRATEGY_CAPABLE_FIRST,
    )
    builder, publisher = run_to_pattern(run, None).agents
    assert (builder.tier_strategy, builder.first_tier, builder.tier) == (
        common_pb2.TIER_STRATEGY_PROGRESSIVE,
        CHEAP,
        PREMIUM,
    )
    assert (publisher.tier_strategy, publisher.first_tier) == (
        common_pb2.TIER_STRATEGY_CAPABLE_FIRST,
        common_pb2.TIER_UNSPECIFIED,
    )
    record = pattern_record(run_to_pattern(run, None))["agents"]
    assert [agent.get("escalation") for agent in record] == ["CHEAP_TO_PREMIUM", None]


def test_the_summary_names_the_strategy_and_the_escalation() -> None:
    content = run_to_pattern(
        escalated_run(0, CAPABLE, PREMIUM, strategy=common_pb2.TIER_STRATEGY_CAPABLE_FIRST), None
    ).content
    assert "after 2 attempts (strategy capable_first, escalated from capable)." in content
    steady = run_to_pattern(
        escalated_run(1, CHEAP, strategy=common_pb2.TIER_STRATEGY_CHEAP_ONLY), None
    ).content
    assert "after 1 attempts (strategy cheap_only)." in steady


def test_escalation_filters_answer_from_the_local_index(tmp_path: Path, catalog: Catalog) -> None:
    to_premium = escalated_run(0, CHEAP, CAPABLE, PREMIUM)
    to_capable = escalated_run(1, CHEAP, CAPABLE)
    steady = escalated_run(2, PREMIUM, strategy=common_pb2.TIER_STRATEGY_PREMIUM_ONLY)
    persist(RunStore(tmp_path / "runs"), to_premium, to_capable, steady)
    index, _ = opened(tmp_path, catalog)
    assert search(index, "", 'agents.escalated_to = "premium"') == [to_premium.run_id]
    assert search(index, "", 'agents.escalation = "cheap_to_capable"') == [to_capable.run_id]
    assert search(index, "", "NOT agents.escalated = true") == [steady.run_id]
    assert search(index, "", 'agents.tier_strategy = "premium_only"') == [steady.run_id]
    assert search(index, "", 'agents.first_tier = "cheap"') == [
        to_capable.run_id,
        to_premium.run_id,
    ]


def test_a_cache_from_before_the_tier_fields_is_rebuilt(tmp_path: Path, catalog: Catalog) -> None:
    run = escalated_run(0, CHEAP, CAPABLE)
    persist(RunStore(tmp_path / "runs"), run)
    opened(tmp_path, catalog)[0].close()
    _set_manifest(tmp_path / INDEX_DIR, "version", "3")
    index, index_opened = opened(tmp_path, catalog)
    assert (index_opened.action, index_opened.reason) == (
        "rebuilt",
        f"written by index version 3, not {INDEX_VERSION}",
    )
    assert search(index, "", 'agents.escalated_to = "capable"') == [run.run_id]


def test_undefined_strategy_and_first_tier_are_invalid() -> None:
    pattern = memory_pb2.Pattern(id="p-1", type=memory_pb2.PATTERN_TYPE_EXECUTION)
    pattern.agents.add(
        tier_strategy=common_pb2.TierStrategy.ValueType(9), first_tier=common_pb2.Tier.ValueType(7)
    )
    found = dict(store_violations(memory_pb2.StorePatternRequest(namespace="a", pattern=pattern)))
    assert found["pattern.agents[0].tier_strategy"] == "9 is not a defined value"
    assert found["pattern.agents[0].first_tier"] == "7 is not a defined value"


def test_patterns_count_by_strategy_and_escalation() -> None:
    index = SearchIndex(sqlite3.connect(":memory:"))
    runs = [
        escalated_run(0, CHEAP, CAPABLE, PREMIUM),
        escalated_run(1, CHEAP, CAPABLE),
        escalated_run(2, CHEAP, CAPABLE),
        escalated_run(3, CHEAP, strategy=common_pb2.TIER_STRATEGY_CHEAP_ONLY),
    ]
    for run in runs:
        index.put("default", run_to_pattern(run, None), run.run_id)
    assert groupable("agents.escalation")
    assert groupable("agents.tier_strategy")
    _, groups = index.count("default", None, "agents.escalation")
    assert [(group.key, group.count) for group in groups] == [
        ("CHEAP_TO_CAPABLE", 2),
        ("", 1),
        ("CHEAP_TO_PREMIUM", 1),
    ]
    _, groups = index.count("default", None, "agents.tier_strategy")
    assert [(group.key, group.count) for group in groups] == [("PROGRESSIVE", 3), ("CHEAP_ONLY", 1)]
