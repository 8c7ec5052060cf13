"""Fault tests of the pair as real processes: no pattern is lost or duplicated.

A: the memory service is SIGKILLed while 300 runs execute from concurrent
clients, then restarted on the same port and data: every run succeeds, and
once the outbox has drained, the memory service holds every run's pattern
exactly once.

B: the executor is SIGKILLed mid-run while the memory service is down:
after a restart of both, the killed run is resumed and finishes, the
patterns it had queued (and the resumed run's) arrive, no half-written
directory is left behind, and nothing is duplicated.

Both print what they measured (see them with `pytest -s`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.dev.stack import ServiceProcess, executor_process, memory_process
from tests.support.helpers import eventually, run_request
from tests.support.process_pair import executor_stub
from tests.support.stored_patterns import assert_stored_exactly_once, memory_stub, stored_ids

pytestmark = pytest.mark.e2e

RUNS = 300
CLIENTS = 8
KILL_AFTER = RUNS // 3
# Every simulated attempt succeeds, so every run's status is SUCCEEDED and a
# failed run could only be the executor failing it, which must never happen.
ALWAYS_SUCCEED = json.dumps({"cheap": 1.0, "capable": 1.0, "premium": 1.0})


@dataclass
class Processes:
    """Every service process a test starts, each with its own log; all killed at the end."""

    root: Path
    started: list[ServiceProcess] = field(default_factory=list)
    stack: ExitStack = field(default_factory=ExitStack)

    def _log(self, name: str) -> Path:
        return self.root / f"{name}-{len(self.started)}.log"

    def memory(self, port: int = 0) -> ServiceProcess:
        """A memory service on the test's data dir (the same data on every start)."""
        log = self._log("memory").open("w")
        self.stack.callback(log.close)
        process = memory_process(self.root, port=port, log=log)
        self.started.append(process)
        return process.start()

    def executor(
        self, memory_address: str, *, latency_ms: str, replay_interval: str, replay_max: str
    ) -> ServiceProcess:
        """An executor on the test's data dir (the same runs and outbox on every start):
        simulated attempts of `latency_ms`, outbox replays every `replay_interval`
        seconds, backing off up to `replay_max` seconds."""
        log = self._log("executor").open("w")
        self.stack.callback(log.close)
        # A simulated runner whatever API keys the environment holds.
        process = executor_process(
            self.root,
            memory_address,
            log=log,
            RUNNER="simulated",
            SIMULATED_SUCCESS=ALWAYS_SUCCEED,
            SIMULATED_LATENCY_MS=latency_ms,
            OUTBOX_REPLAY_INTERVAL_SECONDS=replay_interval,
            OUTBOX_REPLAY_MAX_INTERVAL_SECONDS=replay_max,
        )
        self.started.append(process)
        return process.start()

    async def close(self) -> None:
        for process in reversed(self.started):
            await asyncio.to_thread(process.kill)
        self.stack.close()


@asynccontextmanager
async def processes(root: Path) -> AsyncIterator[Processes]:
    started = Processes(root)
    try:
        yield started
    finally:
        await started.close()


async def status(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub,
) -> executor_pb2.GetStatusResponse:
    return await stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5)


async def run_once(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, package: str
) -> executor_pb2.Run:
    events = [
        event async for event in stub.RunWorkflow(run_request(package_name=package), timeout=30)
    ]
    assert events[-1].HasField("run_finished"), events[-1]
    return events[-1].run_finished.run


@pytest.mark.timeout(90)
async def test_sigkill_of_memory_during_300_runs_loses_and_duplicates_no_pattern(
    tmp_path: Path,
) -> None:
    async with processes(tmp_path) as started:
        memory = await asyncio.to_thread(started.memory)
        port = memory.port
        executor = await asyncio.to_thread(
            started.executor,
            memory.address,
            latency_ms="0",
            # Short, so the drain does not wait long even if no fresh run
            # comes after the restart to cut the backoff short.
            replay_interval="0.5",
            replay_max="2",
        )
        runs: list[executor_pb2.Run] = []
        third_done = asyncio.Event()
        claimed = 0

        async def client(number: int) -> None:
            nonlocal claimed
            async with executor_stub(executor.address) as stub:
                while claimed < RUNS:
                    claimed += 1
                    runs.append(await run_once(stub, f"pkg-{number}-{claimed}"))
                    if len(runs) >= KILL_AFTER:
                        third_done.set()

        restarted_at = 0.0

        async def fault() -> None:
            nonlocal memory, restarted_at
            await third_done.wait()
            await asyncio.to_thread(memory.kill)  # SIGKILL, mid-write for some runs.
            killed_with = len(runs)
            memory = await asyncio.to_thread(started.memory, port)
            restarted_at = time.monotonic()
            print(f"\nmemory SIGKILLed after {killed_with} runs, back after {len(runs)}")

        began = time.monotonic()
        await asyncio.gather(fault(), *(client(n) for n in range(CLIENTS)))
        ran_for = time.monotonic() - began
        finished_at = time.monotonic()

        assert len(runs) == RUNS
        assert {run.status for run in runs} == {executor_pb2.RUN_STATUS_SUCCEEDED}
        run_ids = {run.run_id for run in runs}
        assert len(run_ids) == RUNS
        queued = sum(run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_QUEUED for run in runs)
        assert queued > 0, "the memory outage should have queued some patterns"
        assert all(
            run.pattern_delivery
            in {executor_pb2.PATTERN_DELIVERY_STORED, executor_pb2.PATTERN_DELIVERY_QUEUED}
            for run in runs
        )

        async with executor_stub(executor.address) as stub:
            drained = await eventually(
                lambda: status(stub), lambda s: s.outbox_depth == 0, within=30, interval=0.05
            )
            drained_at = time.monotonic()
            assert drained.rejected_pattern_count == 0
            assert drained.run_count == RUNS
        await assert_stored_exactly_once(memory.address, run_ids)
        print(
            f"{RUNS} runs from {CLIENTS} clients in {ran_for:.2f} s; {queued} queued; "
            f"outbox drained {drained_at - restarted_at:.2f} s after the memory restart "
            f"({drained_at - finished_at:.2f} s after the last run)"
        )


@pytest.mark.timeout(60)
async def test_sigkill_of_executor_mid_run_keeps_its_queue_and_leaves_no_half_run(
    tmp_path: Path,
) -> None:
    async with processes(tmp_path) as started:
        memory = await asyncio.to_thread(started.memory)
        port, memory_address = memory.port, memory.address
        # Slow runs (200 ms per attempt), to kill one mid-flight; quick replays.
        start_executor = functools.partial(
            started.executor,
            memory_address,
            latency_ms="200",
            replay_interval="0.2",
            replay_max="1",
        )
        executor = await asyncio.to_thread(start_executor)
        assert await asyncio.to_thread(memory.terminate) == 0  # Stopped: patterns queue.

        async with executor_stub(executor.address) as stub:
            done = await asyncio.gather(*(run_once(stub, f"pkg-{n}") for n in range(3)))
            assert {run.pattern_delivery for run in done} == {executor_pb2.PATTERN_DELIVERY_QUEUED}
            assert (await status(stub)).outbox_depth == 3
            stream = stub.RunWorkflow(run_request(package_name="killed"), timeout=30)
            killed_id = ""
            async for event in stream:
                killed_id = event.run_id
                # An attempt under way: the run is mid-flight, 200 ms from its end at least.
                if event.HasField("attempt_started"):
                    break
            await asyncio.to_thread(executor.kill)
            with pytest.raises(grpc.aio.AioRpcError):
                async for _ in stream:
                    pass
        assert killed_id

        # The executor comes back first, the memory service still down: the
        # queue it left on disk is its queue again, and the killed run, resumed
        # from its journal, finishes and queues its pattern beside them.
        executor = await asyncio.to_thread(start_executor)
        queued_ids = {run.run_id for run in done}
        async with executor_stub(executor.address) as stub:
            resumed = await eventually(
                lambda: stub.GetRun(executor_pb2.GetRunRequest(run_id=killed_id), timeout=5),
                # Queued: persisted and offered (a run shows its status before that).
                lambda answer: answer.run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_QUEUED,
            )
            assert resumed.run.status == executor_pb2.RUN_STATUS_SUCCEEDED
            queued_ids.add(killed_id)
            again = await status(stub)
            assert again.outbox_depth == 4
            assert again.oldest_queued_age.ToTimedelta().total_seconds() > 0
            listed = await stub.ListRuns(executor_pb2.ListRunsRequest(page_size=100), timeout=5)
            assert {run.run_id for run in listed.runs} == queued_ids
            for run in listed.runs:
                whole = await stub.GetRun(executor_pb2.GetRunRequest(run_id=run.run_id), timeout=5)
                assert whole.run.status == executor_pb2.RUN_STATUS_SUCCEEDED
                assert whole.run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_QUEUED
            runs_dir = tmp_path / "executor" / "runs"
            # Whole runs only: the killed run's first life left no directory, half or whole.
            left = {entry.name for entry in runs_dir.iterdir() if not entry.name.startswith(".")}
            assert left == queued_ids
            assert not (runs_dir / ".staging" / killed_id).exists()

            restarted_at = time.monotonic()
            memory = await asyncio.to_thread(started.memory, port)
            async with memory_stub(memory.address) as memory_client:
                await eventually(
                    lambda: stored_ids(memory_client),
                    lambda ids: set(ids) == queued_ids,
                    within=30,
                    interval=0.05,
                )
            arrived_at = time.monotonic()
            drained = await eventually(lambda: status(stub), lambda s: s.outbox_depth == 0)
            assert drained.rejected_pattern_count == 0
            for run_id in queued_ids:
                stored = await stub.GetRun(executor_pb2.GetRunRequest(run_id=run_id), timeout=5)
                assert stored.run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED
        await assert_stored_exactly_once(memory.address, queued_ids)
        print(f"\nqueued patterns arrived {arrived_at - restarted_at:.2f} s after memory started")
