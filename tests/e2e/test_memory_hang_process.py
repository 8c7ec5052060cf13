"""A memory service that hangs, with every party a real process.

The memory service is tests/e2e/hanging_memory.py: it accepts every call
and answers none. The executor's deadlines turn each hung call into
DEADLINE_EXCEEDED, the circuit breaker opens, and from then on nothing waits
for the memory service: every run completes within its own deadline with its
pattern queued, and SearchRuns (AUTO) answers from the local run files far
faster than the memory deadline. Then a real memory service takes the port
over: the breaker closes, the outbox drains, and the memory service holds
exactly the runs' patterns.

tests/integration/test_memory_hang.py tells the same story in one process
(faster, and it checks the breaker's transitions from its log records); this
one proves it across process boundaries, through real sockets and signals.
It prints what it measured (see it with `pytest -s`).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import grpc
import pytest

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import ServiceProcess, executor_process, memory_process
from tests.e2e.hanging_memory import LOG_PREFIX
from tests.support.helpers import eventually, run_request
from tests.support.process_pair import executor_stub

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
MEMORY_TIMEOUT = 0.5
THRESHOLD = 3
# Long enough that the searches measured while OPEN (milliseconds each) all
# fall inside one open period, short enough that recovery comes soon after
# the real memory service is up.
RESET_SECONDS = 3.0
RUNS = 5
SEARCHES = 5
RUN_DEADLINE = 10.0
COMPLETED = {executor_pb2.RUN_STATUS_SUCCEEDED, executor_pb2.RUN_STATUS_FAILED}
STORE = "/attune.memory.v1.MemoryService/StorePattern"
SEARCH = "/attune.memory.v1.MemoryService/SearchPatterns"


class HangingMemory:
    """tests/e2e/hanging_memory.py as a child process, its stderr in a log file.

    Not a ServiceProcess: that waits for readiness over the health service,
    which this server, by design, never answers. Its port file says it is up.
    """

    def __init__(self, root: Path, log: IO[str]) -> None:
        self.port_file = root / "hanging_memory.port"
        self.log_path = Path(log.name)
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 15.0) -> int:
        """Starts the process; returns its port once it is serving."""
        self.port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.e2e.hanging_memory",
                "--port-file",
                str(self.port_file),
            ],
            cwd=REPO_ROOT,  # `tests` is a package of the checkout, not installed.
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        # It writes the port file (atomically) only once it is serving.
        while not self.port_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"hanging memory exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"hanging memory did not start within {timeout} s")
            time.sleep(0.02)
        self.port = int(self.port_file.read_text())
        return self.port

    def calls(self, method: str) -> int:
        """How many calls of `method` reached the server so far."""
        self._log.flush()
        lines = self.log_path.read_text().splitlines()
        return sum(line == f"{LOG_PREFIX}{method}" for line in lines)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM; returns the exit code once it has exited (and freed the port)."""
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, for cleanup after a failure."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def child_processes(root: Path) -> Iterator[tuple[ExitStack, list[HangingMemory | ServiceProcess]]]:
    """Every child the test starts, killed at the end whatever happened."""
    started: list[HangingMemory | ServiceProcess] = []
    with ExitStack() as logs:
        try:
            yield logs, started
        finally:
            for child in reversed(started):
                child.kill()


def breaker_moves(executor_log: Path) -> list[str]:
    """The states the executor's breaker moved to, in order, from its JSON log."""
    moves = []
    for line in executor_log.read_text().splitlines():
        # gRPC's own C-core lines share the stream; only JSON lines are records.
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("logger") == "attune.executor.breaker" and "to_state" in record:
            moves.append(str(record["to_state"]))
    return moves


async def status(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub,
) -> executor_pb2.GetStatusResponse:
    return await stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5)


async def timed_run(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, package: str
) -> tuple[float, executor_pb2.Run]:
    """One run to its end, and how long it took; fails if it overran its deadline."""
    started = time.perf_counter()
    events = [
        event
        async for event in stub.RunWorkflow(run_request(package_name=package), timeout=RUN_DEADLINE)
    ]
    took = time.perf_counter() - started
    assert events[-1].HasField("run_finished"), events[-1]
    return took, events[-1].run_finished.run


async def timed_search(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub,
) -> tuple[float, executor_pb2.SearchRunsResponse]:
    started = time.perf_counter()
    found = await stub.SearchRuns(
        executor_pb2.SearchRunsRequest(
            query="python package publish", mode=executor_pb2.SEARCH_RUNS_MODE_AUTO
        ),
        timeout=RUN_DEADLINE,
    )
    return time.perf_counter() - started, found


@pytest.mark.timeout(90)
async def test_a_hanging_memory_process_trips_the_breaker_and_runs_keep_completing(
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    with child_processes(tmp_path) as (logs, started):
        hanging = HangingMemory(tmp_path, logs.enter_context((tmp_path / "hanging.log").open("w")))
        started.append(hanging)
        port = await asyncio.to_thread(hanging.start)

        executor_log = tmp_path / "executor.log"
        executor = executor_process(
            tmp_path,
            f"127.0.0.1:{port}",
            log=logs.enter_context(executor_log.open("w")),
            # The simulated runner whatever API keys the environment holds;
            # its runs may fail on their own, which still completes them.
            RUNNER="simulated",
            MEMORY_TIMEOUT_SECONDS=str(MEMORY_TIMEOUT),
            BREAKER_FAILURE_THRESHOLD=str(THRESHOLD),
            BREAKER_RESET_SECONDS=str(RESET_SECONDS),
            # Quick replays, so the drain after recovery is not a long wait.
            OUTBOX_REPLAY_INTERVAL_SECONDS="0.2",
            OUTBOX_REPLAY_MAX_INTERVAL_SECONDS="1",
        )
        started.append(executor)
        # Its readiness does not hang on the memory service: it degrades instead.
        await asyncio.to_thread(executor.start)

        async with executor_stub(executor.address) as stub:
            # Every run completes, its pattern queued, bounded by the memory
            # deadline (not the hang) and far inside its own deadline.
            timings: list[float] = []
            run_ids: list[str] = []
            statuses: list[str] = []
            for number in range(RUNS):
                took, run = await timed_run(stub, f"pkg-{number}")
                assert run.status in COMPLETED, run
                assert run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_QUEUED
                timings.append(took)
                run_ids.append(run.run_id)
                statuses.append(executor_pb2.RunStatus.Name(run.status))
            assert max(timings) < MEMORY_TIMEOUT + 1.0, timings
            # The hanging process was really asked, and really held the calls.
            await eventually(lambda: asyncio.to_thread(hanging.calls, STORE), lambda n: n >= 1)

            tripped = await eventually(
                lambda: status(stub),
                lambda s: s.breaker_state == executor_pb2.BREAKER_STATE_OPEN,
            )
            assert tripped.outbox_depth == RUNS
            assert not tripped.memory_reachable
            assert "DEADLINE_EXCEEDED" in tripped.last_memory_error, tripped.last_memory_error
            # The last run came after the breaker opened: no memory wait at all.
            assert timings[-1] < MEMORY_TIMEOUT, timings

            # Once open, a search answers from the local files without asking.
            searches_before = await asyncio.to_thread(hanging.calls, SEARCH)
            latencies: list[float] = []
            for _ in range(SEARCHES):
                took, found = await timed_search(stub)
                latencies.append(took)
                assert found.source == executor_pb2.SEARCH_SOURCE_LOCAL_FILES
                assert found.degraded
                assert "circuit breaker open" in found.degraded_reason, found.degraded_reason
                assert {hit.run_id for hit in found.hits} == set(run_ids)
            assert await asyncio.to_thread(hanging.calls, SEARCH) == searches_before
            median = statistics.median(latencies)
            assert median < MEMORY_TIMEOUT / 2, latencies

            # The hanging process gives the port to a real memory service.
            assert await asyncio.to_thread(hanging.terminate) == 0
            memory = memory_process(
                tmp_path, port=port, log=logs.enter_context((tmp_path / "memory.log").open("w"))
            )
            started.append(memory)
            restarted_at = time.monotonic()
            await asyncio.to_thread(memory.start)
            recovered = await eventually(
                lambda: status(stub),
                lambda s: (
                    s.breaker_state == executor_pb2.BREAKER_STATE_CLOSED and s.outbox_depth == 0
                ),
                within=RESET_SECONDS + 15,
                interval=0.05,
            )
            recovered_after = time.monotonic() - restarted_at
            assert recovered.memory_reachable
            assert recovered.rejected_pattern_count == 0
            # Opened by the hang; closed by a probe once the real service answered.
            moves = breaker_moves(executor_log)
            assert moves[0] == "OPEN", moves
            assert moves[-2:] == ["HALF_OPEN", "CLOSED"], moves

        async with grpc.aio.insecure_channel(memory.address) as channel:
            listed = await memory_pb2_grpc.MemoryServiceStub(channel).ListPatterns(
                memory_pb2.ListPatternsRequest(namespace="default", page_size=100), timeout=5
            )
        assert sorted(pattern.id for pattern in listed.patterns) == sorted(run_ids)
        assert not listed.next_page_token

    print(
        f"\nruns: {[round(t * 1000) for t in timings]} ms "
        f"({', '.join(statuses)}); "
        f"searches while open: median {median * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms "
        f"(memory timeout {MEMORY_TIMEOUT * 1000:.0f} ms); "
        f"breaker closed and outbox drained {recovered_after:.2f} s after the real memory "
        f"service started; wall time {time.monotonic() - began:.1f} s"
    )
