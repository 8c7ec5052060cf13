"""One costly request never stalls the service for another namespace (issue 10, 1-3).

Each test sends a request that used to hold the memory service's event loop
(or its one SQLite thread) for seconds, and meanwhile a second client, on
its own thread and channel, keeps reading a pattern of another namespace.
It must get an answer at least every BOUND seconds. Before the fixes the
longest wait was as long as the costly request ran (2 to 67 s on a loaded
2-core machine); after, under 0.4 s.
"""

from __future__ import annotations

import asyncio
import functools
import random
import string
import threading
import time
from collections.abc import Awaitable, Callable

import grpc
import pytest

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.patterns import MAX_CONTENT_BYTES
from memory_service.rpc.context import MAX_CONTEXT_VALUE
from tests.support.stack import Stack

BOUND = 1.0  # Longest wait between two answers to the bystander while the costly call runs.
OTHER = "bystander"


async def _seed_bystander(stack: Stack) -> None:
    pattern = memory_pb2.Pattern(
        id="cheap", type=memory_pb2.PATTERN_TYPE_INSIGHT, content="a small note"
    )
    await stack.memory_stub().StorePattern(
        memory_pb2.StorePatternRequest(namespace=OTHER, pattern=pattern), timeout=10
    )


def _read_until(address: str, started: threading.Event, stop: threading.Event) -> list[float]:
    """Reads the bystander's pattern back to back until `stop`: the times between answers.

    Between answers, not per call: a stall that holds the interpreter lock
    (a long regex does) stops this thread too, before it could start a
    clock. From the first answer to the last, read after `stop`, every
    moment lies in one of the gaps.
    """
    gaps: list[float] = []
    with grpc.insecure_channel(address) as channel:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        request = memory_pb2.GetPatternRequest(namespace=OTHER, pattern_id="cheap")
        stub.GetPattern(request, timeout=120)
        last = time.monotonic()
        started.set()
        finished = False
        while not finished:
            finished = stop.is_set()  # Then this read is the last.
            stub.GetPattern(request, timeout=120)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
    return gaps


async def _worst_read_during(
    stack: Stack, costly: Callable[[], Awaitable[object]]
) -> tuple[object, float]:
    """The costly call's outcome (its result or its error), and the longest wait meanwhile."""
    started, stop = threading.Event(), threading.Event()
    reader = asyncio.ensure_future(
        asyncio.to_thread(_read_until, stack.memory_address, started, stop)
    )
    await asyncio.to_thread(started.wait, 30)  # The reader is going before the costly call.
    outcome: object
    try:
        outcome = await costly()  # Called only now: a call starts when it is made.
    except grpc.aio.AioRpcError as error:
        outcome = error
    finally:
        stop.set()
    gaps = await reader
    return outcome, max(gaps)


async def test_a_quadratic_looking_url_does_not_stall_other_namespaces(stack: Stack) -> None:
    await _seed_bystander(stack)
    pattern = memory_pb2.Pattern(
        id="url",
        type=memory_pb2.PATTERN_TYPE_INSIGHT,
        content="http://a.example/?" + "key" * 32_000,  # 96K characters: 15 s before.
    )
    costly = functools.partial(
        stack.memory_stub().StorePattern,
        memory_pb2.StorePatternRequest(namespace="writer", pattern=pattern),
        timeout=120,
    )
    outcome, worst = await _worst_read_during(stack, costly)
    assert isinstance(outcome, memory_pb2.StorePatternResponse)
    assert worst < BOUND


async def test_a_secret_scan_of_a_large_context_value_does_not_stall(stack: Stack) -> None:
    await _seed_bystander(stack)
    value = ("http://a.example/?" + "key" * MAX_CONTEXT_VALUE)[:MAX_CONTEXT_VALUE]  # 6.4 s before.
    costly = functools.partial(
        stack.memory_stub().SetContext,
        memory_pb2.SetContextRequest(namespace="writer", session_id="s", key="k", value=value),
        timeout=120,
    )
    outcome, worst = await _worst_read_during(stack, costly)
    assert isinstance(outcome, memory_pb2.SetContextResponse)
    assert worst < BOUND


async def test_scrubbing_a_large_numeric_pattern_happens_off_the_event_loop(stack: Stack) -> None:
    await _seed_bystander(stack)
    rng = random.Random(1)
    rows = (
        f"{rng.randint(0, 99999)},{rng.random():.4f},{rng.randint(0, 999)}\n" for _ in range(20_000)
    )
    # Phone-number checks of every number: several seconds of CPU, linear but dear.
    pattern = memory_pb2.Pattern(
        id="table",
        type=memory_pb2.PATTERN_TYPE_INSIGHT,
        content="".join(rows)[:MAX_CONTENT_BYTES],
    )
    costly = functools.partial(
        stack.memory_stub().StorePattern,
        memory_pb2.StorePatternRequest(namespace="writer", pattern=pattern),
        timeout=120,
    )
    outcome, worst = await _worst_read_during(stack, costly)
    assert isinstance(outcome, memory_pb2.StorePatternResponse)
    assert worst < BOUND


@pytest.mark.parametrize("size", [100_000, 1_000_000])
async def test_an_oversized_query_is_refused_at_once(stack: Stack, size: int) -> None:
    await _seed_bystander(stack)
    query = ("failed runs that cost more than $5 with 3 agents last week " * (size // 60 + 1))[
        :size
    ]
    costly = functools.partial(
        stack.memory_stub().SearchPatterns,
        memory_pb2.SearchPatternsRequest(namespace="reader", query=query),
        timeout=120,
    )
    outcome, worst = await _worst_read_during(stack, costly)
    assert worst < BOUND
    # Refused: before, understanding could consume enough to slip under the limit.
    assert isinstance(outcome, grpc.aio.AioRpcError)
    assert outcome.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1024" in (outcome.details() or "")


async def test_an_oversized_search_runs_is_refused_by_the_executor_at_once(stack: Stack) -> None:
    await _seed_bystander(stack)
    # 1 MB: query understanding on the executor's event loop took a minute before.
    query = ("failed runs that cost more than $5 with 3 agents last week " * 17_000)[:1_000_000]
    costly = functools.partial(
        stack.executor_stub().SearchRuns, executor_pb2.SearchRunsRequest(query=query), timeout=120
    )
    outcome, worst = await _worst_read_during(stack, costly)
    assert worst < BOUND
    assert isinstance(outcome, grpc.aio.AioRpcError)
    assert outcome.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_correcting_against_a_huge_vocabulary_does_not_stall(stack: Stack) -> None:
    await _seed_bystander(stack)
    rng = random.Random(7)
    stub = stack.memory_stub()

    def words(count: int, low: int, high: int) -> str:
        letters = string.ascii_lowercase
        return " ".join(
            "".join(rng.choices(letters, k=rng.randint(low, high))) for _ in range(count)
        )

    for number in range(10):  # About 300,000 distinct random words.
        pattern = memory_pb2.Pattern(
            id=f"words-{number}",
            type=memory_pb2.PATTERN_TYPE_INSIGHT,
            content=words(40_000, 4, 9)[: MAX_CONTENT_BYTES - 1],
        )
        await stub.StorePattern(
            memory_pb2.StorePatternRequest(namespace="huge", pattern=pattern), timeout=60
        )
    warm = memory_pb2.SearchPatternsRequest(namespace="huge", query="qqqq")
    await stub.SearchPatterns(warm, timeout=60)  # The vocabulary is loaded: not what is timed.
    # A legal query: 1,016 characters of short words no pattern holds, each a typo candidate.
    query = words(250, 4, 5)[:1016]
    costly = functools.partial(
        stub.SearchPatterns,
        memory_pb2.SearchPatternsRequest(namespace="huge", query=query),
        timeout=120,
    )
    outcome, worst = await _worst_read_during(stack, costly)
    assert isinstance(outcome, memory_pb2.SearchPatternsResponse)
    assert worst < BOUND
