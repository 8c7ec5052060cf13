"""Analytics over a small hand-made history, checked against numbers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.convert.enums import TIER_TO_PROTO
from executor_service.convert.learning import analytics_to_proto
from executor_service.learning.analytics import (
    Window,
    analyse,
    bucket_start,
    normalise_error,
    trend_width,
)
from executor_service.learning.facts import RunFact, run_fact
from executor_service.runs.store import new_run_id
from executor_service.templates.models import Tier

CHEAP, CAPABLE, PREMIUM = Tier.CHEAP, Tier.CAPABLE, Tier.PREMIUM


def attempt(tier: Tier, success: bool, cost: float, error: str = "") -> executor_pb2.Attempt:
    return executor_pb2.Attempt(
        tier=TIER_TO_PROTO[tier], success=success, cost_usd=cost, error=error
    )


def agent(role: str, *attempts: executor_pb2.Attempt) -> executor_pb2.AgentResult:
    if not attempts:
        status = executor_pb2.AGENT_STATUS_SKIPPED
    elif attempts[-1].success:
        status = executor_pb2.AGENT_STATUS_SUCCEEDED
    else:
        status = executor_pb2.AGENT_STATUS_FAILED
    return executor_pb2.AgentResult(
        role=role,
        status=status,
        attempts=attempts,
        cost_usd=sum(a.cost_usd for a in attempts),
        final_tier=attempts[-1].tier if attempts else common_pb2.TIER_UNSPECIFIED,
    )


def run(template: str, when: datetime, *agents: executor_pb2.AgentResult) -> RunFact:
    succeeded = all(a.status == executor_pb2.AGENT_STATUS_SUCCEEDED for a in agents)
    proto = executor_pb2.Run(
        run_id=new_run_id(when),
        template_id=template,
        status=executor_pb2.RUN_STATUS_SUCCEEDED if succeeded else executor_pb2.RUN_STATUS_FAILED,
        runner=common_pb2.RUNNER_SIMULATED,
        agents=agents,
        total_cost_usd=sum(a.cost_usd for a in agents),
    )
    proto.create_time.FromDatetime(when)
    return run_fact(proto)


def at(day: int, hour: int) -> datetime:
    # January 2026: the 5th is a Monday.
    return datetime(2026, 1, day, hour, tzinfo=UTC)


TESTS_FAIL = "unmet criteria: tests pass"
# Four runs of "t" and one of "u". Costs are chosen to add up exactly by hand.
R1 = run(
    "t",
    at(5, 10),
    agent("coder", attempt(CHEAP, False, 0.01, TESTS_FAIL), attempt(CAPABLE, True, 0.03)),
    agent("reviewer", attempt(CHEAP, True, 0.06)),
)  # succeeded, $0.10
R2 = run(
    "t",
    at(5, 18),
    agent(
        "coder",
        attempt(CHEAP, False, 0.01, TESTS_FAIL),
        attempt(CAPABLE, False, 0.04, TESTS_FAIL),
        attempt(PREMIUM, False, 0.15, "HTTP 503 after 3.5 s"),
    ),
    agent("reviewer"),  # skipped
)  # failed, $0.20
R3 = run(
    "t",
    at(7, 9),
    agent("coder", attempt(CHEAP, True, 0.02)),
    agent("reviewer", attempt(CHEAP, True, 0.03)),
)  # succeeded, $0.05
R4 = run(
    "t",
    at(8, 12),
    agent("coder", attempt(PREMIUM, True, 0.25)),
    agent(
        "reviewer",
        attempt(CHEAP, False, 0.05, "unmet criteria: style"),
        attempt(CAPABLE, True, 0.10),
    ),
)  # succeeded, $0.40
R5 = run(
    "u", at(6, 8), agent("writer", attempt(PREMIUM, False, 1.0, "error id 0123456789abcdef"))
)  # failed, $1.00
HISTORY = [R4, R2, R5, R1, R3]  # The order runs come in does not matter.


def test_run_level_numbers_of_one_template() -> None:
    result = analyse(HISTORY, Window(template_id="t"))
    assert result.run_count == 4
    assert (result.success_rate.successes, result.success_rate.n) == (3, 4)
    # Wilson at 3/4: centre 0.62752, half-width 0.32689.
    assert result.success_rate.lower == pytest.approx(0.3006, abs=5e-5)
    assert result.success_rate.upper == pytest.approx(0.9544, abs=5e-5)
    # Costs 0.05, 0.10, 0.20, 0.40: p50 at rank 1.5, p95 at rank 2.85.
    cost = result.cost
    assert cost.mean_usd == pytest.approx(0.1875)
    assert (cost.min_usd, cost.max_usd) == pytest.approx((0.05, 0.40))
    assert cost.p50_usd == pytest.approx(0.15)
    assert cost.p95_usd == pytest.approx(0.20 + 0.85 * 0.20)
    assert cost.total_usd == pytest.approx(0.75)
    # Every attempt's cost, by its tier: 0.01+0.06+0.01+0.02+0.03+0.05, ...
    assert result.cost_by_tier_usd == pytest.approx(
        {"cheap": 0.18, "capable": 0.17, "premium": 0.40}
    )
    assert result.mean_agents_per_run == 2.0


def test_role_tier_performance() -> None:
    result = analyse(HISTORY, Window(template_id="t"))
    rows = [
        (row.role, row.tier, row.success_rate.successes, row.success_rate.n)
        for row in result.role_tiers
    ]
    assert rows == [
        ("coder", CHEAP, 1, 3),
        ("coder", CAPABLE, 1, 2),
        ("coder", PREMIUM, 1, 2),
        ("reviewer", CHEAP, 2, 3),
        ("reviewer", CAPABLE, 1, 1),
    ]
    costs = [row.mean_cost_usd for row in result.role_tiers]
    assert costs == pytest.approx([0.04 / 3, 0.035, 0.20, 0.14 / 3, 0.10])


def test_failure_patterns_are_counted_per_role_most_frequent_first() -> None:
    result = analyse(HISTORY, Window(template_id="t"))
    assert [(f.role, f.error, f.count) for f in result.failures] == [
        ("coder", TESTS_FAIL, 3),
        ("coder", "HTTP 503 after <n> s", 1),
        ("reviewer", "unmet criteria: style", 1),
    ]


def test_trend_has_a_point_per_day_including_empty_days() -> None:
    result = analyse(HISTORY, Window(template_id="t"))
    assert result.trend_bucket == timedelta(days=1)
    points = [(p.start, p.run_count, p.success_rate) for p in result.trend]
    assert points == [
        (at(5, 0), 2, 0.5),
        (at(6, 0), 0, 0.0),
        (at(7, 0), 1, 1.0),
        (at(8, 0), 1, 1.0),
    ]
    assert [p.mean_cost_usd for p in result.trend] == pytest.approx([0.15, 0.0, 0.05, 0.40])


def test_window_starts_inclusive_and_ends_exclusive_across_templates() -> None:
    # R1 is before the start, R4 exactly at the end: both out. R5 is of "u".
    window = Window(start=at(5, 12), end=at(8, 12))
    result = analyse(HISTORY, window)
    assert result.run_count == 3
    assert result.cost.total_usd == pytest.approx(0.20 + 1.0 + 0.05)
    assert (result.success_rate.successes, result.success_rate.n) == (1, 3)
    assert ("writer", "error id <id>", 1) in [(f.role, f.error, f.count) for f in result.failures]


def test_no_runs_give_zeros_and_no_interval() -> None:
    result = analyse(HISTORY, Window(template_id="nothing_here"))
    assert result.run_count == 0
    assert result.success_rate.n == 0
    assert result.cost.total_usd == 0.0
    assert result.trend == []
    proto = analytics_to_proto(result)
    assert proto.success_rate == executor_pb2.Proportion()
    assert proto.trend_bucket.ToTimedelta() == timedelta(days=1)


def test_the_response_carries_every_number() -> None:
    proto = analytics_to_proto(analyse(HISTORY, Window(template_id="t")))
    assert proto.run_count == 4
    assert proto.success_rate.n == 4
    assert proto.success_rate.value == 0.75
    assert proto.cost.p95_usd == pytest.approx(0.37)
    assert dict(proto.cost_by_tier_usd) == pytest.approx(
        {"cheap": 0.18, "capable": 0.17, "premium": 0.40}
    )
    assert [(r.role, r.tier) for r in proto.role_tiers][:2] == [
        ("coder", common_pb2.TIER_CHEAP),
        ("coder", common_pb2.TIER_CAPABLE),
    ]
    assert proto.role_tiers[0].success_rate.n == 3
    assert proto.failures[0].count == 3
    assert len(proto.trend) == 4
    assert proto.trend[0].bucket_start.ToDatetime(tzinfo=UTC) == at(5, 0)
    assert proto.trend_bucket.ToTimedelta() == timedelta(days=1)


def test_wider_buckets_for_longer_histories_aligned_to_mondays() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    runs = [
        run("t", start + timedelta(days=d), agent("a", attempt(CHEAP, True, 0.01)))
        for d in (0, 100)
    ]
    assert trend_width(runs) == timedelta(days=7)
    # 61 days apart make 62 daily points, past the limit of 60.
    runs = [
        run("t", start + timedelta(days=d), agent("a", attempt(CHEAP, True, 0.01))) for d in (0, 61)
    ]
    assert trend_width(runs) == timedelta(days=7)
    runs = [
        run("t", start + timedelta(days=d), agent("a", attempt(CHEAP, True, 0.01))) for d in (0, 59)
    ]
    assert trend_width(runs) == timedelta(days=1)
    # Thursday 2026-01-08 lies in the week of Monday the 5th.
    assert bucket_start(at(8, 12), timedelta(days=7)) == at(5, 0)


def test_errors_are_normalised_but_short_numbers_kept() -> None:
    assert normalise_error("  unmet   criteria:\n tests pass ") == "unmet criteria: tests pass"
    assert normalise_error("HTTP 429 after 2.25 s") == "HTTP 429 after <n> s"
    assert normalise_error("run 20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e") == "run <id>"
    assert normalise_error("") == "failed without an error message"
    assert len(normalise_error("x" * 500)) == 200
