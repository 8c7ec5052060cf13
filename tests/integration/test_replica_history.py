"""Two executor replicas sharing one runs directory, as a shared volume gives them.

Replica B's data dir holds `runs` as a symlink to replica A's runs directory
(its local index stays its own). Runs finished on A are counted by B's
analytics, learned from by B's recommendations and found by B's local
search: B catches up with the directory, not only at start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.server import start as start_executor
from executor_service.settings import ExecutorSettings
from memory_service.servicekit.lifecycle import RunningService
from tests.support.helpers import eventually, run_request, run_to_end
from tests.support.stack import Stack, running_stack

TEMPLATE = "python_package_publish"
CHEAP, CAPABLE = common_pb2.TIER_CHEAP, common_pb2.TIER_CAPABLE
RUNS = 5
# Cheap attempts always fail, capable ones always succeed: five runs are
# enough evidence under the loose policy both replicas use here.
LEARNING: dict[str, object] = {
    "runner": "simulated",
    "simulated_success": {"cheap": 0.0, "capable": 1.0, "premium": 1.0},
    "recommendation_min_runs": 3,
    "recommendation_target_success": 0.5,
    "outbox_replay_interval_seconds": 0.05,
}


@dataclass
class Replicas:
    stack: Stack
    a: executor_pb2_grpc.ExecutorServiceAsyncStub
    b: executor_pb2_grpc.ExecutorServiceAsyncStub


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[Replicas]:
    """Replica A (the stack's executor) and replica B over A's runs directory."""
    async with running_stack(tmp_path, **LEARNING) as stack:
        b_data = tmp_path / "replica-b"
        b_data.mkdir(mode=0o700)
        (b_data / "runs").symlink_to(tmp_path / "executor" / "runs", target_is_directory=True)
        b: RunningService = await start_executor(
            ExecutorSettings(
                port=0,
                data_dir=b_data,
                memory_address=stack.memory_address,
                auth_disabled=True,
                **LEARNING,  # type: ignore[arg-type]
            )
        )
        try:
            b_stub = executor_pb2_grpc.ExecutorServiceStub(stack.channel(b.port))
            yield Replicas(stack, stack.executor_stub(), b_stub)
        finally:
            await b.stop()


async def run_on(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, seed: int, package_name: str
) -> executor_pb2.Run:
    request = run_request(package_name=package_name)
    request.seed, request.tier_strategy = seed, common_pb2.TIER_STRATEGY_PROGRESSIVE
    request.runner = common_pb2.RUNNER_SIMULATED
    events = await run_to_end(stub, request)
    return events[-1].run_finished.run


def analytics_request() -> executor_pb2.GetAnalyticsRequest:
    return executor_pb2.GetAnalyticsRequest(template_id=TEMPLATE)


def role_counts(response: executor_pb2.GetAnalyticsResponse) -> dict[tuple[str, int], int]:
    return {(row.role, row.tier): row.success_rate.n for row in response.role_tiers}


async def test_analytics_and_recommendations_on_b_count_the_runs_finished_on_a(
    replicas: Replicas,
) -> None:
    # B reads its history before A runs anything: what follows is caught up
    # while B serves, not loaded at its first read.
    empty = await replicas.b.GetAnalytics(analytics_request(), timeout=10)
    assert empty.run_count == 0
    runs = [await run_on(replicas.a, seed, f"pkg{seed}") for seed in range(RUNS)]
    on_a = await replicas.a.GetAnalytics(analytics_request(), timeout=10)
    assert on_a.run_count == RUNS

    async def on_b() -> executor_pb2.GetAnalyticsResponse:
        return await replicas.b.GetAnalytics(analytics_request(), timeout=10)

    counted = await eventually(on_b, lambda response: response.run_count == RUNS)
    assert role_counts(counted) == role_counts(on_a)
    assert counted.cost.total_usd == pytest.approx(sum(run.total_cost_usd for run in runs))

    # B's recommendations learn from A's runs: every role's cheap attempt
    # failed and its capable one succeeded, in each of A's runs.
    recommended = await replicas.b.GetRecommendations(
        executor_pb2.GetRecommendationsRequest(
            template_id=TEMPLATE, answers=run_request(package_name="x").answers
        ),
        timeout=10,
    )
    assert recommended.tiers
    for tier in recommended.tiers:
        assert tier.recommended_tier == CAPABLE, tier.rationale
        assert tier.evidence.n == RUNS
    # A learned run on B starts each role at the tier learned from A's runs.
    request = run_request(package_name="learned")
    request.seed, request.tier_strategy = 99, common_pb2.TIER_STRATEGY_LEARNED
    learned = (await run_to_end(replicas.b, request))[-1].run_finished.run
    assert {agent.attempts[0].tier for agent in learned.agents} == {CAPABLE}


async def test_a_local_search_on_b_finds_a_run_finished_on_a(replicas: Replicas) -> None:
    def local(query: str) -> executor_pb2.SearchRunsRequest:
        return executor_pb2.SearchRunsRequest(
            query=query, mode=executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES
        )

    # B's index is open (and searched) before A's run exists.
    assert not (await replicas.b.SearchRuns(local("zanzibarquux"), timeout=10)).hits
    run = await run_on(replicas.a, 1, "zanzibarquux")

    async def search_b() -> executor_pb2.SearchRunsResponse:
        return await replicas.b.SearchRuns(local("zanzibarquux"), timeout=10)

    found = await eventually(search_b, lambda response: bool(response.hits))
    assert [hit.run_id for hit in found.hits] == [run.run_id]
    assert found.source == executor_pb2.SEARCH_SOURCE_LOCAL_FILES
