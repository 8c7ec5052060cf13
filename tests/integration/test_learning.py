"""Learning from history, on the real services in this process (tests/conftest.py).

Simulated runs with fixed seeds and chosen per-tier success chances make a
history; GetAnalytics is checked against numbers computed here from the runs
ListRuns returns, GetRecommendations against the tiers those chances imply,
and a learned run against the recommended tiers.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.convert.enums import tier_name
from executor_service.learning.analytics import normalise_error
from tests.support.helpers import Answer, eventually, run_request, run_to_end, violations_of
from tests.support.stack import Stack, running_stack

TEMPLATE = "python_package_publish"
CHEAP, CAPABLE, PREMIUM = common_pb2.TIER_CHEAP, common_pb2.TIER_CAPABLE, common_pb2.TIER_PREMIUM
LEARNED = common_pb2.TIER_STRATEGY_LEARNED
# The default team of the publish template: docs_builder only joins with docs_build.
DEFAULT_ROLES = {
    "test_runner",
    "type_checker",
    "linter",
    "version_manager",
    "changelog_updater",
    "package_builder",
    "publisher",
}


async def run_once(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub,
    seed: int,
    strategy: common_pb2.TierStrategy.ValueType = common_pb2.TIER_STRATEGY_UNSPECIFIED,
    template: str = TEMPLATE,
    **answers: Answer,
) -> executor_pb2.Run:
    if template == TEMPLATE:
        answers.setdefault("package_name", f"pkg{seed % 3}")
    request = run_request(**answers)
    request.template_id = template
    request.seed, request.tier_strategy = seed, strategy
    request.runner = common_pb2.RUNNER_SIMULATED
    events = await run_to_end(stub, request)
    return events[-1].run_finished.run


async def list_all(stub: executor_pb2_grpc.ExecutorServiceAsyncStub) -> list[executor_pb2.Run]:
    response = await stub.ListRuns(executor_pb2.ListRunsRequest(page_size=500), timeout=10)
    assert not response.next_page_token
    return list(response.runs)


async def failure(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


# --- analytics ------------------------------------------------------------------


@pytest.fixture
async def mixed(tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack whose simulated attempts fail often enough to make every number move."""
    async with running_stack(
        tmp_path,
        runner="simulated",
        simulated_success={"cheap": 0.6, "capable": 0.8, "premium": 0.95},
        outbox_replay_interval_seconds=0.05,
    ) as running:
        yield running


@dataclass(frozen=True)
class Expected:
    """Analytics of a set of runs, computed directly and independently here."""

    run_count: int
    successes: int
    cost: tuple[float, float, float, float, float, float]  # mean, min, max, p50, p95, total
    by_tier: dict[str, float]
    agents_per_run: float
    # (role, tier) -> (successes, attempts, mean cost)
    role_tiers: dict[tuple[str, int], tuple[int, int, float]]
    failures: dict[tuple[str, str], int]


def expected_analytics(runs: list[executor_pb2.Run]) -> Expected:
    costs = sorted(run.total_cost_usd for run in runs)
    by_tier: dict[str, float] = defaultdict(float)
    tallies: dict[tuple[str, int], list[tuple[bool, float]]] = defaultdict(list)
    failures: Counter[tuple[str, str]] = Counter()
    for run in runs:
        for agent in run.agents:
            for attempt in agent.attempts:
                by_tier[tier_name(attempt.tier)] += attempt.cost_usd
                tallies[(agent.role, attempt.tier)].append((attempt.success, attempt.cost_usd))
                if not attempt.success:
                    failures[(agent.role, normalise_error(attempt.error))] += 1
    return Expected(
        run_count=len(runs),
        successes=sum(run.status == executor_pb2.RUN_STATUS_SUCCEEDED for run in runs),
        cost=(
            statistics.fmean(costs),
            costs[0],
            costs[-1],
            statistics.median(costs),
            statistics.quantiles(costs, n=100, method="inclusive")[94],
            sum(costs),
        ),
        by_tier=dict(by_tier),
        agents_per_run=statistics.fmean(len(run.agents) for run in runs),
        role_tiers={
            key: (sum(ok for ok, _ in seen), len(seen), statistics.fmean(c for _, c in seen))
            for key, seen in tallies.items()
        },
        failures=dict(failures),
    )


def check(response: executor_pb2.GetAnalyticsResponse, expected: Expected) -> None:
    assert response.run_count == expected.run_count
    assert response.success_rate.n == expected.run_count
    successes = response.success_rate.value * response.run_count
    assert successes == pytest.approx(expected.successes)
    cost = response.cost
    assert (
        cost.mean_usd,
        cost.min_usd,
        cost.max_usd,
        cost.p50_usd,
        cost.p95_usd,
        cost.total_usd,
    ) == pytest.approx(expected.cost)
    assert dict(response.cost_by_tier_usd) == pytest.approx(expected.by_tier)
    assert response.mean_agents_per_run == pytest.approx(expected.agents_per_run)
    counts = {
        (row.role, row.tier): (
            round(row.success_rate.value * row.success_rate.n),
            row.success_rate.n,
        )
        for row in response.role_tiers
    }
    assert counts == {key: (ok, n) for key, (ok, n, _) in expected.role_tiers.items()}
    means = {(row.role, row.tier): row.mean_cost_usd for row in response.role_tiers}
    assert means == pytest.approx({key: mean for key, (_, _, mean) in expected.role_tiers.items()})
    # Every role and tier has its interval around the observed rate.
    for row in response.role_tiers:
        assert row.success_rate.lower <= row.success_rate.value <= row.success_rate.upper
    # The 20 most frequent failures, each with its count.
    failures = {(f.role, f.error): f.count for f in response.failures}
    assert len(failures) == min(20, len(expected.failures))
    assert all(expected.failures[key] == count for key, count in failures.items())
    least_shown = min(failures.values())
    assert all(
        count <= least_shown for key, count in expected.failures.items() if key not in failures
    )
    assert sum(point.run_count for point in response.trend) == expected.run_count


async def test_analytics_equal_what_the_runs_say(mixed: Stack) -> None:
    stub = mixed.executor_stub()
    for seed in range(24):
        # Half progressive, half the template's own strategies.
        progressive = common_pb2.TIER_STRATEGY_PROGRESSIVE
        await run_once(
            stub, seed, progressive if seed % 2 else common_pb2.TIER_STRATEGY_UNSPECIFIED
        )
    for seed in range(24, 30):
        url = f"https://example.com/pr/{seed}"
        await run_once(stub, seed, template="code_review", pull_request_url=url)
    runs = await list_all(stub)
    assert len(runs) == 30

    everything = await stub.GetAnalytics(executor_pb2.GetAnalyticsRequest(), timeout=10)
    check(everything, expected_analytics(runs))
    assert everything.trend_bucket.ToSeconds() == 86400
    assert 1 <= len(everything.trend) <= 2  # The runs may straddle midnight UTC.

    publish = [run for run in runs if run.template_id == TEMPLATE]
    one = await stub.GetAnalytics(executor_pb2.GetAnalyticsRequest(template_id=TEMPLATE))
    check(one, expected_analytics(publish))

    # [start, end): from the 6th-oldest publish run up to, not including, the newest.
    oldest_first = sorted(publish, key=lambda run: run.run_id)
    request = executor_pb2.GetAnalyticsRequest(template_id=TEMPLATE)
    request.start_time.CopyFrom(oldest_first[5].create_time)
    request.end_time.CopyFrom(oldest_first[-1].create_time)
    inside = [
        run
        for run in publish
        if oldest_first[5].create_time.ToNanoseconds()
        <= run.create_time.ToNanoseconds()
        < oldest_first[-1].create_time.ToNanoseconds()
    ]
    check(await stub.GetAnalytics(request, timeout=10), expected_analytics(inside))


async def test_analytics_refuse_bad_requests_precisely(mixed: Stack) -> None:
    stub = mixed.executor_stub()
    unknown = await failure(
        stub.GetAnalytics(executor_pb2.GetAnalyticsRequest(template_id="no_such_template"))
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    request = executor_pb2.GetAnalyticsRequest(template_id="Bad Id")
    request.start_time.seconds, request.end_time.seconds = 2_000_000_000, 1_000_000_000
    bad = await failure(stub.GetAnalytics(request, timeout=5))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations_of(bad)) == {"template_id", "end_time"}
    empty = await stub.GetAnalytics(executor_pb2.GetAnalyticsRequest(template_id="code_review"))
    assert empty.run_count == 0
    assert empty.success_rate.n == 0


# --- recommendations and the learned strategy -------------------------------------


@pytest.fixture
async def cheap_fails(tmp_path: Path) -> AsyncIterator[Stack]:
    """Cheap attempts always fail, capable and premium ones always succeed."""
    async with running_stack(
        tmp_path,
        runner="simulated",
        simulated_success={"cheap": 0.0, "capable": 1.0, "premium": 1.0},
        outbox_replay_interval_seconds=0.05,
    ) as running:
        yield running


def recommendation_request(**answers: Answer) -> executor_pb2.GetRecommendationsRequest:
    return executor_pb2.GetRecommendationsRequest(
        template_id=TEMPLATE, answers=run_request(**answers).answers
    )


async def test_recommendations_and_learned_runs_follow_the_evidence(cheap_fails: Stack) -> None:
    stub = cheap_fails.executor_stub()
    # 40 straight capable successes per role: a lower bound of 40 / 43.84 =
    # 0.912, just above the 0.9 target; cheap is 0 of 40.
    for seed in range(40):
        await run_once(stub, seed, common_pb2.TIER_STRATEGY_PROGRESSIVE)
    runs = await list_all(stub)
    mean_cost: dict[tuple[str, int], float] = {}
    for role in DEFAULT_ROLES:
        for tier in (CHEAP, CAPABLE):
            costs = [
                a.cost_usd
                for r in runs
                for g in r.agents
                if g.role == role
                for a in g.attempts
                if a.tier == tier
            ]
            assert len(costs) == 40
            mean_cost[(role, tier)] = statistics.fmean(costs)

    response = await stub.GetRecommendations(
        recommendation_request(quality_checks=["mypy", "ruff", "docs_build"]), timeout=10
    )
    assert response.target_success_rate == 0.9
    tiers = {t.role: t for t in response.tiers}
    assert set(tiers) == DEFAULT_ROLES | {"docs_builder"}
    for role in DEFAULT_ROLES:
        assert tiers[role].recommended_tier == CAPABLE, tiers[role].rationale
        assert (tiers[role].evidence.n, tiers[role].evidence.value) == (40, 1.0)
        assert tiers[role].evidence.lower == pytest.approx(40 / (40 + 1.959963984540054**2))
    # Saving against each role's own strategy, from the observed mean costs:
    # progressive pays a failed cheap attempt first; cheap_only pays cheap
    # only (and fails); capable_first already starts at capable.
    for role in ("test_runner", "version_manager", "changelog_updater", "package_builder"):
        assert tiers[role].expected_saving_usd == pytest.approx(mean_cost[(role, CHEAP)])
    for role in ("type_checker", "linter"):
        expected = mean_cost[(role, CHEAP)] - mean_cost[(role, CAPABLE)]
        assert tiers[role].expected_saving_usd == pytest.approx(expected)
    assert tiers["publisher"].expected_saving_usd == pytest.approx(0.0)
    # docs_builder never ran: too little data, and no tier.
    docs = tiers["docs_builder"]
    assert docs.recommended_tier == common_pb2.TIER_UNSPECIFIED
    assert "too little data" in docs.rationale
    assert docs.evidence.n == 0

    # Similar runs: from memory, this template's, the same package name first.
    assert response.similar_runs_source == executor_pb2.SEARCH_SOURCE_MEMORY
    assert 1 <= len(response.similar_runs) <= 5
    assert {hit.template_id for hit in response.similar_runs} == {TEMPLATE}
    # Every past run succeeded with the default answers: they are suggested.
    suggested = {(s.question_id, s.source): s for s in response.suggested_answers}
    bump = suggested[("version_bump", "successful_runs")]
    assert bump.value.string_value == "patch"
    assert bump.confidence == pytest.approx(40 / (40 + 1.959963984540054**2))
    assert ("quality_checks", "successful_runs") not in suggested  # Answered in the request.

    # A learned run starts each role at its recommended tier; docs_builder,
    # without evidence, keeps its template's cheap_only.
    learned = await run_once(stub, 99, LEARNED, quality_checks=["mypy", "ruff", "docs_build"])
    agents = {agent.role: agent for agent in learned.agents}
    for role in DEFAULT_ROLES:
        assert agents[role].tier_strategy == LEARNED
        assert agents[role].attempts[0].tier == CAPABLE
        assert len(agents[role].attempts) == 1
    assert agents["docs_builder"].tier_strategy == common_pb2.TIER_STRATEGY_CHEAP_ONLY
    assert agents["docs_builder"].attempts[0].tier == CHEAP

    # PlanWorkflow shows the same plan.
    plan = await stub.PlanWorkflow(
        executor_pb2.PlanWorkflowRequest(
            template_id=TEMPLATE,
            answers=run_request(package_name="x").answers,
            tier_strategy=LEARNED,
        ),
        timeout=10,
    )
    assert {(a.role, a.first_tier, a.tier_strategy) for a in plan.team} == {
        (role, CAPABLE, LEARNED) for role in DEFAULT_ROLES
    }

    # The learned run is history now: the evidence grew by one run.
    again = await stub.GetRecommendations(recommendation_request(), timeout=10)
    assert {t.evidence.n for t in again.tiers} == {41}


async def test_suggestions_from_the_session(cheap_fails: Stack) -> None:
    stub = cheap_fails.executor_stub()
    request = run_request(package_name="acme", version_bump="minor")
    request.session_id, request.seed = "session-1", 1
    await run_to_end(stub, request)
    ask = executor_pb2.GetRecommendationsRequest(template_id=TEMPLATE, session_id="session-1")

    async def recommend() -> executor_pb2.GetRecommendationsResponse:
        return await stub.GetRecommendations(ask, timeout=10)

    # The session's choices are remembered in the background after the run.
    response = await eventually(recommend, lambda r: bool(r.suggested_answers))
    from_session = {s.question_id: s for s in response.suggested_answers if s.source == "session"}
    assert from_session["version_bump"].value.string_value == "minor"
    assert from_session["package_name"].value.string_value == "acme"
    assert 0 < from_session["version_bump"].confidence < 1
    # One successful run is too little data to suggest anything from runs.
    assert all(s.source == "session" for s in response.suggested_answers)


async def test_too_little_data_recommends_nothing(cheap_fails: Stack) -> None:
    stub = cheap_fails.executor_stub()
    response = await stub.GetRecommendations(recommendation_request(), timeout=10)
    assert {t.role for t in response.tiers} == DEFAULT_ROLES
    for tier in response.tiers:
        assert tier.recommended_tier == common_pb2.TIER_UNSPECIFIED
        assert tier.rationale.startswith("too little data from simulated runs")
        assert tier.expected_saving_usd == 0.0
    assert not response.similar_runs
    assert not response.suggested_answers
    # A learned run without evidence is the template's own.
    run = await run_once(stub, 5, LEARNED)
    assert all(agent.tier_strategy != LEARNED for agent in run.agents)


async def test_similar_runs_come_from_files_while_memory_is_down(cheap_fails: Stack) -> None:
    stub = cheap_fails.executor_stub()
    for seed in range(3):
        await run_once(stub, seed)
    await cheap_fails.stop_memory()
    response = await stub.GetRecommendations(recommendation_request(), timeout=10)
    assert response.similar_runs_source == executor_pb2.SEARCH_SOURCE_LOCAL_FILES
    assert "memory service unreachable" in response.similar_runs_degraded_reason
    assert len(response.similar_runs) == 3


async def test_recommendations_refuse_bad_requests_precisely(cheap_fails: Stack) -> None:
    stub = cheap_fails.executor_stub()
    missing = await failure(stub.GetRecommendations(executor_pb2.GetRecommendationsRequest()))
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "template_id" in violations_of(missing)
    unknown = await failure(
        stub.GetRecommendations(executor_pb2.GetRecommendationsRequest(template_id="nope"))
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    wrong = await failure(stub.GetRecommendations(recommendation_request(version_bump="sideways")))
    assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations_of(wrong)) == {"version_bump"}
    long_session = recommendation_request()
    long_session.session_id = "s" * 129
    too_long = await failure(stub.GetRecommendations(long_session))
    assert too_long.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "session_id" in violations_of(too_long)
