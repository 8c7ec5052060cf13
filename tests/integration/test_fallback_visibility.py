"""The run-file fallback hides the executor's SENSITIVE runs from a caller searching
as themselves, as the memory service does (they are the executor's own there)."""

from __future__ import annotations

from attune.executor.v1 import executor_pb2
from tests.conftest import Stack
from tests.helpers import run_request, run_to_end

CALLER = (("authorization", "Bearer caller-token-0123456789abcdef"),)


async def test_local_files_hide_sensitive_runs_from_a_caller_with_a_token(stack: Stack) -> None:
    stub = stack.executor_stub()
    events = await run_to_end(stub, run_request(package_name="payroll salary exporter"))
    run_id = events[-1].run_finished.run.run_id
    search = executor_pb2.SearchRunsRequest(
        query="payroll", mode=executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES
    )
    as_executor = await stub.SearchRuns(search, timeout=10)
    assert [hit.run_id for hit in as_executor.hits] == [run_id]
    as_caller = await stub.SearchRuns(search, timeout=10, metadata=CALLER)
    assert list(as_caller.hits) == []


async def test_local_files_plan_a_callers_query_only_from_runs_they_may_see(stack: Stack) -> None:
    """The words query understanding learns from the run files follow the same
    visibility: a SENSITIVE run's template shapes only the executor's own plan."""
    stub = stack.executor_stub()
    await run_to_end(stub, run_request(package_name="payroll salary exporter"))
    search = executor_pb2.SearchRunsRequest(
        query="python package publish runs", mode=executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES
    )
    as_executor = await stub.SearchRuns(search, timeout=10)
    assert as_executor.applied_filter == 'template_id = "python_package_publish"'
    as_caller = await stub.SearchRuns(search, timeout=10, metadata=CALLER)
    assert as_caller.applied_filter == ""
