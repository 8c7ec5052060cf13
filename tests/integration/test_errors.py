"""Every bad request gets a precise status and a clear message, never UNKNOWN."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from attune.memory.v1 import memory_pb2
from executor_service.runs.forms import to_form_value
from memory_service.servicekit.lifecycle import ManagedServer
from memory_service.servicekit.settings import ServerSettings
from tests.support.helpers import run_request, run_to_end, violations_of
from tests.support.stack import Stack


async def failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def stream_failure(
    stack: Stack, request: executor_pb2.RunWorkflowRequest
) -> grpc.aio.AioRpcError:
    return await failure(run_to_end(stack.executor_stub(), request))


async def test_empty_template_id_is_invalid_argument(stack: Stack) -> None:
    error = await stream_failure(stack, executor_pb2.RunWorkflowRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "template_id" in violations_of(error)


async def test_unknown_template_is_not_found_with_resource_info(stack: Stack) -> None:
    error = await stream_failure(stack, executor_pb2.RunWorkflowRequest(template_id="nope"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in (error.details() or "")
    assert "python_package_publish" in (error.details() or ""), "the message lists known ids"
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    assert status.details[0].Is(error_details_pb2.ResourceInfo.DESCRIPTOR)


async def test_get_template_errors(stack: Stack) -> None:
    stub = stack.executor_stub()
    empty = await failure(stub.GetTemplate(executor_pb2.GetTemplateRequest(), timeout=5))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown = await failure(
        stub.GetTemplate(executor_pb2.GetTemplateRequest(template_id="nope"), timeout=5)
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


async def test_every_invalid_answer_is_reported_at_once(stack: Stack) -> None:
    request = run_request(
        test_coverage_required=150, quality_checks=["mypy", "pylint"], colour="blue"
    )
    error = await stream_failure(stack, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations_of(error)
    assert set(found) == {
        "package_name",
        "test_coverage_required",
        "quality_checks",
        "colour",
    }
    assert "maximum 100" in found["test_coverage_required"]
    assert "pylint" in found["quality_checks"]


async def test_wrong_answer_type_names_the_expected_type(stack: Stack) -> None:
    request = run_request(package_name="demo")
    request.answers["has_tests"].CopyFrom(to_form_value("yes"))
    error = await stream_failure(stack, request)
    assert "boolean" in violations_of(error)["has_tests"]


async def test_empty_search_query_is_invalid_argument(stack: Stack) -> None:
    stub = stack.executor_stub()
    for query in ("", "   ", "!!! ???"):
        error = await failure(
            stub.SearchRuns(executor_pb2.SearchRunsRequest(query=query), timeout=5)
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, query
        assert "query" in violations_of(error)


async def test_memory_rejects_an_empty_search(stack: Stack) -> None:
    stub = stack.memory_stub()
    error = await failure(
        stub.SearchPatterns(memory_pb2.SearchPatternsRequest(namespace="default"), timeout=5)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "query" in violations_of(error)


async def test_empty_namespace_is_not_all_namespaces(stack: Stack) -> None:
    stub = stack.memory_stub()
    error = await failure(
        stub.SearchPatterns(memory_pb2.SearchPatternsRequest(query="publish"), timeout=5)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "namespace" in violations_of(error)


async def test_unknown_run_is_not_found(stack: Stack) -> None:
    stub = stack.executor_stub()
    missing = await failure(
        stub.GetRun(executor_pb2.GetRunRequest(run_id="20260101-000000-" + "0" * 26), timeout=5)
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    traversal = await failure(
        stub.GetRun(executor_pb2.GetRunRequest(run_id="../../etc"), timeout=5)
    )
    assert traversal.code() == grpc.StatusCode.INVALID_ARGUMENT
    empty = await failure(stub.GetRun(executor_pb2.GetRunRequest(), timeout=5))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unimplemented_rpcs_name_themselves() -> None:
    # Every RPC of both services is implemented now, so a server with the
    # generated base servicer (which implements none) stands in for a newer
    # contract than the server knows: the interceptor must still name the RPC.
    async def alive() -> bool:
        return True

    def register(server: grpc.aio.Server) -> None:
        # The generated base class: abstract only in its type stubs.
        bare = executor_pb2_grpc.ExecutorServiceServicer()  # type: ignore[abstract]
        executor_pb2_grpc.add_ExecutorServiceServicer_to_server(bare, server)

    managed = ManagedServer(ServerSettings(port=0), "bare", register, alive)
    await managed.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{managed.port}") as channel:
            executor = executor_pb2_grpc.ExecutorServiceStub(channel)
            calls: dict[str, Awaitable[Any]] = {
                "ExecutorService/GetAnalytics": executor.GetAnalytics(
                    executor_pb2.GetAnalyticsRequest(), timeout=5
                ),
                "ExecutorService/GetStatus": executor.GetStatus(
                    executor_pb2.GetStatusRequest(), timeout=5
                ),
            }
            for name, call in calls.items():
                error = await failure(call)
                assert error.code() == grpc.StatusCode.UNIMPLEMENTED, name
                assert name in (error.details() or ""), error.details()
    finally:
        await managed.stop()


async def test_a_bad_search_filter_names_its_position(stack: Stack) -> None:
    error = await failure(
        stack.executor_stub().SearchRuns(
            executor_pb2.SearchRunsRequest(query="x", filter='template_id = "a" AND'), timeout=5
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "position" in violations_of(error)["filter"]


async def test_unsupported_runner_is_a_failed_precondition(stack: Stack) -> None:
    request = run_request(package_name="demo")
    request.runner = common_pb2.RUNNER_ANTHROPIC
    error = await stream_failure(stack, request)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "anthropic" in (error.details() or "")


async def test_messages_carry_no_traceback(stack: Stack) -> None:
    error = await stream_failure(stack, run_request(test_coverage_required=-1))
    assert "Traceback" not in (error.details() or "")
    assert 'File "' not in (error.details() or "")


async def test_a_corrupt_run_is_data_loss_and_is_skipped_by_lists(stack: Stack) -> None:
    stub = stack.executor_stub()
    runs = [(await run_to_end(stub, run_request(package_name="demo")))[-1].run_finished.run]
    runs.append((await run_to_end(stub, run_request(package_name="demo")))[-1].run_finished.run)
    assert stack.executor is not None
    await stack.executor.stop()
    result = stack.root / "executor" / "runs" / runs[0].run_id / "result.json"
    result.write_text(result.read_text()[:100])  # A torn file, as a bad disk leaves it.
    await stack.start_executor()
    restarted = stack.executor_stub()
    error = await failure(restarted.GetRun(executor_pb2.GetRunRequest(run_id=runs[0].run_id)))
    assert error.code() == grpc.StatusCode.DATA_LOSS
    listed = await restarted.ListRuns(executor_pb2.ListRunsRequest(), timeout=5)
    assert [run.run_id for run in listed.runs] == [runs[1].run_id]


async def test_oversized_inputs_get_precise_errors_not_transport_failures(stack: Stack) -> None:
    stub = stack.executor_stub()
    huge = await stream_failure(stack, run_request(package_name="p" * 300_000))
    assert huge.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit" in violations_of(huge)["package_name"]
    many = run_request(**{f"unknown_{n}": "x" for n in range(120)})
    crowd = await stream_failure(stack, many)
    assert crowd.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(violations_of(crowd)) <= 50
    long_id = await failure(
        stub.GetTemplate(executor_pb2.GetTemplateRequest(template_id="t" * 100_000), timeout=5)
    )
    assert long_id.code() == grpc.StatusCode.INVALID_ARGUMENT
    deep = await failure(
        stub.ListRuns(executor_pb2.ListRunsRequest(filter="-" * 1500 + "status = FAILED"))
    )
    assert deep.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_undefined_enum_values_are_invalid_argument(stack: Stack) -> None:
    request = run_request(package_name="demo")
    request.tier_strategy = common_pb2.TierStrategy.ValueType(99)
    assert "tier_strategy" in violations_of(await stream_failure(stack, request))
    request = run_request(package_name="demo")
    request.runner = common_pb2.Runner.ValueType(99)
    assert "runner" in violations_of(await stream_failure(stack, request))
    search = executor_pb2.SearchRunsRequest(
        query="x", mode=executor_pb2.SearchRunsMode.ValueType(99)
    )
    error = await failure(stack.executor_stub().SearchRuns(search, timeout=5))
    assert "mode" in violations_of(error)
