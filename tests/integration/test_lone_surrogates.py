"""A lone surrogate in a filter or query answers INVALID_ARGUMENT on every RPC that takes one.

Issue 10, finding 7. The wire only carries valid UTF-8, so a lone surrogate
arrives as the ASCII escape `\\ud800` inside a filter's string literal,
which the filter language decodes (JSON escapes). It then reached SQLite,
which cannot encode it: INTERNAL (UnicodeEncodeError).
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from tests.support.helpers import run_request, run_to_end, store_insight, violations_of
from tests.support.stack import Stack

NS = "team-a"
FILTERS = [
    'content = "\\ud800"',
    'tags:"x\\udfff"',
    'template_id = "a" OR form_responses.package_name = "\\ud800\\ud800"',
    'NOT agents.role = "\\udc00"',
]
# Queries can hold the same characters as text: harmless words, never an error.
QUERIES = ['"\\ud800"', "\\ud800 coverage", 'template "\\udfff"', "content:\\ud800"]
RUN_FILTERS = ['template_id = "\\ud800"', 'runner = "sim\\udfffulated"']


async def refused_on_filter(call: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert "surrogate" in violations_of(raised.value)["filter"]


async def test_memory_refuses_a_lone_surrogate_in_every_filter(stack: Stack) -> None:
    stub = stack.memory_stub()
    await store_insight(stub, NS, "p-1", "coverage gate")
    for text in FILTERS:
        await refused_on_filter(
            stub.ListPatterns(memory_pb2.ListPatternsRequest(namespace=NS, filter=text), timeout=5)
        )
        await refused_on_filter(
            stub.CountPatterns(
                memory_pb2.CountPatternsRequest(namespace=NS, filter=text), timeout=5
            )
        )
        await refused_on_filter(
            stub.SearchPatterns(
                memory_pb2.SearchPatternsRequest(namespace=NS, query="coverage", filter=text),
                timeout=5,
            )
        )
    for query in QUERIES:
        found = await stub.SearchPatterns(
            memory_pb2.SearchPatternsRequest(namespace=NS, query=query), timeout=5
        )
        assert found.total_size >= 0


async def test_the_executor_refuses_a_lone_surrogate_in_search_and_list_filters(
    stack: Stack,
) -> None:
    stub = stack.executor_stub()
    await run_to_end(stub, run_request(package_name="demo"))
    for text in FILTERS:
        for mode in (
            executor_pb2.SEARCH_RUNS_MODE_AUTO,
            executor_pb2.SEARCH_RUNS_MODE_MEMORY,
            executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES,
            executor_pb2.SEARCH_RUNS_MODE_HYBRID,
        ):
            await refused_on_filter(
                stub.SearchRuns(
                    executor_pb2.SearchRunsRequest(query="demo", filter=text, mode=mode),
                    timeout=10,
                )
            )
    for text in RUN_FILTERS:
        await refused_on_filter(stub.ListRuns(executor_pb2.ListRunsRequest(filter=text), timeout=5))
    for query in QUERIES:
        for mode in (
            executor_pb2.SEARCH_RUNS_MODE_MEMORY,
            executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES,
        ):
            answer = await stub.SearchRuns(
                executor_pb2.SearchRunsRequest(query=query, mode=mode), timeout=10
            )
            assert not answer.degraded
