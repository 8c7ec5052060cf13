"""The thin path through both services: run, persist, store, search, degrade."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from tests.support.helpers import eventually, run_request, run_to_end
from tests.support.stack import Stack, running_stack

# events.jsonl, the run's event log, is in place once the stream has ended.
EXPECTED_FILES = {
    "config.json",
    "form_responses.json",
    "agents.json",
    "result.json",
    "report.md",
    "events.jsonl",
}


async def test_run_streams_progress_then_the_run(stack: Stack) -> None:
    events = await run_to_end(stack.executor_stub(), run_request(package_name="demo"))
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_finished"
    assert kinds.index("run_persisted") < kinds.index("pattern_stored") < len(kinds) - 1
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    run = events[-1].run_finished.run
    assert run.status in (executor_pb2.RUN_STATUS_SUCCEEDED, executor_pb2.RUN_STATUS_FAILED)
    assert {agent.role for agent in run.agents} >= {"test_runner", "package_builder", "publisher"}
    assert run.total_cost_usd == pytest.approx(sum(agent.cost_usd for agent in run.agents))
    assert run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED
    assert all(event.run_id == run.run_id for event in events)


async def test_run_directory_is_complete_and_honest(stack: Stack) -> None:
    events = await run_to_end(stack.executor_stub(), run_request(package_name="demo"))
    run = events[-1].run_finished.run
    run_dir = Path(run.run_dir)
    assert {path.name for path in run_dir.iterdir()} == EXPECTED_FILES
    config = json.loads((run_dir / "config.json").read_text())
    assert config["runner"] == "simulated"
    assert config["seed"] == int(run.seed)
    assert "simulated" in (run_dir / "report.md").read_text()
    assert json.loads((run_dir / "form_responses.json").read_text())["package_name"] == {
        "string_value": "demo"
    }
    # No staging copy is left behind, in whichever replica's staging folder.
    stagings = [p for p in run_dir.parent.iterdir() if p.name.startswith(".staging")]
    assert stagings, "the run was not staged where the store stages runs"
    assert not any((staging / run.run_id).exists() for staging in stagings)


async def test_pattern_reaches_the_memory_store(stack: Stack) -> None:
    events = await run_to_end(stack.executor_stub(), run_request(package_name="demo"))
    run = events[-1].run_finished.run
    stored = await stack.memory_stub().GetPattern(
        memory_pb2.GetPatternRequest(namespace="default", pattern_id=run.run_id), timeout=5
    )
    pattern = stored.pattern
    assert pattern.type == memory_pb2.PATTERN_TYPE_EXECUTION
    assert pattern.template_id == "python_package_publish"
    assert pattern.runner == "simulated"
    assert pattern.form_responses["package_name"].string_value == "demo"
    assert [agent.role for agent in pattern.agents] == [agent.role for agent in run.agents]
    assert (stack.root / "memory" / "patterns.sqlite3").is_file()


async def test_same_seed_replays_the_same_run(stack: Stack) -> None:
    stub = stack.executor_stub()
    request = run_request(package_name="demo")
    request.seed = 1234
    first = (await run_to_end(stub, request))[-1].run_finished.run
    second = (await run_to_end(stub, request))[-1].run_finished.run
    assert first.run_id != second.run_id
    assert first.total_cost_usd == second.total_cost_usd
    assert [a.status for a in first.agents] == [a.status for a in second.agents]


async def test_search_answers_from_memory_then_from_files(stack: Stack) -> None:
    stub = stack.executor_stub()
    run = (await run_to_end(stub, run_request(package_name="demo")))[-1].run_finished.run
    query = executor_pb2.SearchRunsRequest(query="python package publish")

    from_memory = await stub.SearchRuns(query, timeout=5)
    assert from_memory.source == executor_pb2.SEARCH_SOURCE_MEMORY
    assert not from_memory.degraded
    assert run.run_id in [hit.run_id for hit in from_memory.hits]

    await stack.stop_memory()
    from_files = await stub.SearchRuns(query, timeout=5)
    assert from_files.source == executor_pb2.SEARCH_SOURCE_LOCAL_FILES
    assert from_files.degraded
    assert "unreachable" in from_files.degraded_reason
    assert [hit.run_id for hit in from_files.hits] == [hit.run_id for hit in from_memory.hits]


async def test_memory_mode_refuses_to_degrade(stack: Stack) -> None:
    stub = stack.executor_stub()
    await stack.stop_memory()
    request = executor_pb2.SearchRunsRequest(
        query="publish", mode=executor_pb2.SEARCH_RUNS_MODE_MEMORY
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.SearchRuns(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_local_files_mode_never_asks_memory(stack: Stack) -> None:
    stub = stack.executor_stub()
    run = (await run_to_end(stub, run_request(package_name="demo")))[-1].run_finished.run
    request = executor_pb2.SearchRunsRequest(
        query="publish", mode=executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES
    )
    response = await stub.SearchRuns(request, timeout=5)
    assert response.source == executor_pb2.SEARCH_SOURCE_LOCAL_FILES
    assert not response.degraded
    assert [hit.run_id for hit in response.hits] == [run.run_id]


async def test_run_succeeds_while_memory_is_down_and_its_pattern_arrives_later(
    stack: Stack,
) -> None:
    stub = stack.executor_stub()
    await stack.stop_memory()
    events = await run_to_end(stub, run_request(package_name="demo"))
    run = events[-1].run_finished.run
    queued = [event.pattern_queued for event in events if event.HasField("pattern_queued")]
    assert len(queued) == 1
    assert queued[0].pattern_id == run.run_id
    assert run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_QUEUED
    status = await stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5)
    assert status.outbox_depth == 1
    assert not status.memory_reachable

    await stack.start_memory()
    assert stack.executor is not None
    # The replay loop runs every 50 ms here; wait on its outcome, not on time.
    status = await eventually(
        lambda: stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5),
        lambda status: status.outbox_depth == 0,
    )
    assert status.memory_reachable
    stored = await stack.memory_stub().GetPattern(
        memory_pb2.GetPatternRequest(namespace="default", pattern_id=run.run_id), timeout=5
    )
    assert stored.pattern.id == run.run_id


async def test_restarted_executor_rebuilds_its_local_index(stack: Stack) -> None:
    stub = stack.executor_stub()
    run = (await run_to_end(stub, run_request(package_name="demo")))[-1].run_finished.run
    assert stack.executor is not None
    await stack.executor.stop()
    await stack.start_executor()
    request = executor_pb2.SearchRunsRequest(
        query="demo", mode=executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES
    )
    response = await stack.executor_stub().SearchRuns(request, timeout=5)
    assert [hit.run_id for hit in response.hits] == [run.run_id]
    fetched = await stack.executor_stub().GetRun(
        executor_pb2.GetRunRequest(run_id=run.run_id), timeout=5
    )
    assert fetched.run.total_cost_usd == run.total_cost_usd


async def test_queued_patterns_arrive_after_both_services_restart(stack: Stack) -> None:
    await stack.stop_memory()
    stub = stack.executor_stub()
    runs = [(await run_to_end(stub, run_request(package_name="demo")))[-1].run_finished.run]
    runs.append((await run_to_end(stub, run_request(package_name="demo")))[-1].run_finished.run)
    assert stack.executor is not None
    await stack.executor.stop()
    await stack.start_memory()
    await stack.start_executor()
    restarted = stack.executor_stub()
    await eventually(
        lambda: restarted.GetStatus(executor_pb2.GetStatusRequest(), timeout=5),
        lambda status: status.outbox_depth == 0,
    )
    memory = stack.memory_stub()
    for run in runs:
        stored = await memory.GetPattern(
            memory_pb2.GetPatternRequest(namespace="default", pattern_id=run.run_id), timeout=5
        )
        assert stored.pattern.run_id == run.run_id
        fetched = await restarted.GetRun(executor_pb2.GetRunRequest(run_id=run.run_id), timeout=5)
        assert fetched.run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_STORED


async def test_a_pattern_the_memory_service_refuses_is_reported_rejected_not_stored(
    stack: Stack,
) -> None:
    # The memory service refuses a different body under an existing id for
    # good (ALREADY_EXISTS): retrying it could never succeed.
    stub = stack.executor_stub()
    request = run_request(package_name="demo")
    events = await run_to_end(stub, request)
    run = events[-1].run_finished.run
    assert stack.executor is not None
    # Re-queue a different pattern under the same id, as a corrupted replay would.
    marker = Path(run.run_dir) / "pattern.pending.pb"
    different = memory_pb2.Pattern(
        id=run.run_id, type=memory_pb2.PATTERN_TYPE_EXECUTION, content="something else"
    )
    marker.write_bytes(different.SerializeToString())
    await stack.executor.stop()
    await stack.start_executor()
    restarted = stack.executor_stub()
    status = await eventually(
        lambda: restarted.GetStatus(executor_pb2.GetStatusRequest(), timeout=5),
        lambda status: status.outbox_depth == 0,
    )
    assert status.rejected_pattern_count == 1
    fetched = await restarted.GetRun(executor_pb2.GetRunRequest(run_id=run.run_id), timeout=5)
    assert fetched.run.pattern_delivery == executor_pb2.PATTERN_DELIVERY_REJECTED
    assert (Path(run.run_dir) / "pattern.rejected.pb").exists()


async def test_status_tells_memory_reachability_without_any_call(tmp_path: Path) -> None:
    async with running_stack(tmp_path, readiness_interval_seconds=0.05) as stack:
        stub = stack.executor_stub()
        status = await eventually(
            lambda: stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5),
            lambda status: status.memory_reachable,
        )
        assert status.last_memory_error == ""
        await stack.stop_memory()
        down = await eventually(
            lambda: stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=5),
            lambda status: not status.memory_reachable,
        )
        assert down.last_memory_error
