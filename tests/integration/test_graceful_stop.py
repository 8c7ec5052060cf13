"""A stopping executor starts no run, lets runs go on to the drain deadline,
then suspends the rest (resumed at the next start); it cancels none."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from attune.executor.v1 import executor_pb2
from executor_service.runs.journal import Journals
from executor_service.server import SERVICE_NAME
from tests.support.helpers import eventually, run_request
from tests.support.stack import Stack, running_stack

FINAL = {executor_pb2.RUN_STATUS_SUCCEEDED, executor_pb2.RUN_STATUS_FAILED}


async def read_to_end(call: Any) -> executor_pb2.RunWorkflowResponse | None:
    """Reads a stream to its end; its last event (None if there was none)."""
    last = None
    while (event := await call.read()) is not grpc.aio.EOF:
        last = event
    return last


async def started_run(stack: Stack, package: str) -> tuple[Any, executor_pb2.RunWorkflowResponse]:
    """A RunWorkflow stream, and its first event (the run has started)."""
    call = stack.executor_stub().RunWorkflow(run_request(package_name=package), timeout=30)
    first = await call.read()
    assert isinstance(first, executor_pb2.RunWorkflowResponse)
    return call, first


async def test_a_stopping_executor_refuses_new_runs_and_finishes_those_in_flight(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, simulated_latency_ms=100.0, drain_deadline_seconds=30.0
    ) as stack:
        assert stack.executor is not None
        stub = stack.executor_stub()
        call, _ = await started_run(stack, "in-flight")
        stopping = asyncio.create_task(stack.executor.stop())

        async def new_run() -> grpc.StatusCode:
            try:
                async for _ in stub.RunWorkflow(run_request(package_name="late"), timeout=5):
                    pass
            except grpc.aio.AioRpcError as error:
                return error.code()
            return grpc.StatusCode.OK

        assert await eventually(new_run, lambda code: code == grpc.StatusCode.UNAVAILABLE)
        # Still serving while it drains, but not ready: no new traffic is routed here.
        health: Any = health_pb2_grpc.HealthStub(stack.channel(stack.executor.port))
        answer = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        last = await read_to_end(call)
        assert last is not None
        assert last.HasField("run_finished")
        assert last.run_finished.run.status in FINAL
        await stopping
        stack.executor = None


async def test_runs_past_the_drain_deadline_are_suspended_and_resumed_not_cancelled(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, simulated_latency_ms=500.0, drain_deadline_seconds=0.1
    ) as stack:
        assert stack.executor is not None
        call, first = await started_run(stack, "long")
        await stack.executor.stop()
        stack.executor = None
        # The stream ends, telling its caller where the run went.
        with pytest.raises(grpc.aio.AioRpcError) as broken:
            await read_to_end(call)
        assert broken.value.code() == grpc.StatusCode.UNAVAILABLE
        assert first.run_id in (broken.value.details() or "")
        assert "WatchRun" in (broken.value.details() or "")
        runs_root = tmp_path / "executor" / "runs"
        assert not (runs_root / first.run_id).exists()  # Not persisted: not finished.
        assert [j.run_id for j in Journals(runs_root).unfinished()] == [first.run_id]

        await stack.start_executor()
        stub = stack.executor_stub()
        answer = await eventually(
            lambda: stub.GetRun(executor_pb2.GetRunRequest(run_id=first.run_id), timeout=5),
            lambda found: found.run.pattern_delivery != executor_pb2.PATTERN_DELIVERY_UNSPECIFIED,
            within=20,
        )
        assert answer.run.status in FINAL
        assert Journals(runs_root).unfinished() == []


async def test_a_watch_after_the_restart_continues_the_runs_events_where_they_stopped(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, simulated_latency_ms=300.0, drain_deadline_seconds=0.1
    ) as stack:
        assert stack.executor is not None
        call, first = await started_run(stack, "long")
        seen = [first]
        # Read on until an attempt has been recorded, so there is history to skip.
        while not (event := await call.read()).HasField("attempt_finished"):
            seen.append(event)
        seen.append(event)
        await stack.executor.stop()
        stack.executor = None
        with pytest.raises(grpc.aio.AioRpcError):
            await read_to_end(call)

        await stack.start_executor()  # Resumes the run, numbering on from its log.
        last_seen = seen[-1].sequence
        watch = stack.executor_stub().WatchRun(
            executor_pb2.WatchRunRequest(run_id=first.run_id, after_sequence=last_seen),
            timeout=30,
        )
        rest = [response.event async for response in watch]
        sequences = [event.sequence for event in rest]
        # Every event after the last one seen, once each, in order, to the end.
        assert sequences == list(range(last_seen + 1, last_seen + 1 + len(rest)))
        assert rest[-1].HasField("run_finished")
        assert rest[-1].run_finished.run.status in FINAL
        assert all(event.run_id == first.run_id for event in rest)
