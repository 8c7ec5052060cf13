"""Searches answered from the run files show a SENSITIVE run to its owner only,
as the memory service does: with mode LOCAL_FILES and while the memory
service is down. Another user (the same namespace granted) can neither find
it, even by a word only it contains, nor have its words shape their plan."""

from __future__ import annotations

from pathlib import Path

from attune.executor.v1 import executor_pb2
from executor_service.runs.forms import to_form_value
from tests.support.helpers import run_request, run_to_end
from tests.support.secured_executor import SecuredExecutor, run_id_of, secured_executor
from tests.support.stack import running_stack

LOCAL = executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES
AUTO = executor_pb2.SEARCH_RUNS_MODE_AUTO
HYBRID = executor_pb2.SEARCH_RUNS_MODE_HYBRID


async def search_as(
    secured: SecuredExecutor,
    user: str,
    query: str = "",
    mode: executor_pb2.SearchRunsMode.ValueType = LOCAL,
    filter_text: str = "",
) -> executor_pb2.SearchRunsResponse:
    return await secured.stub().SearchRuns(
        executor_pb2.SearchRunsRequest(query=query, filter=filter_text, mode=mode),
        metadata=secured.auth(user),
        timeout=10,
    )


def hits(response: executor_pb2.SearchRunsResponse) -> list[str]:
    return [hit.run_id for hit in response.hits]


async def alices_sensitive_run(secured: SecuredExecutor) -> str:
    """A SENSITIVE run of alice's, the only one with the word "zanzibar"."""
    stream = secured.stub().RunWorkflow(
        run_request(package_name="zanzibar payroll salary exporter"),
        metadata=secured.auth("alice"),
        timeout=30,
    )
    return run_id_of([event async for event in stream])


async def test_local_files_show_a_sensitive_run_to_its_owner_only(tmp_path: Path) -> None:
    async with secured_executor(tmp_path) as secured:
        secret = await alices_sensitive_run(secured)
        assert hits(await search_as(secured, "alice", "zanzibar")) == [secret]
        sensitive = 'classification = "SENSITIVE"'
        assert hits(await search_as(secured, "alice", filter_text=sensitive)) == [secret]
        for other in ("bob", "carol", "root"):
            assert hits(await search_as(secured, other, "zanzibar")) == []
            assert hits(await search_as(secured, other, "zanzibr")) == []  # No fuzzy way in.
            assert hits(await search_as(secured, other, filter_text=sensitive)) == []


async def test_the_fallback_while_memory_is_down_shows_it_to_its_owner_only(
    tmp_path: Path,
) -> None:
    async with secured_executor(tmp_path) as secured:
        secret = await alices_sensitive_run(secured)
        await secured.stack.stop_memory()
        for mode in (AUTO, HYBRID):
            own = await search_as(secured, "alice", "zanzibar", mode)
            assert (own.source, own.degraded) == (executor_pb2.SEARCH_SOURCE_LOCAL_FILES, True)
            assert hits(own) == [secret]
            other = await search_as(secured, "bob", "zanzibar", mode)
            assert (other.source, other.degraded) == (executor_pb2.SEARCH_SOURCE_LOCAL_FILES, True)
            assert hits(other) == []


PAYROLL = """
id: payroll_export
name: Payroll export
description: Export the monthly payroll.
version: "1.0.0"
estimated_cost: {min_usd: 0.01, max_usd: 0.2}
estimated_duration_seconds: 60
questions:
  - {id: notes, text: "Anything to know?", type: text, required: true}
  - {id: headcount, text: "How many people are paid?", type: number, default: 12}
agent_rules:
  - {role: exporter, success_criteria: [a file], tier_strategy: cheap_only}
"""


async def test_local_files_plan_a_query_only_from_runs_the_caller_may_see(
    tmp_path: Path,
) -> None:
    """The words query understanding learns from the run files follow the same
    visibility: a SENSITIVE run's template shapes only its owner's plan (once
    the catalog no longer describes it; the catalog itself is everyone's)."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "payroll.yaml").write_text(PAYROLL)
    async with secured_executor(tmp_path, templates_dir=templates) as secured:
        stream = secured.stub().RunWorkflow(
            executor_pb2.RunWorkflowRequest(
                template_id="payroll_export",
                answers={"notes": to_form_value("salary bands changed")},
            ),
            metadata=secured.auth("alice"),
            timeout=30,
        )
        assert run_id_of([event async for event in stream])
        query = "payroll export runs with headcount above 10"
        understood = 'template_id = "payroll_export" AND form_responses.headcount > 10'
        for user in ("alice", "bob"):  # From the catalog: the same for everyone.
            assert (await search_as(secured, user, query)).applied_filter == understood
        # The template leaves the catalog; its run stays, alice's alone.
        stack = secured.stack
        assert stack.executor is not None
        await stack.executor.stop()
        stack.executor = None
        stack.executor_overrides.pop("templates_dir")
        await stack.start_executor()
        assert (await search_as(secured, "alice", query)).applied_filter == understood
        other = await search_as(secured, "bob", query)
        assert other.applied_filter == ""
        assert hits(other) == []


async def test_with_authentication_off_the_files_show_every_run(tmp_path: Path) -> None:
    """Development: every caller is the same anonymous admin, even one sending a token."""
    async with running_stack(tmp_path) as stack:
        stub = stack.executor_stub()
        events = await run_to_end(stub, run_request(package_name="payroll salary exporter"))
        token = (("authorization", "Bearer caller-token-0123456789abcdef"),)
        for metadata in ((), token):
            found = await stub.SearchRuns(
                executor_pb2.SearchRunsRequest(query="payroll", mode=LOCAL),
                metadata=metadata,
                timeout=10,
            )
            assert hits(found) == [run_id_of(events)]
