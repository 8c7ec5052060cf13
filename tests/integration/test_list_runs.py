"""ListRuns: newest first, filtered before paging, opaque tokens bound to the filter."""

from __future__ import annotations

import grpc
import pytest

from attune.executor.v1 import executor_pb2
from tests.support.helpers import run_request, run_to_end, violations_of
from tests.support.stack import Stack


async def make_runs(stack: Stack, count: int) -> list[executor_pb2.Run]:
    stub = stack.executor_stub()
    runs = []
    for seed in range(count):
        request = run_request(package_name=f"pkg{seed}")
        request.seed = seed
        runs.append((await run_to_end(stub, request))[-1].run_finished.run)
    return runs


async def list_all(
    stack: Stack, filter_text: str = "", page_size: int = 0
) -> tuple[list[str], int]:
    stub = stack.executor_stub()
    ids: list[str] = []
    pages = 0
    token = ""
    while True:
        response = await stub.ListRuns(
            executor_pb2.ListRunsRequest(filter=filter_text, page_size=page_size, page_token=token),
            timeout=5,
        )
        ids += [run.run_id for run in response.runs]
        pages += 1
        token = response.next_page_token
        if not token:
            return ids, pages


async def test_runs_are_listed_newest_first_across_pages(stack: Stack) -> None:
    runs = await make_runs(stack, 7)
    ids, pages = await list_all(stack, page_size=3)
    assert ids == [run.run_id for run in reversed(runs)]
    assert pages == 3


async def test_filter_is_applied_before_the_page_limit(stack: Stack) -> None:
    runs = await make_runs(stack, 8)
    succeeded = [r.run_id for r in reversed(runs) if r.status == executor_pb2.RUN_STATUS_SUCCEEDED]
    failed = [r.run_id for r in reversed(runs) if r.status == executor_pb2.RUN_STATUS_FAILED]
    assert succeeded, "seeds 0-7 give both outcomes; the test needs both"
    assert failed
    assert (await list_all(stack, "status = SUCCEEDED", page_size=2))[0] == succeeded
    assert (await list_all(stack, 'status = "failed"', page_size=2))[0] == failed
    by_template = await list_all(stack, 'template_id = "python_package_publish"', page_size=5)
    assert len(by_template[0]) == 8


async def test_time_range_filter(stack: Stack) -> None:
    runs = await make_runs(stack, 3)
    middle = runs[1].create_time.ToJsonString()
    newer, _ = await list_all(stack, f'create_time >= "{middle}"')
    assert newer == [runs[2].run_id, runs[1].run_id]
    window, _ = await list_all(
        stack, f'create_time > "2000-01-01T00:00:00Z" AND create_time < "{middle}"'
    )
    assert window == [runs[0].run_id]


@pytest.mark.parametrize(
    ("filter_text", "fragment"),
    [
        ("colour = 1", "unknown field 'colour'"),
        ("status = DONE", "status is one of"),
        ("total_cost_usd > cheap", "is a number"),
        ('create_time > "yesterday"', "RFC 3339"),
        ("status = ", "position 9"),
        ("(status = FAILED", "expected ')'"),
    ],
)
async def test_bad_filters_are_invalid_argument(
    stack: Stack, filter_text: str, fragment: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.executor_stub().ListRuns(
            executor_pb2.ListRunsRequest(filter=filter_text), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in violations_of(raised.value)["filter"]


async def test_page_tokens_are_bound_to_their_filter(stack: Stack) -> None:
    await make_runs(stack, 3)
    stub = stack.executor_stub()
    first = await stub.ListRuns(executor_pb2.ListRunsRequest(page_size=1), timeout=5)
    assert first.next_page_token
    for token, filter_text in ((first.next_page_token, "status = FAILED"), ("garbage", "")):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListRuns(
                executor_pb2.ListRunsRequest(page_token=token, filter=filter_text), timeout=5
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in violations_of(raised.value)


async def test_pages_stay_stable_while_new_runs_finish(stack: Stack) -> None:
    await make_runs(stack, 4)
    stub = stack.executor_stub()
    first = await stub.ListRuns(executor_pb2.ListRunsRequest(page_size=2), timeout=5)
    await make_runs(stack, 2)  # Newer runs arrive between the two pages.
    second = await stub.ListRuns(
        executor_pb2.ListRunsRequest(page_size=2, page_token=first.next_page_token), timeout=5
    )
    first_ids = [run.run_id for run in first.runs]
    second_ids = [run.run_id for run in second.runs]
    assert not set(first_ids) & set(second_ids)
    assert max(second_ids) < min(first_ids)
