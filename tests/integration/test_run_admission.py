"""Run limits on RunWorkflow (issue 10, finding 17): in flight and per minute,
per caller and in all, answered RESOURCE_EXHAUSTED with QuotaFailure and
RetryInfo; other callers unaffected; slots freed however a run ends."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from tests.support.executor_callers import write_executor_tokens
from tests.support.helpers import eventually, run_request, run_to_end
from tests.support.stack import running_stack

# Attempts that take a minute keep runs in flight for as long as a test needs.
SLOW = {"simulated_latency_ms": 60_000.0}
NO_RATE = {"runs_per_minute_per_caller": 0, "runs_per_minute": 0}

Call = grpc.aio.UnaryStreamCall[executor_pb2.RunWorkflowRequest, executor_pb2.RunWorkflowResponse]


def as_caller(token: str | None) -> tuple[tuple[str, str], ...]:
    """A caller: a bearer token, or none (then the peer address names it)."""
    return () if token is None else (("authorization", f"Bearer {token}"),)


async def started(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, token: str | None, calls: list[Call]
) -> Call:
    """A run started and seen to start (run_started received)."""
    call = stub.RunWorkflow(run_request(package_name="demo"), metadata=as_caller(token), timeout=90)
    calls.append(call)
    first = await call.read()
    assert isinstance(first, executor_pb2.RunWorkflowResponse)
    assert first.HasField("run_started")
    return call


async def refused(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, token: str | None
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_to_end_as(stub, token)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    return caught.value


async def run_to_end_as(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, token: str | None
) -> executor_pb2.Run:
    call = stub.RunWorkflow(run_request(package_name="demo"), metadata=as_caller(token), timeout=30)
    events = [event async for event in call]
    return events[-1].run_finished.run


def quota(error: grpc.aio.AioRpcError) -> tuple[list[tuple[str, str]], float | None]:
    """The QuotaFailure violations (subject, description) and the RetryInfo delay."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    violations: list[tuple[str, str]] = []
    delay = None
    for detail in status.details:
        if detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            failure = error_details_pb2.QuotaFailure()
            detail.Unpack(failure)
            violations += [(v.subject, v.description) for v in failure.violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToNanoseconds() / 1e9
    return violations, delay


@pytest.fixture
async def calls() -> AsyncIterator[list[Call]]:
    """Streams a test opened: cancelled at the end, so their runs end at once."""
    opened: list[Call] = []
    yield opened
    for call in opened:
        call.cancel()


async def test_runs_in_flight_per_caller_are_limited_and_freed_on_cancellation(
    tmp_path: Path, calls: list[Call]
) -> None:
    async with running_stack(tmp_path, max_runs_in_flight_per_caller=2, **SLOW, **NO_RATE) as stack:
        stub = stack.executor_stub()
        first = await started(stub, None, calls)
        await started(stub, None, calls)
        error = await refused(stub, None)
        violations, delay = quota(error)
        assert violations == [
            ("peer:127.0.0.1", violations[0][1]),
        ]
        assert "EXECUTOR_MAX_RUNS_IN_FLIGHT_PER_CALLER" in violations[0][1]
        assert delay is None  # a run in flight ends when it ends
        # Another caller is not held back by this one's runs.
        await started(stub, "someone-else", calls)
        # A cancelled run frees its slot once it is recorded (as cancelled).
        first.cancel()

        async def try_start() -> Call | grpc.StatusCode:
            try:
                return await started(stub, None, calls)
            except grpc.aio.AioRpcError as error:
                return error.code()

        admitted = await eventually(
            try_start, lambda outcome: not isinstance(outcome, grpc.StatusCode)
        )
        assert not isinstance(admitted, grpc.StatusCode)
        # And the caller is back at its limit.
        await refused(stub, None)


async def test_runs_in_flight_in_all_are_limited(tmp_path: Path, calls: list[Call]) -> None:
    async with running_stack(tmp_path, max_runs_in_flight=2, **SLOW, **NO_RATE) as stack:
        stub = stack.executor_stub()
        await started(stub, "alice", calls)
        await started(stub, "bob", calls)
        violations, _ = quota(await refused(stub, "carol"))
        assert [subject for subject, _ in violations] == ["executor"]
        assert "EXECUTOR_MAX_RUNS_IN_FLIGHT" in violations[0][1]


async def test_runs_per_minute_per_caller_are_limited_with_a_retry_delay(tmp_path: Path) -> None:
    async with running_stack(tmp_path, runs_per_minute_per_caller=2) as stack:
        stub = stack.executor_stub()
        for _ in range(2):
            assert (await run_to_end_as(stub, "alice")).run_id
        error = await refused(stub, "alice")
        violations, delay = quota(error)
        assert len(violations) == 1
        assert violations[0][0].startswith("token:")
        assert "alice" not in violations[0][0]  # the token's hash, never the token
        assert "EXECUTOR_RUNS_PER_MINUTE_PER_CALLER" in violations[0][1]
        # Two a minute: the next token comes within 30 s.
        assert delay is not None
        assert 0 < delay <= 30
        # Another caller is unaffected, also one without a token.
        assert (await run_to_end_as(stub, "bob")).run_id
        assert (await run_to_end_as(stub, None)).run_id


async def test_runs_per_minute_in_all_are_limited(tmp_path: Path) -> None:
    async with running_stack(tmp_path, runs_per_minute=3) as stack:
        stub = stack.executor_stub()
        for token in ("alice", "bob", "carol"):
            assert (await run_to_end_as(stub, token)).run_id
        violations, delay = quota(await refused(stub, "dave"))
        assert [subject for subject, _ in violations] == ["executor"]
        assert delay is not None
        assert 0 < delay <= 20


async def test_failed_runs_and_runs_that_never_start_free_their_slot(tmp_path: Path) -> None:
    never = {"cheap": 0.0, "capable": 0.0, "premium": 0.0}
    async with running_stack(
        tmp_path, max_runs_in_flight_per_caller=1, simulated_success=never, **NO_RATE
    ) as stack:
        stub = stack.executor_stub()
        for _ in range(3):
            run = await run_to_end_as(stub, None)
            assert run.status == executor_pb2.RUN_STATUS_FAILED
        # Refused after admission (no key for this runner): nothing held.
        request = run_request(package_name="demo")
        request.runner = common_pb2.RUNNER_ANTHROPIC
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await run_to_end(stub, request)
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (await run_to_end_as(stub, None)).status == executor_pb2.RUN_STATUS_FAILED


async def test_runs_are_refused_below_the_free_disk_floor(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    # A floor above what the disk has free: nothing is written, the reason named.
    async with running_stack(tmp_path, min_free_disk_bytes=free * 2) as stack:
        stub = stack.executor_stub()
        violations, delay = quota(await refused(stub, "alice"))
        assert [subject for subject, _ in violations] == ["executor"]
        assert "EXECUTOR_MIN_FREE_DISK_BYTES" in violations[0][1]
        assert delay is None
        runs = stack.root / "executor" / "runs"
        assert not [p for p in runs.iterdir() if not p.name.startswith(".")]
    # Under the floor of what it has, runs go ahead.
    async with running_stack(tmp_path / "ok", min_free_disk_bytes=1) as stack:
        assert (await run_to_end_as(stack.executor_stub(), "alice")).run_id


async def test_runs_in_flight_are_limited_per_user_not_per_token_or_connection(
    tmp_path: Path, calls: list[Call]
) -> None:
    callers = {
        "alice-laptop": ("alice", "runner"),
        "alice-ci": ("alice", "runner"),
        "bob": ("bob", "runner"),
    }
    tokens = write_executor_tokens(tmp_path / "tokens.yaml", callers)
    async with running_stack(
        tmp_path,
        tokens_file=tmp_path / "tokens.yaml",
        runner="simulated",
        max_runs_in_flight_per_caller=1,
        **SLOW,
        **NO_RATE,
    ) as stack:
        first_connection = stack.executor_stub()
        await started(first_connection, tokens["alice-laptop"], calls)
        # The same user with another token, over another connection: one caller.
        violations, _ = quota(await refused(stack.executor_stub(), tokens["alice-ci"]))
        assert [subject for subject, _ in violations] == ["alice"]
        # Another user over the first one's connection is a caller of their own.
        await started(first_connection, tokens["bob"], calls)
