"""Who may call the executor, and the audit record of every call, over a real executor.

The executor reads a tokens file with its own role names (viewer < runner <
admin); the memory service behind it runs with authentication off, so only
the executor's gate is under test here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from tests.integration.test_health_reflection import EXECUTOR, SERVING, check, listed_services
from tests.integration.test_memory_hang import hanging_server
from tests.support.helpers import (
    Users,
    code_of,
    error_info,
    eventually,
    run_request,
    write_tokens_file,
)
from tests.support.stack import Stack, running_stack

NAMESPACE = "default"  # EXECUTOR_MEMORY_NAMESPACE's default: where the executor's runs live.
TEMPLATE = "python_package_publish"
# Made-up tokens for these tests only; the tokens file holds their hashes.
TOKENS = {
    "vera": "vera-viewer-token-0123456789abcdef",
    "rune": "rune-runner-token-0123456789abcdef",
    "ada": "ada-admin-token-0123456789abcdef",
    "otto": "otto-admin-elsewhere-token-0123456789",
}
USERS: Users = {
    "vera": ("viewer", [NAMESPACE]),
    "rune": ("runner", [NAMESPACE]),
    "ada": ("admin", ["*"]),
    "otto": ("admin", ["elsewhere"]),  # An admin, but not of the executor's namespace.
}
RANK = {"viewer": 0, "runner": 1, "admin": 2}
USER_OF_ROLE = {"viewer": "vera", "runner": "rune", "admin": "ada"}
T = TypeVar("T")
UNKNOWN_TOKEN = "not-in-the-file-token-0123456789abcdef"  # noqa: S105 - a test's own.


Metadata = tuple[tuple[str, str], ...]
Call = Callable[["executor_pb2_grpc.ExecutorServiceAsyncStub", Metadata, str], Awaitable[Any]]


def auth(user: str) -> Metadata:
    return (("authorization", f"Bearer {TOKENS[user]}"),)


async def run_workflow(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, metadata: Metadata
) -> list[executor_pb2.RunWorkflowResponse]:
    request = run_request(package_name="demo")
    return [event async for event in stub.RunWorkflow(request, metadata=metadata, timeout=30)]


def unary(rpc: str, request: Message) -> Call:
    """A call of a unary RPC with a fixed request."""
    return lambda stub, metadata, _: getattr(stub, rpc)(request, metadata=metadata)


def get_run(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, metadata: Metadata, run_id: str
) -> Awaitable[executor_pb2.GetRunResponse]:
    return stub.GetRun(executor_pb2.GetRunRequest(run_id=run_id), metadata=metadata)


async def watch_run(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, metadata: Metadata, run_id: str
) -> list[executor_pb2.WatchRunResponse]:
    request = executor_pb2.WatchRunRequest(run_id=run_id)
    return [event async for event in stub.WatchRun(request, metadata=metadata, timeout=30)]


ANSWERS = run_request(package_name="demo").answers
# One valid call of every executor RPC (given a finished run's id), and the role it needs.
CALLS: dict[str, tuple[str, Call]] = {
    "ListTemplates": ("viewer", unary("ListTemplates", executor_pb2.ListTemplatesRequest())),
    "GetTemplate": (
        "viewer",
        unary("GetTemplate", executor_pb2.GetTemplateRequest(template_id=TEMPLATE)),
    ),
    "PlanWorkflow": (
        "viewer",
        unary(
            "PlanWorkflow",
            executor_pb2.PlanWorkflowRequest(template_id=TEMPLATE, answers=ANSWERS),
        ),
    ),
    "RunWorkflow": ("runner", lambda stub, metadata, _: run_workflow(stub, metadata)),
    "GetRun": ("viewer", get_run),
    "WatchRun": ("viewer", watch_run),
    "ListRuns": ("viewer", unary("ListRuns", executor_pb2.ListRunsRequest())),
    "SearchRuns": ("viewer", unary("SearchRuns", executor_pb2.SearchRunsRequest(query="demo"))),
    "GetAnalytics": (
        "viewer",
        unary("GetAnalytics", executor_pb2.GetAnalyticsRequest(template_id=TEMPLATE)),
    ),
    "GetRecommendations": (
        "viewer",
        unary("GetRecommendations", executor_pb2.GetRecommendationsRequest(template_id=TEMPLATE)),
    ),
    "GetStatus": ("viewer", unary("GetStatus", executor_pb2.GetStatusRequest())),
    "ListAuditEvents": ("admin", unary("ListAuditEvents", executor_pb2.ListAuditEventsRequest())),
}


class Secured:
    """A running stack whose executor checks tokens, with one finished run of rune's."""

    def __init__(self, stack: Stack, run: executor_pb2.Run) -> None:
        self.stack = stack
        self.stub = stack.executor_stub()
        self.run = run

    async def audit(self, filter_text: str = "") -> list[Any]:
        """Every audit event (ada reads them), newest first."""
        return await audit_events(self.stub, filter_text)


async def audit_events(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, filter_text: str = ""
) -> list[Any]:
    """Every audit event matching the filter (ada reads them), newest first."""
    response = await stub.ListAuditEvents(
        executor_pb2.ListAuditEventsRequest(filter=filter_text, page_size=1000),
        metadata=auth("ada"),
    )
    return list(response.events)


@asynccontextmanager
async def secured(tmp_path: Path, **overrides: object) -> AsyncIterator[Secured]:
    tokens_file = write_tokens_file(tmp_path / "executor-tokens.yaml", USERS, TOKENS)
    async with running_stack(tmp_path, tokens_file=tokens_file, **overrides) as stack:
        events = await run_workflow(stack.executor_stub(), auth("rune"))
        yield Secured(stack, events[-1].run_finished.run)


@pytest.fixture
async def executor(tmp_path: Path) -> AsyncIterator[Secured]:
    async with secured(tmp_path) as running:
        yield running


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def test_every_executor_rpc_is_covered() -> None:
    methods = executor_pb2.DESCRIPTOR.services_by_name["ExecutorService"].methods
    assert {method.name for method in methods} == set(CALLS)


@pytest.mark.parametrize("rpc", sorted(CALLS))
async def test_every_rpc_needs_a_known_token(executor: Secured, rpc: str) -> None:
    _, call = CALLS[rpc]
    missing = await refused(call(executor.stub, (), executor.run.run_id))
    assert missing.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(missing)
    assert (info.domain, info.reason) == ("executor.attune", "MISSING_CREDENTIALS")
    unknown = await refused(
        call(executor.stub, (("authorization", f"Bearer {UNKNOWN_TOKEN}"),), executor.run.run_id)
    )
    assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(unknown)
    assert (info.domain, info.reason) == ("executor.attune", "UNKNOWN_TOKEN")
    assert UNKNOWN_TOKEN[:16] not in (unknown.details() or ""), "the token is never echoed"


@pytest.mark.parametrize("rpc", sorted(CALLS))
async def test_every_rpc_checks_the_callers_role(executor: Secured, rpc: str) -> None:
    needed, call = CALLS[rpc]
    for role, user in USER_OF_ROLE.items():
        code = await code_of(call(executor.stub, auth(user), executor.run.run_id))
        expected = grpc.StatusCode.OK if RANK[role] >= RANK[needed] else None
        assert code == (expected or grpc.StatusCode.PERMISSION_DENIED), (role, code)


async def test_a_viewer_may_not_run_and_is_told_in_executor_role_names(executor: Secured) -> None:
    denied = await refused(run_workflow(executor.stub, auth("vera")))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    message = denied.details() or ""
    assert "role viewer is below the runner role it needs" in message
    assert "reader" not in message
    assert "writer" not in message
    info = error_info(denied)
    assert (info.domain, info.reason) == ("executor.attune", "ROLE_TOO_LOW")
    assert info.metadata["user_id"] == "vera"
    assert info.metadata["namespace"] == NAMESPACE
    assert not [run async for run in _runs_of(executor, "vera")], "nothing was run"


async def _runs_of(executor: Secured, owner: str) -> AsyncIterator[executor_pb2.Run]:
    listed = await executor.stub.ListRuns(executor_pb2.ListRunsRequest(), metadata=auth("ada"))
    for run in listed.runs:
        if run.owner == owner:
            yield run


async def test_a_runner_may_not_read_the_audit_log(executor: Secured) -> None:
    denied = await refused(
        executor.stub.ListAuditEvents(executor_pb2.ListAuditEventsRequest(), metadata=auth("rune"))
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "role runner is below the admin role it needs" in (denied.details() or "")
    assert error_info(denied).reason == "ROLE_TOO_LOW"


@pytest.mark.parametrize("rpc", sorted(CALLS))
async def test_the_executors_namespace_must_be_granted(executor: Secured, rpc: str) -> None:
    # otto is an admin, but of another namespace only.
    _, call = CALLS[rpc]
    denied = await refused(call(executor.stub, auth("otto"), executor.run.run_id))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(denied)
    assert (info.domain, info.reason) == ("executor.attune", "NAMESPACE_NOT_GRANTED")
    assert info.metadata["namespace"] == NAMESPACE


async def test_every_call_leaves_one_audit_record(executor: Secured) -> None:
    stub, run_id = executor.stub, executor.run.run_id
    made: list[tuple[str, str, str]] = [("rune", "run", "OK")]  # The fixture's run.
    for rpc, action in [
        ("ListTemplates", "templates"),
        ("GetTemplate", "templates"),
        ("PlanWorkflow", "plan"),
        ("GetRun", "get"),
        ("ListRuns", "list"),
        ("SearchRuns", "search"),
        ("GetAnalytics", "analytics"),
        ("GetRecommendations", "recommend"),
        ("GetStatus", "status"),
    ]:
        await CALLS[rpc][1](stub, auth("vera"), run_id)
        made.append(("vera", action, "OK"))
    assert await code_of(run_workflow(stub, auth("vera"))) == grpc.StatusCode.PERMISSION_DENIED
    made.append(("vera", "run", "PERMISSION_DENIED"))
    assert await code_of(stub.GetStatus(executor_pb2.GetStatusRequest())) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    made.append(("", "status", "UNAUTHENTICATED"))
    second = (await run_workflow(stub, auth("ada")))[-1].run_finished.run
    made.append(("ada", "run", "OK"))

    events = await executor.audit()
    assert [(e.principal, e.action, e.outcome) for e in reversed(events)] == made
    assert all(e.namespace == NAMESPACE and e.request_id and e.peer for e in events)
    runs = [list(e.pattern_ids) for e in events if e.action == "run"]
    assert runs == [[second.run_id], [], [run_id]], "a run's record names its run"
    got = next(e for e in events if e.action == "get")
    assert (list(got.pattern_ids), got.result_count) == ([run_id], 1)

    # Reading the log is itself audited, and the filter speaks the enum's names.
    by_run = await executor.audit('action = "RUN"')
    assert [(e.principal, e.outcome) for e in by_run] == [
        ("ada", "OK"),
        ("vera", "PERMISSION_DENIED"),
        ("rune", "OK"),
    ]
    audits = await executor.audit("action = AUDIT")
    assert [(e.principal, e.outcome, e.result_count) for e in audits] == [
        ("ada", "OK", len(by_run)),
        ("ada", "OK", len(events)),
    ]
    denied = await executor.audit('outcome = "UNAUTHENTICATED" OR outcome = PERMISSION_DENIED')
    assert {(e.principal, e.action) for e in denied} == {("", "status"), ("vera", "run")}


async def test_refused_calls_past_the_budget_are_resource_exhausted(tmp_path: Path) -> None:
    async with secured(tmp_path, denied_calls_burst=3, denied_calls_per_second=0.001) as executor:
        stub = executor.stub
        codes = [await code_of(run_workflow(stub, auth("vera"))) for _ in range(5)]
        denied, exhausted = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED
        assert codes == [denied] * 3 + [exhausted] * 2
        limited = await refused(run_workflow(stub, auth("vera")))
        assert "too many unauthenticated or denied calls" in (limited.details() or "")
        status = rpc_status.from_call(limited)  # type: ignore[arg-type]
        assert status is not None
        retry = error_details_pb2.RetryInfo()
        assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
        # Allowed calls are never limited, not even the same caller's.
        await stub.GetStatus(executor_pb2.GetStatusRequest(), metadata=auth("vera"))
        # Callers without a token have a budget of their own, from the same peer.
        nobody = [await code_of(stub.ListRuns(executor_pb2.ListRunsRequest())) for _ in range(4)]
        assert nobody == [grpc.StatusCode.UNAUTHENTICATED] * 3 + [exhausted]
        outcomes = [(e.principal, e.outcome) for e in await executor.audit("action = RUN")]
        # Folded: the first limited call is recorded now, the rest when its window ends.
        assert outcomes.count(("vera", "RESOURCE_EXHAUSTED")) == 1
        assert outcomes.count(("vera", "PERMISSION_DENIED")) == 3


async def test_a_run_is_owned_by_its_caller(executor: Secured) -> None:
    run = executor.run
    assert run.owner == "rune"
    read = await executor.stub.GetRun(
        executor_pb2.GetRunRequest(run_id=run.run_id), metadata=auth("vera")
    )
    assert read.run.owner == "rune"
    assert [r.run_id async for r in _runs_of(executor, "rune")] == [run.run_id]
    run_dir = Path(run.run_dir)
    assert json.loads((run_dir / "result.json").read_text())["owner"] == "rune"
    assert json.loads((run_dir / "config.json").read_text())["owner"] == "rune"


async def test_with_authentication_off_runs_are_anonymous(stack: Stack) -> None:
    events = await run_workflow(stack.executor_stub(), ())
    run = events[-1].run_finished.run
    assert run.owner == "anonymous"
    assert json.loads((Path(run.run_dir) / "config.json").read_text())["owner"] == "anonymous"
    listed = await stack.executor_stub().ListAuditEvents(executor_pb2.ListAuditEventsRequest())
    assert [(e.principal, e.action) for e in listed.events] == [("anonymous", "run")]


async def test_health_and_reflection_need_no_token(executor: Secured) -> None:
    address = executor.stack.executor_address
    assert await check(address, "") == SERVING
    assert await check(address, EXECUTOR) == SERVING
    assert EXECUTOR in await listed_services(address)


async def test_a_cancelled_run_is_audited_as_cancelled(executor: Secured) -> None:
    request = run_request(package_name="demo")
    call = executor.stub.RunWorkflow(request, metadata=auth("rune"), timeout=30)
    first = await call.read()  # The run has started: its record will name it.
    assert isinstance(first, executor_pb2.RunWorkflowResponse)
    call.cancel()
    events = await eventually(
        lambda: executor.audit("action = RUN"), lambda events: len(events) == 2
    )
    assert (events[0].outcome, list(events[0].pattern_ids)) == ("CANCELLED", [first.run_id])


async def test_a_unary_call_its_caller_cancels_is_audited_as_cancelled(tmp_path: Path) -> None:
    # A search waiting on a memory service that never answers, cancelled by its caller.
    tokens_file = write_tokens_file(tmp_path / "executor-tokens.yaml", USERS, TOKENS)
    async with hanging_server() as (_, hang, port):
        stack = Stack(
            tmp_path,
            memory_port=port,
            executor_overrides={"tokens_file": tokens_file, "memory_timeout_seconds": 30},
        )
        try:
            await stack.start_executor()
            stub = stack.executor_stub()
            asked = hang.calls
            call = stub.SearchRuns(
                executor_pb2.SearchRunsRequest(
                    query="demo", mode=executor_pb2.SEARCH_RUNS_MODE_MEMORY
                ),
                metadata=auth("vera"),
                timeout=20,
            )
            await eventually(lambda: _now(hang.calls), lambda calls: calls > asked)
            call.cancel()
            events = await eventually(
                lambda: audit_events(stub, "action = SEARCH"),
                lambda events: len(events) == 1,
            )
            assert (events[0].principal, events[0].outcome) == ("vera", "CANCELLED")
        finally:
            await stack.close()


async def _now(value: T) -> T:
    """A probe for `eventually` over state that is read, not awaited."""
    return value
