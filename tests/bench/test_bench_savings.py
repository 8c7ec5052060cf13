"""Savings of the learned tier strategy against progressive and premium_only.

Both services run as processes, the executor with the simulated runner given
known success chances per role and tier (EXECUTOR_SIMULATED_ROLE_SUCCESS):
mechanical roles nearly always succeed at cheap, two roles need capable, the
security audit needs premium. The publish template runs with every quality
check, so its team has 9 agents.

Runs per strategy (BENCH_SAVINGS_RUNS, default 300), in this order on one
executor: progressive, then premium_only (together the warm-up history the
learner reads), then learned. Each strategy uses the same seeds. Reported:
mean cost per run, run success rate with its 95% Wilson interval, attempts
per run, and RunWorkflow latency. Target: learned at least 30% cheaper than
premium_only at a success rate no more than 1 point below it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.dev.stack import executor_process, memory_process
from executor_service.learning.stats import Proportion
from executor_service.runs.forms import to_form_value
from tests.bench.harness import report, summary

RUNS = int(os.environ.get("BENCH_SAVINGS_RUNS", "300"))
TARGET_SAVING = 0.30
TOLERANCE = 0.01  # Success-rate points learned may lose against premium_only.

EASY = {"cheap": 0.98, "capable": 0.99, "premium": 0.995}
NEEDS_CAPABLE = {"cheap": 0.6, "capable": 0.99, "premium": 0.99}
NEEDS_PREMIUM = {"cheap": 0.3, "capable": 0.7, "premium": 0.98}
ROLE_SUCCESS = {
    "type_checker": EASY,
    "linter": EASY,
    "docs_builder": EASY,
    "version_manager": EASY,
    "changelog_updater": EASY,
    "package_builder": EASY,
    "test_runner": NEEDS_CAPABLE,
    "publisher": NEEDS_CAPABLE,
    "security_auditor": NEEDS_PREMIUM,
}
ANSWERS = {
    "package_name": to_form_value("bench"),
    "quality_checks": to_form_value(["mypy", "ruff", "bandit", "dependency_audit", "docs_build"]),
}
STRATEGIES = {
    "progressive": common_pb2.TIER_STRATEGY_PROGRESSIVE,
    "premium_only": common_pb2.TIER_STRATEGY_PREMIUM_ONLY,
    "learned": common_pb2.TIER_STRATEGY_LEARNED,
}


@dataclass
class Outcomes:
    """What the runs of one strategy cost and achieved."""

    costs: list[float] = field(default_factory=list)
    successes: int = 0
    attempts: int = 0
    seconds: list[float] = field(default_factory=list)
    first_tiers: dict[str, set[str]] = field(default_factory=dict)

    @property
    def mean_cost(self) -> float:
        return statistics.fmean(self.costs)

    @property
    def success(self) -> Proportion:
        return Proportion(self.successes, len(self.costs))


async def run_strategy(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, strategy: common_pb2.TierStrategy.ValueType
) -> Outcomes:
    outcomes = Outcomes()
    for seed in range(RUNS):
        request = executor_pb2.RunWorkflowRequest(
            template_id="python_package_publish",
            answers=ANSWERS,
            runner=common_pb2.RUNNER_SIMULATED,
            seed=seed,
            tier_strategy=strategy,
        )
        started = time.perf_counter()
        run = executor_pb2.Run()
        async for event in stub.RunWorkflow(request, timeout=60):
            if event.HasField("run_finished"):
                run = event.run_finished.run
        outcomes.seconds.append(time.perf_counter() - started)
        outcomes.costs.append(run.total_cost_usd)
        outcomes.successes += run.status == executor_pb2.RUN_STATUS_SUCCEEDED
        for agent in run.agents:
            outcomes.attempts += len(agent.attempts)
            first = common_pb2.Tier.Name(agent.attempts[0].tier) if agent.attempts else "-"
            outcomes.first_tiers.setdefault(agent.role, set()).add(first)
    return outcomes


async def test_learned_strategy_savings(tmp_path: Path) -> None:
    memory = memory_process(tmp_path, LOG_LEVEL="warning").start()
    executor = executor_process(
        tmp_path,
        memory.address,
        LOG_LEVEL="warning",
        RUNNER="simulated",
        SIMULATED_ROLE_SUCCESS=json.dumps(ROLE_SUCCESS),
    ).start()
    results: dict[str, Outcomes] = {}
    try:
        async with grpc.aio.insecure_channel(executor.address) as channel:
            stub = executor_pb2_grpc.ExecutorServiceStub(channel)
            for name, strategy in STRATEGIES.items():
                results[name] = await run_strategy(stub, strategy)
            recommendations = await stub.GetRecommendations(
                executor_pb2.GetRecommendationsRequest(
                    template_id="python_package_publish", answers=ANSWERS
                ),
                timeout=30,
            )
    finally:
        executor.terminate()
        memory.terminate()

    premium, learned = results["premium_only"], results["learned"]
    saving = 1 - learned.mean_cost / premium.mean_cost
    gap = premium.success.value - learned.success.value
    met = saving >= TARGET_SAVING and gap <= TOLERANCE
    verdicts = {
        name: (
            f"mean cost ${outcome.mean_cost:.4f}/run, success {outcome.success.value:.1%} "
            f"[{outcome.success.lower:.1%}-{outcome.success.upper:.1%}], "
            f"{outcome.attempts / len(outcome.costs):.2f} attempts/run, n={len(outcome.costs)}"
        )
        for name, outcome in results.items()
    }
    verdicts["learned first tiers"] = ", ".join(
        f"{role}={'/'.join(sorted(tiers))}" for role, tiers in sorted(learned.first_tiers.items())
    )
    verdicts["recommended tiers"] = ", ".join(
        f"{t.role}={common_pb2.Tier.Name(t.recommended_tier)}" for t in recommendations.tiers
    )
    verdicts["learned vs premium_only"] = (
        f"{saving:.1%} cheaper, success {-gap:+.1%} points (target >= {TARGET_SAVING:.0%} "
        f"cheaper within {TOLERANCE:.0%} point: {'met' if met else 'MISSED'})"
    )
    report(
        "bench_savings",
        {f"RunWorkflow, {name} (9 agents)": summary(o.seconds) for name, o in results.items()},
        verdicts,
    )
    assert met, verdicts["learned vs premium_only"]
