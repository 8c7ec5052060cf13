"""WatchRun re-attaches to a run: the events RunWorkflow streamed, from the
start or after a sequence, then live until run_finished; from this executor
or another process sharing its run files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.dev.stack import executor_process
from executor_service.runs.event_log import JOURNAL
from executor_service.runs.store import new_run_id
from tests.support.helpers import run_request, run_to_end
from tests.support.secured_executor import (
    SecuredExecutor,
    not_found_as_unknown,
    secured_executor,
)
from tests.support.stack import Stack, running_stack

Event = executor_pb2.RunWorkflowResponse
SENSITIVE_NAME = "payroll salary exporter"  # Makes the run's pattern SENSITIVE.


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as running:
        yield running


@pytest.fixture
async def slow_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Every simulated attempt takes 100 ms: runs last long enough to join."""
    async with running_stack(tmp_path, simulated_latency_ms=100.0) as running:
        yield running


async def watched(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub,
    run_id: str,
    after: int = 0,
    metadata: tuple[tuple[str, str], ...] = (),
) -> list[Event]:
    request = executor_pb2.WatchRunRequest(run_id=run_id, after_sequence=after)
    return [
        response.event async for response in stub.WatchRun(request, metadata=metadata, timeout=30)
    ]


async def rest_of(
    call: grpc.aio.UnaryStreamCall[executor_pb2.RunWorkflowRequest, Event],
) -> list[Event]:
    events = []
    while (event := await call.read()) is not grpc.aio.EOF:
        assert isinstance(event, Event)
        events.append(event)
    return events


def assert_whole(events: list[Event], first: int) -> None:
    """Numbered first, first+1, ... without gap or repeat, ending the run."""
    assert [event.sequence for event in events] == list(range(first, first + len(events)))
    assert events[-1].WhichOneof("event") == "run_finished"


async def test_a_finished_run_is_replayed_as_it_was_streamed(stack: Stack) -> None:
    stub = stack.executor_stub()
    streamed = await run_to_end(stub, run_request(package_name="demo"))
    run = streamed[-1].run_finished.run
    assert await watched(stub, run.run_id) == streamed
    # The log is kept with the run; the journal holds nothing of it any more.
    assert (Path(run.run_dir) / "events.jsonl").read_text().count("\n") == len(streamed)
    assert not (Path(run.run_dir).parent / JOURNAL / run.run_id).exists()


async def test_after_a_sequence_only_later_events_are_sent(stack: Stack) -> None:
    stub = stack.executor_stub()
    streamed = await run_to_end(stub, run_request(package_name="demo"))
    run_id = streamed[-1].run_id
    assert await watched(stub, run_id, after=3) == streamed[3:]
    assert await watched(stub, run_id, after=len(streamed)) == []


async def test_a_watch_joining_mid_run_gets_the_rest_live(slow_stack: Stack) -> None:
    stub = slow_stack.executor_stub()
    call = stub.RunWorkflow(run_request(package_name="demo"), timeout=30)
    seen = [await call.read() for _ in range(3)]
    assert all(isinstance(event, Event) for event in seen)
    last = seen[-1]
    assert isinstance(last, Event)
    rest, watch = await asyncio.gather(rest_of(call), watched(stub, last.run_id, last.sequence))
    assert watch == rest
    assert_whole(watch, last.sequence + 1)


async def test_a_cancelled_run_ends_its_watch_with_run_finished(slow_stack: Stack) -> None:
    stub = slow_stack.executor_stub()
    call = stub.RunWorkflow(run_request(package_name="demo"), timeout=30)
    first = await call.read()
    assert isinstance(first, Event)
    watch = stub.WatchRun(executor_pb2.WatchRunRequest(run_id=first.run_id), timeout=30)
    replayed = await watch.read()
    assert isinstance(replayed, executor_pb2.WatchRunResponse)
    assert replayed.event == first
    call.cancel()
    events = [first]
    while (response := await watch.read()) is not grpc.aio.EOF:
        assert isinstance(response, executor_pb2.WatchRunResponse)
        events.append(response.event)
    assert_whole(events, 1)
    assert events[-1].run_finished.run.status == executor_pb2.RUN_STATUS_CANCELLED


async def test_another_process_sharing_the_run_files_follows_a_run_in_progress(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, simulated_latency_ms=100.0) as stack:
        with (tmp_path / "second-executor.log").open("w") as log:
            # A second executor process on the first one's data directory.
            second = executor_process(tmp_path, stack.memory_address, log=log)
            await asyncio.to_thread(second.start)
            try:
                other = executor_pb2_grpc.ExecutorServiceStub(stack.channel(second.port))
                stub = stack.executor_stub()
                call = stub.RunWorkflow(run_request(package_name="demo"), timeout=30)
                seen = [await call.read() for _ in range(2)]
                last = seen[-1]
                assert isinstance(last, Event)
                rest, watch = await asyncio.gather(
                    rest_of(call), watched(other, last.run_id, after=0)
                )
                assert watch == [*seen, *rest]
                assert_whole(watch, 1)
                # Finished, it is replayed there from the run directory.
                assert await watched(other, last.run_id, after=1) == watch[1:]
            finally:
                await asyncio.to_thread(second.kill)


async def test_bad_requests(stack: Stack) -> None:
    stub = stack.executor_stub()
    for request, code in [
        (executor_pb2.WatchRunRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (executor_pb2.WatchRunRequest(run_id="../etc"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            executor_pb2.WatchRunRequest(run_id=new_run_id(), after_sequence=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (executor_pb2.WatchRunRequest(run_id=new_run_id()), grpc.StatusCode.NOT_FOUND),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await anext(aiter(stub.WatchRun(request, timeout=10)))
        assert raised.value.code() == code, request


async def alices_run(secured: SecuredExecutor, package_name: str) -> list[Event]:
    """Every event of a run alice starts."""
    stream = secured.stub().RunWorkflow(
        run_request(package_name=package_name), metadata=secured.auth("alice"), timeout=30
    )
    return [event async for event in stream]


async def test_another_owners_sensitive_run_is_not_found(tmp_path: Path) -> None:
    async with secured_executor(tmp_path) as secured:
        stub = secured.stub()
        secret = await alices_run(secured, SENSITIVE_NAME)
        plain = await alices_run(secured, "demo")
        secret_id, unknown = secret[-1].run_id, new_run_id()
        assert await watched(stub, secret_id, metadata=secured.auth("alice")) == secret
        # A viewer sees another owner's ordinary run.
        assert await watched(stub, plain[-1].run_id, metadata=secured.auth("carol")) == plain
        answers = []
        for run_id in (secret_id, unknown):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await watched(stub, run_id, metadata=secured.auth("bob"))
            answers.append(not_found_as_unknown(raised.value, run_id))
        assert answers[0] == answers[1]
        assert answers[0][0] == grpc.StatusCode.NOT_FOUND


async def test_free_text_is_scrubbed_for_all_but_the_runs_owner(tmp_path: Path) -> None:
    pii, scrubbed = "demo, owned by alice.smith@example.com", "demo, owned by [EMAIL]"
    async with secured_executor(tmp_path) as secured:
        stub = secured.stub()
        streamed = await alices_run(secured, pii)
        run_id = streamed[-1].run_id
        # The owner re-attaches to exactly what was streamed to them.
        assert await watched(stub, run_id, metadata=secured.auth("alice")) == streamed
        seen = await watched(stub, run_id, metadata=secured.auth("carol"))
        assert [event.sequence for event in seen] == [event.sequence for event in streamed]
        answer = seen[-1].run_finished.run.answers["package_name"].string_value
        assert answer == scrubbed
        assert all(b"alice.smith@example.com" not in e.SerializeToString() for e in seen)
