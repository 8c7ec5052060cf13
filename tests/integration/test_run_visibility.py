"""A SENSITIVE run is the business of its owner only, wherever the executor
answers from its own files: GetRun (finished or in progress), ListRuns and
the learner's suggestions and similar runs. To anyone else, admins
included, it does not exist. With authentication off everything is shown
(development: every caller is the same anonymous admin)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.runs.forms import to_form_value
from executor_service.runs.store import new_run_id
from tests.support.helpers import Answer, run_request, run_to_end
from tests.support.secured_executor import (
    SecuredExecutor,
    not_found_as_unknown,
    run_id_of,
    secured_executor,
)
from tests.support.stack import running_stack

# A sensitive word in a free-text answer makes a run's pattern SENSITIVE.
SENSITIVE_NAME = "payroll salary exporter"
ALL_SUCCEED = {"cheap": 1.0, "capable": 1.0, "premium": 1.0}


async def run_as(secured: SecuredExecutor, user: str, **answers: Answer) -> str:
    """Runs the publish template as `user` to the end; its run id."""
    stream = secured.stub().RunWorkflow(
        run_request(**answers), metadata=secured.auth(user), timeout=30
    )
    return run_id_of([event async for event in stream])


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


async def get_run_as(secured: SecuredExecutor, user: str, run_id: str) -> executor_pb2.Run:
    response = await secured.stub().GetRun(
        executor_pb2.GetRunRequest(run_id=run_id), metadata=secured.auth(user), timeout=10
    )
    return response.run


async def listed(secured: SecuredExecutor, user: str, page_size: int = 0) -> list[list[str]]:
    """Every page of ListRuns as `user`, as run ids."""
    pages: list[list[str]] = []
    token = ""
    while True:
        response = await secured.stub().ListRuns(
            executor_pb2.ListRunsRequest(page_size=page_size, page_token=token),
            metadata=secured.auth(user),
            timeout=10,
        )
        pages.append([run.run_id for run in response.runs])
        token = response.next_page_token
        if not token:
            return pages


async def test_get_run_and_list_runs_show_a_sensitive_run_to_its_owner_only(
    tmp_path: Path,
) -> None:
    async with secured_executor(tmp_path) as secured:
        # Oldest first: the SENSITIVE run sits between two runs everyone sees.
        alices_plain = await run_as(secured, "alice", package_name="demo")
        alices_secret = await run_as(secured, "alice", package_name=SENSITIVE_NAME)
        bobs_plain = await run_as(secured, "bob", package_name="demo")

        own = await get_run_as(secured, "alice", alices_secret)
        assert (own.run_id, own.owner) == (alices_secret, "alice")
        assert (await get_run_as(secured, "bob", alices_plain)).owner == "alice"
        unknown = new_run_id()
        for other in ("bob", "carol", "root"):
            hidden = await refused(get_run_as(secured, other, alices_secret))
            absent = await refused(get_run_as(secured, other, unknown))
            assert hidden.code() == grpc.StatusCode.NOT_FOUND
            # Exactly as an unknown id: nothing tells that the run exists.
            assert not_found_as_unknown(hidden, alices_secret) == not_found_as_unknown(
                absent, unknown
            )

        assert await listed(secured, "alice") == [[bobs_plain, alices_secret, alices_plain]]
        for other in ("bob", "carol", "root"):
            assert await listed(secured, other) == [[bobs_plain, alices_plain]]
        # Keyset paging steps over the hidden run: no gap, no repeat, no empty page.
        assert await listed(secured, "bob", page_size=1) == [[bobs_plain], [alices_plain]]
        assert await listed(secured, "alice", page_size=2) == [
            [bobs_plain, alices_secret],
            [alices_plain],
        ]


async def test_a_sensitive_run_in_progress_is_not_found_by_others(tmp_path: Path) -> None:
    # Slow attempts keep the runs in progress while GetRun asks for them.
    async with secured_executor(tmp_path, simulated_latency_ms=60_000.0) as secured:
        stub = secured.stub()
        calls = []
        started: dict[str, str] = {}
        for name in (SENSITIVE_NAME, "demo"):
            call = stub.RunWorkflow(
                run_request(package_name=name), metadata=secured.auth("alice"), timeout=30
            )
            calls.append(call)
            first = await call.read()
            assert isinstance(first, executor_pb2.RunWorkflowResponse)
            assert first.HasField("run_started")
            started[name] = first.run_id
        secret, plain = started[SENSITIVE_NAME], started["demo"]
        try:
            own = await get_run_as(secured, "alice", secret)
            assert own.status == executor_pb2.RUN_STATUS_RUNNING
            unknown = new_run_id()
            for other in ("bob", "root"):
                hidden = await refused(get_run_as(secured, other, secret))
                absent = await refused(get_run_as(secured, other, unknown))
                assert not_found_as_unknown(hidden, secret) == not_found_as_unknown(absent, unknown)
                # Only SENSITIVE runs are hidden: another in progress is shown.
                shown = await get_run_as(secured, other, plain)
                assert shown.status == executor_pb2.RUN_STATUS_RUNNING
        finally:
            for call in calls:
                call.cancel()


def recommendation_request(**answers: Answer) -> executor_pb2.GetRecommendationsRequest:
    return executor_pb2.GetRecommendationsRequest(
        template_id="python_package_publish",
        answers={key: to_form_value(value) for key, value in answers.items()},
    )


async def suggested(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, metadata: tuple[tuple[str, str], ...]
) -> executor_pb2.GetRecommendationsResponse:
    return await stub.GetRecommendations(
        recommendation_request(package_name="anything"), metadata=metadata, timeout=10
    )


async def test_recommendations_never_draw_on_another_users_sensitive_runs(
    tmp_path: Path,
) -> None:
    async with secured_executor(
        tmp_path,
        runner="simulated",
        simulated_success=ALL_SUCCEED,
        recommendation_min_runs=1,
        outbox_replay_interval_seconds=0.05,
    ) as secured:
        # Alice's two SENSITIVE runs chose "major"; Bob's one visible run "minor".
        secret_runs = {
            await run_as(secured, "alice", package_name=SENSITIVE_NAME, version_bump="major")
            for _ in range(2)
        }
        bobs = await run_as(secured, "bob", package_name="demo", version_bump="minor")
        stub = secured.stub()

        def bumps(response: executor_pb2.GetRecommendationsResponse) -> list[str]:
            return [
                s.value.string_value
                for s in response.suggested_answers
                if s.question_id == "version_bump"
            ]

        assert bumps(await suggested(stub, secured.auth("bob"))) == ["minor"]
        assert bumps(await suggested(stub, secured.auth("root"))) == ["minor"]
        assert bumps(await suggested(stub, secured.auth("alice"))) == ["major"]

        # Similar runs from the run files (memory down) follow the same rule.
        await secured.stack.stop_memory()
        as_bob = await suggested(stub, secured.auth("bob"))
        assert as_bob.similar_runs_source == executor_pb2.SEARCH_SOURCE_LOCAL_FILES
        assert [hit.run_id for hit in as_bob.similar_runs] == [bobs]
        as_alice = await suggested(stub, secured.auth("alice"))
        assert {hit.run_id for hit in as_alice.similar_runs} == secret_runs | {bobs}


async def test_with_authentication_off_every_run_is_shown(tmp_path: Path) -> None:
    """Development: every caller is the same anonymous admin, whatever token it sends."""
    async with running_stack(tmp_path) as stack:
        stub = stack.executor_stub()
        secret = run_id_of(await run_to_end(stub, run_request(package_name=SENSITIVE_NAME)))
        token = (("authorization", "Bearer some-token-0123456789abcdef"),)
        fetched = await stub.GetRun(
            executor_pb2.GetRunRequest(run_id=secret), metadata=token, timeout=10
        )
        assert (fetched.run.run_id, fetched.run.owner) == (secret, "anonymous")
        listed_runs = await stub.ListRuns(executor_pb2.ListRunsRequest(), timeout=10)
        assert [run.run_id for run in listed_runs.runs] == [secret]


ALL_FAIL_CHEAP = {"cheap": 0.0, "capable": 1.0, "premium": 1.0}


async def test_analytics_count_a_sensitive_run_but_show_its_failure_texts_to_its_owner_only(
    tmp_path: Path,
) -> None:
    # Every cheap attempt fails, so the run has failure texts to report.
    async with secured_executor(tmp_path, simulated_success=ALL_FAIL_CHEAP) as secured:
        await run_as(secured, "alice", package_name=SENSITIVE_NAME)

        async def analytics_as(user: str) -> executor_pb2.GetAnalyticsResponse:
            return await secured.stub().GetAnalytics(
                executor_pb2.GetAnalyticsRequest(), metadata=secured.auth(user), timeout=10
            )

        mine, theirs = await analytics_as("alice"), await analytics_as("bob")
        # Counts, rates and costs cover the run for everybody ...
        assert mine.run_count == theirs.run_count == 1
        assert theirs.cost.total_usd == mine.cost.total_usd > 0
        # ... but an error is free text: the SENSITIVE run's stay its owner's.
        assert mine.failures
        assert list(theirs.failures) == []
