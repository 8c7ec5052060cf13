"""Executor replicas sharing one runs directory (EXECUTOR_RUNS_DIR): each
answers for every run, resumes only its own journals, and one at a time
replays the outbox, so each pattern reaches the memory service once."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc

from attune.executor.v1 import executor_pb2
from executor_service.runs.journal import Journals
from tests.support.audit_files import audit_file_records
from tests.support.helpers import eventually, run_request
from tests.support.stack import Stack, running_stack

FINAL = {executor_pb2.RUN_STATUS_SUCCEEDED, executor_pb2.RUN_STATUS_FAILED}


@asynccontextmanager
async def two_replicas(tmp_path: Path, **overrides: object) -> AsyncIterator[tuple[Stack, Stack]]:
    """Replica a (with the memory service) and replica b: one runs dir, own data dirs."""
    shared = tmp_path / "shared-runs"
    async with running_stack(tmp_path / "a", runs_dir=shared, replica_id="a", **overrides) as a:
        b = Stack(
            tmp_path / "b", executor_overrides={"runs_dir": shared, "replica_id": "b", **overrides}
        )
        b.memory_port = a.memory_port
        await b.start_executor()
        try:
            yield a, b
        finally:
            await b.close()


async def finished_run(stack: Stack, package: str) -> executor_pb2.Run:
    last = None
    async for event in stack.executor_stub().RunWorkflow(
        run_request(package_name=package), timeout=30
    ):
        last = event
    assert last is not None
    assert last.HasField("run_finished")
    return last.run_finished.run


async def listed(stack: Stack, page_size: int) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        page = await stack.executor_stub().ListRuns(
            executor_pb2.ListRunsRequest(page_size=page_size, page_token=token), timeout=10
        )
        ids += [run.run_id for run in page.runs]
        if not (token := page.next_page_token):
            return ids


async def test_each_replica_answers_get_run_and_list_runs_for_the_others_runs(
    tmp_path: Path,
) -> None:
    async with two_replicas(tmp_path) as (a, b):
        made = [await finished_run(a, f"a{n}") for n in range(3)]
        made += [await finished_run(b, f"b{n}") for n in range(3)]
        every = sorted((run.run_id for run in made), reverse=True)
        for replica in (a, b):
            assert await listed(replica, page_size=2) == every
            for run in made:
                got = await replica.executor_stub().GetRun(
                    executor_pb2.GetRunRequest(run_id=run.run_id), timeout=10
                )
                assert got.run.status == run.status


async def test_a_run_in_progress_on_the_other_replica_answers_running(tmp_path: Path) -> None:
    async with two_replicas(tmp_path, simulated_latency_ms=300.0) as (a, b):
        call = a.executor_stub().RunWorkflow(run_request(package_name="slow"), timeout=30)
        first = await call.read()
        assert isinstance(first, executor_pb2.RunWorkflowResponse)
        got = await b.executor_stub().GetRun(
            executor_pb2.GetRunRequest(run_id=first.run_id), timeout=10
        )
        assert got.run.status == executor_pb2.RUN_STATUS_RUNNING
        assert got.run.template_id == "python_package_publish"
        while await call.read() is not grpc.aio.EOF:
            pass
        done = await b.executor_stub().GetRun(
            executor_pb2.GetRunRequest(run_id=first.run_id), timeout=10
        )
        assert done.run.status in FINAL


async def test_a_replica_resumes_only_its_own_journals(tmp_path: Path) -> None:
    shared = tmp_path / "shared-runs"
    settings: dict[str, Any] = {
        "runs_dir": shared,
        "simulated_latency_ms": 500.0,
        "drain_deadline_seconds": 0.1,
    }
    async with running_stack(tmp_path / "a", replica_id="a", **settings) as a:
        assert a.executor is not None
        call = a.executor_stub().RunWorkflow(run_request(package_name="long"), timeout=30)
        first = await call.read()
        assert isinstance(first, executor_pb2.RunWorkflowResponse)
        await a.executor.stop()  # Suspended past the drain deadline: its journal stays.
        a.executor = None
        assert [j.run_id for j in Journals(shared, "a").unfinished()] == [first.run_id]

        b = Stack(tmp_path / "b", executor_overrides={"replica_id": "b", **settings})
        b.memory_port = a.memory_port
        await b.start_executor()
        try:
            # b leaves a's run alone, and answers it as in progress.
            assert [j.run_id for j in Journals(shared, "a").unfinished()] == [first.run_id]
            assert not (shared / first.run_id).exists()
            got = await b.executor_stub().GetRun(
                executor_pb2.GetRunRequest(run_id=first.run_id), timeout=10
            )
            assert got.run.status == executor_pb2.RUN_STATUS_RUNNING

            await a.start_executor()  # a comes back and resumes it.
            answer = await eventually(
                lambda: b.executor_stub().GetRun(
                    executor_pb2.GetRunRequest(run_id=first.run_id), timeout=5
                ),
                lambda found: found.run.status in FINAL,
                within=30,
            )
            assert answer.run.status in FINAL
        finally:
            await b.close()


def stores_per_pattern(audit_log: Path) -> Counter[str]:
    """How many StorePattern calls the memory service took, per pattern id."""
    counts: Counter[str] = Counter()
    for record in audit_file_records(audit_log):
        if record.get("action") == "store" and record.get("outcome") == "OK":
            for pattern_id in record.get("pattern_ids", []):
                counts[pattern_id] += int(record.get("repeat_count", 1))
    return counts


async def test_the_shared_outbox_is_replayed_by_exactly_one_replica(tmp_path: Path) -> None:
    async with two_replicas(
        tmp_path, outbox_replay_interval_seconds=0.05, outbox_replay_max_interval_seconds=0.2
    ) as (a, b):
        await a.stop_memory()  # Runs finish while it is down: their patterns queue.
        made = [await finished_run(replica, f"{n}") for n in range(10) for replica in (a, b)]
        ids = {run.run_id for run in made}
        # Both replicas' patterns are queued in the one shared runs root.
        shared = tmp_path / "shared-runs"
        assert all((shared / run_id / "pattern.pending.pb").is_file() for run_id in ids)
        await a.start_memory()
        audit = tmp_path / "a" / "memory" / "audit.log"

        async def stored() -> Counter[str]:
            return stores_per_pattern(audit)

        counts = await eventually(stored, lambda found: ids <= found.keys(), within=30)
        assert {pattern_id: counts[pattern_id] for pattern_id in ids} == dict.fromkeys(ids, 1)
