"""A client that cancels the stream cancels the run; the run is still recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from attune.executor.v1 import executor_pb2
from tests.support.helpers import eventually, run_request
from tests.support.stack import Stack, running_stack


@pytest.fixture
async def slow_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Both services; every simulated attempt takes 100 ms."""
    async with running_stack(tmp_path, simulated_latency_ms=100.0) as running:
        yield running


async def test_cancelled_stream_persists_a_cancelled_run(slow_stack: Stack) -> None:
    stub = slow_stack.executor_stub()
    call = stub.RunWorkflow(run_request(package_name="demo"), timeout=30)
    first = await call.read()
    assert isinstance(first, executor_pb2.RunWorkflowResponse)
    run_id = first.run_id
    second = await call.read()
    assert isinstance(second, executor_pb2.RunWorkflowResponse)
    call.cancel()

    async def fetch() -> executor_pb2.ListRunsResponse:
        return await stub.ListRuns(
            executor_pb2.ListRunsRequest(filter="status = CANCELLED"), timeout=5
        )

    listed = await eventually(fetch, lambda response: len(response.runs) == 1)
    run = listed.runs[0]
    assert run.run_id == run_id
    statuses = {agent.status for agent in run.agents}
    assert executor_pb2.AGENT_STATUS_CANCELLED in statuses
    assert all(
        agent.skip_reason == "the run was cancelled"
        for agent in run.agents
        if agent.status == executor_pb2.AGENT_STATUS_CANCELLED
    )
    report = Path(run.run_dir, "report.md").read_text()
    assert "cancelled" in report


async def test_a_run_in_progress_is_visible_as_running(slow_stack: Stack) -> None:
    stub = slow_stack.executor_stub()
    call = stub.RunWorkflow(run_request(package_name="demo"), timeout=30)
    first = await call.read()
    assert isinstance(first, executor_pb2.RunWorkflowResponse)
    seen = await stub.GetRun(executor_pb2.GetRunRequest(run_id=first.run_id), timeout=5)
    assert seen.run.status == executor_pb2.RUN_STATUS_RUNNING
    assert {agent.role for agent in seen.run.agents} >= {"test_runner", "publisher"}
    while await call.read() is not grpc.aio.EOF:
        pass
    done = await stub.GetRun(executor_pb2.GetRunRequest(run_id=first.run_id), timeout=5)
    assert done.run.status != executor_pb2.RUN_STATUS_RUNNING
