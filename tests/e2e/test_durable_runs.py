"""Durable runs and graceful stop, with the executor as a real process (issue 14).

Rolling restart: 20 runs of 1.5 s simulated attempts; the executor is
SIGTERMed mid-way with a short drain deadline, so runs are suspended
mid-run, and started again on the same data. Every run ends SUCCEEDED or
FAILED, and exactly as its seed says (replayed here without the restart);
none is CANCELLED; each run's cost is the sum of its attempts in its run
files; each pattern reaches memory once.

SIGKILL: the executor dies mid-run; after a restart the run resumes, the
agents it had recorded are kept as they were (not run, not paid again), and
only the attempts in progress are lost.
"""

from __future__ import annotations

import asyncio
import json
import math
from contextlib import AbstractContextManager
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.dev.stack import ServiceProcess
from executor_service.runners.simulated import SimulatedRunner
from executor_service.runs.composition import PlannedAgent
from executor_service.runs.engine import TeamExecution
from executor_service.runs.journal import JOURNAL_DIR, Journals
from executor_service.templates.models import TierStrategy
from tests.support.helpers import eventually, run_request
from tests.support.process_pair import both_processes, executor_stub
from tests.support.stored_patterns import assert_stored_exactly_once, memory_stub, stored_ids

pytestmark = pytest.mark.e2e

RUNS = 20
LATENCY_MS = "1500"  # Per attempt, the middle of the 1-2 s.
FINAL = {executor_pb2.RUN_STATUS_SUCCEEDED, executor_pb2.RUN_STATUS_FAILED}


def done(run: executor_pb2.Run) -> bool:
    """Persisted and its pattern offered (a run shows its status before that)."""
    return run.pattern_delivery != executor_pb2.PATTERN_DELIVERY_UNSPECIFIED


def pair(
    root: Path, drain_deadline: str
) -> AbstractContextManager[tuple[ServiceProcess, ServiceProcess]]:
    """A memory service and a slow simulated executor, each logging under `root`."""
    return both_processes(
        root,
        RUNNER="simulated",
        SIMULATED_LATENCY_MS=LATENCY_MS,
        DRAIN_DEADLINE_SECONDS=drain_deadline,
        MAX_RUNS_IN_FLIGHT_PER_CALLER=str(RUNS),
    )


class Follower:
    """A caller's RunWorkflow stream in the background, until it ends or breaks."""

    def __init__(self, stub: executor_pb2_grpc.ExecutorServiceAsyncStub, seed: int) -> None:
        self.run_id = ""
        self.started = asyncio.Event()
        self.error: grpc.aio.AioRpcError | None = None
        request = run_request(package_name=f"pkg-{seed}")
        request.seed = seed
        self.task = asyncio.create_task(self._follow(stub, request))

    async def _follow(
        self,
        stub: executor_pb2_grpc.ExecutorServiceAsyncStub,
        request: executor_pb2.RunWorkflowRequest,
    ) -> None:
        try:
            async for event in stub.RunWorkflow(request, timeout=60):
                if event.HasField("run_started"):
                    self.run_id = event.run_id
                    self.started.set()
        except grpc.aio.AioRpcError as error:
            self.error = error
        finally:
            self.started.set()  # Also when refused: the test sees why.


def journaled(runs_root: Path) -> dict[str, dict[str, executor_pb2.AgentResult]]:
    """The agents' results each run's journal holds, by run id."""
    return {journal.run_id: journal.agents() for journal in Journals(runs_root).unfinished()}


async def final_runs(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, run_ids: list[str]
) -> list[executor_pb2.Run]:
    answers = await asyncio.gather(
        *(stub.GetRun(executor_pb2.GetRunRequest(run_id=run_id), timeout=10) for run_id in run_ids)
    )
    return [answer.run for answer in answers]


async def _no_event(field: str, message: Message) -> None:
    pass


async def replayed(run_dir: Path, seed: int) -> dict[str, list[tuple[object, ...]]]:
    """What the run's seed says each agent does, replayed without latency or restart:
    each agent's status and its attempts (number, tier, success, tokens, cost)."""
    config = json.loads((run_dir / "config.json").read_text())
    team = [
        PlannedAgent(
            role=agent["role"],
            strategy=TierStrategy(agent["tier_strategy"]),
            depends_on=tuple(agent["depends_on"]),
            stage=agent["stage"],
            config=agent["config"],
        )
        for agent in config["team"]
    ]
    results = await TeamExecution(team, SimulatedRunner(seed), 4, _no_event).run()
    return {result.role: _shape(result) for result in results}


def _shape(agent: executor_pb2.AgentResult) -> list[tuple[object, ...]]:
    return [(agent.status,)] + [
        (a.number, a.tier, a.success, a.input_tokens, a.output_tokens, a.cost_usd)
        for a in agent.attempts
    ]


def run_files(run: executor_pb2.Run) -> executor_pb2.Run:
    """The run as its directory records it."""
    return json_format.Parse(Path(run.run_dir, "result.json").read_text(), executor_pb2.Run())


async def check_on_its_own_merits(run: executor_pb2.Run) -> None:
    """Ended as its seed says, every attempt once, its cost the sum of its attempts."""
    assert run.status in FINAL, executor_pb2.RunStatus.Name(run.status)
    recorded = run_files(run)
    expected = await replayed(Path(run.run_dir), run.seed)
    assert {agent.role: _shape(agent) for agent in recorded.agents} == expected
    attempts = [attempt.cost_usd for agent in recorded.agents for attempt in agent.attempts]
    assert math.isclose(recorded.total_cost_usd, math.fsum(attempts), abs_tol=1e-12)
    succeeded = all(a.status == executor_pb2.AGENT_STATUS_SUCCEEDED for a in recorded.agents)
    assert (run.status == executor_pb2.RUN_STATUS_SUCCEEDED) == succeeded


def log_messages(root: Path) -> list[dict[str, object]]:
    lines = (root / "executor.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_rolling_restart_resumes_every_run_and_cancels_none(tmp_path: Path) -> None:
    runs_root = tmp_path / "executor" / "runs"
    with pair(tmp_path, drain_deadline="0.5") as (memory, executor):
        async with executor_stub(executor.address) as stub:
            followers = [Follower(stub, seed) for seed in range(1, RUNS + 1)]
            await asyncio.wait_for(asyncio.gather(*(f.started.wait() for f in followers)), 20)
            assert all(f.run_id for f in followers), [f.error for f in followers if f.error]
            # Mid-way: every run has recorded an attempt, none has finished.
            await eventually(
                lambda: asyncio.to_thread(journaled, runs_root),
                lambda found: len(found) == RUNS and all(found.values()),
                within=20,
            )
            assert await asyncio.to_thread(executor.terminate) == 0
            await asyncio.gather(*(f.task for f in followers))
        run_ids = [f.run_id for f in followers]
        # The streams broke, telling their callers how to find their runs.
        broken = [f.error for f in followers if f.error is not None]
        assert broken, "every run finished within the drain deadline: nothing was resumed"
        assert {error.code() for error in broken} == {grpc.StatusCode.UNAVAILABLE}
        assert all("WatchRun" in (error.details() or "") for error in broken)
        suspended = await asyncio.to_thread(journaled, runs_root)
        assert set(suspended) == {f.run_id for f in followers if f.error is not None}

        await asyncio.to_thread(executor.restart)
        async with executor_stub(executor.address) as stub:
            runs = await eventually(
                lambda: final_runs(stub, run_ids),
                lambda found: all(done(run) for run in found),
                within=60,
                interval=0.2,
            )
        for run in runs:
            await check_on_its_own_merits(run)
        async with memory_stub(memory.address) as memory_client:
            await eventually(lambda: stored_ids(memory_client), lambda ids: len(ids) >= RUNS)
        await assert_stored_exactly_once(memory.address, set(run_ids))
        assert await asyncio.to_thread(journaled, runs_root) == {}
        resumed = [m for m in log_messages(tmp_path) if m["msg"] == "run resumed"]
        assert {m["run_id"] for m in resumed} == set(suspended)
        assert not list((runs_root / JOURNAL_DIR).glob("*/start.json"))


async def test_sigkill_mid_run_loses_at_most_the_attempts_in_progress(tmp_path: Path) -> None:
    runs_root = tmp_path / "executor" / "runs"
    with pair(tmp_path, drain_deadline="30") as (memory, executor):
        async with executor_stub(executor.address) as stub:
            follower = Follower(stub, seed=7)
            await asyncio.wait_for(follower.started.wait(), 20)

            def some_agent_finished(found: dict[str, dict[str, executor_pb2.AgentResult]]) -> bool:
                agents = found.get(follower.run_id, {}).values()
                return any(agent.status in _AGENT_FINAL for agent in agents)

            await eventually(
                lambda: asyncio.to_thread(journaled, runs_root), some_agent_finished, within=20
            )
            await asyncio.to_thread(executor.kill)
            kept = (await asyncio.to_thread(journaled, runs_root))[follower.run_id]
            await follower.task
        assert follower.error is not None

        await asyncio.to_thread(executor.restart)
        async with executor_stub(executor.address) as stub:
            (run,) = await eventually(
                lambda: final_runs(stub, [follower.run_id]),
                lambda found: done(found[0]),
                within=30,
                interval=0.2,
            )
        await check_on_its_own_merits(run)
        agents = {agent.role: agent for agent in run_files(run).agents}
        for role, before in kept.items():
            after = agents[role]
            # The same attempts, durations included: kept, not run again.
            assert list(after.attempts[: len(before.attempts)]) == list(before.attempts)
            if before.status in _AGENT_FINAL:
                assert after == before
        await assert_stored_exactly_once(memory.address, {run.run_id})


_AGENT_FINAL = (executor_pb2.AGENT_STATUS_SUCCEEDED, executor_pb2.AGENT_STATUS_FAILED)
