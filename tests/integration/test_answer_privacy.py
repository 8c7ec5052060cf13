"""Secrets and personal data typed into form answers (issue 10, finding 5).

A secret in an answer is refused before the run starts, naming the question
and never the value, so nothing of it is written. Personal data is served
scrubbed (GetRun, ListRuns, SearchRuns from files) as the memory service
stores it.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.runs.forms import to_form_value
from executor_service.runs.store import RunStore, new_run_id
from memory_service.servicekit.errors import error_reasons
from tests.support.helpers import run_request, run_to_end, violations_of
from tests.support.stack import Stack, running_stack

ALPHABET = string.ascii_letters + string.digits


def github_token() -> str:
    return "ghp_" + "".join(secrets.choice(ALPHABET) for _ in range(36))


def files_holding(root: Path, needle: str) -> list[Path]:
    return [
        path for path in root.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()
    ]


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(f"demo {github_token()}", id="github-token"),
        pytest.param(
            "postgres://app:" + "".join(secrets.choice(ALPHABET) for _ in range(14)) + "@db:5432/x",
            id="password-in-url",
        ),
    ],
)
async def test_a_secret_in_an_answer_refuses_the_run_and_nothing_is_written(
    stack: Stack, secret: str
) -> None:
    stub = stack.executor_stub()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await run_to_end(stub, run_request(package_name=secret))
    error = refused.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = violations_of(error)
    assert list(violations) == ["package_name"]
    assert "secret" in violations["package_name"]
    assert "SECRET_DETECTED" in error_reasons(error)
    assert secret not in (error.details() or "")
    assert all(secret not in text for text in violations.values())
    # Nothing was written: no run directory (the dot-files are the store's own
    # bookkeeping: staging, the outbox lock), and no file anywhere holds it.
    runs = stack.root / "executor" / "runs"
    assert not [p for p in runs.iterdir() if not p.name.startswith(".")]
    assert files_holding(stack.root, secret) == []
    listed = await stub.ListRuns(executor_pb2.ListRunsRequest(), timeout=5)
    assert list(listed.runs) == []


async def test_plan_workflow_refuses_a_secret_too(stack: Stack) -> None:
    stub = stack.executor_stub()
    answers = run_request(package_name=github_token()).answers
    request = executor_pb2.PlanWorkflowRequest(
        template_id="python_package_publish", answers=answers
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.PlanWorkflow(request, timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations_of(refused.value)) == ["package_name"]


async def test_secrets_and_other_violations_are_reported_together(stack: Stack) -> None:
    request = run_request(package_name=github_token(), test_coverage_required=101.0)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await run_to_end(stack.executor_stub(), request)
    assert sorted(violations_of(refused.value)) == ["package_name", "test_coverage_required"]


async def test_ids_and_ordinary_answers_are_not_taken_for_secrets(stack: Stack) -> None:
    # Random-looking identifiers are what package names and ids often are.
    events = await run_to_end(
        stack.executor_stub(), run_request(package_name="attune-01kf2c3r8t4x5y6z7a8b9c0d1e")
    )
    assert events[-1].HasField("run_finished")


PII = "demo, owned by alice.smith@example.com, call +1 (650) 253-0000"
SCRUBBED = "demo, owned by [EMAIL], call [PHONE]"


async def test_personal_data_in_an_answer_is_served_scrubbed(stack: Stack) -> None:
    stub = stack.executor_stub()
    run = (await run_to_end(stub, run_request(package_name=PII)))[-1].run_finished.run
    fetched = (await stub.GetRun(executor_pb2.GetRunRequest(run_id=run.run_id), timeout=5)).run
    assert fetched.answers["package_name"].string_value == SCRUBBED
    # Ids and timestamps are never rewritten.
    assert fetched.run_id == run.run_id
    assert fetched.create_time == run.create_time
    listed = await stub.ListRuns(executor_pb2.ListRunsRequest(), timeout=5)
    assert [r.answers["package_name"].string_value for r in listed.runs] == [SCRUBBED]
    found = await stub.SearchRuns(
        executor_pb2.SearchRunsRequest(
            query="demo", mode=executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES
        ),
        timeout=5,
    )
    assert [hit.run_id for hit in found.hits] == [run.run_id]
    assert "alice.smith@example.com" not in found.hits[0].summary
    assert "[EMAIL]" in found.hits[0].summary


async def test_a_run_in_progress_is_served_scrubbed(tmp_path: Path) -> None:
    # Slow attempts keep the run in progress while GetRun asks for it.
    async with running_stack(tmp_path, simulated_latency_ms=60_000.0) as stack:
        stub = stack.executor_stub()
        call = stub.RunWorkflow(run_request(package_name=PII), timeout=30)
        started = await call.read()
        assert isinstance(started, executor_pb2.RunWorkflowResponse)
        assert started.HasField("run_started")
        fetched = await stub.GetRun(executor_pb2.GetRunRequest(run_id=started.run_id), timeout=5)
        assert fetched.run.status == executor_pb2.RUN_STATUS_RUNNING
        assert fetched.run.answers["package_name"].string_value == SCRUBBED
        call.cancel()


async def test_a_run_written_before_the_scan_never_shows_its_secret(tmp_path: Path) -> None:
    token = github_token()
    # A run from before answers were scanned up front: straight into the run files.
    run = executor_pb2.Run(
        run_id=new_run_id(),
        template_id="python_package_publish",
        status=executor_pb2.RUN_STATUS_SUCCEEDED,
        runner=common_pb2.RUNNER_SIMULATED,
        answers={"package_name": to_form_value(f"demo {token}")},
    )
    run.create_time.GetCurrentTime()
    RunStore(tmp_path / "executor" / "runs").persist(run, {})
    async with running_stack(tmp_path) as stack:
        stub = stack.executor_stub()
        fetched = await stub.GetRun(executor_pb2.GetRunRequest(run_id=run.run_id), timeout=5)
        assert fetched.run.answers["package_name"].string_value == "[SECRET]"
        for query in ("demo", token):
            found = await stub.SearchRuns(
                executor_pb2.SearchRunsRequest(
                    query=query, mode=executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES
                ),
                timeout=5,
            )
            assert list(found.hits) == []
