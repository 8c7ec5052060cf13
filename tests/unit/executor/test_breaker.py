"""The circuit breaker's state machine, on an injected clock, and its wiring
into the memory client (a fake stub counts what reaches the "network")."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from attune.memory.v1 import memory_pb2
from executor_service.memory.breaker import (
    BreakerOpenError,
    CircuitBreaker,
    Outcome,
    Permit,
    State,
    outcome_of,
)
from executor_service.memory.client import MemoryClient


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> State:
    # A call, not the property: mypy would narrow the property after one assert.
    return breaker.state


def admitted(breaker: CircuitBreaker) -> Permit:
    permit = breaker.admit()
    assert permit is not None
    return permit


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record(admitted(breaker), Outcome.FAILURE)


def opened(threshold: int = 3, reset: float = 5.0) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    breaker = CircuitBreaker(threshold, reset, clock=clock)
    fail(breaker, threshold)
    assert state_of(breaker) is State.OPEN
    return breaker, clock


# --- outcomes -----------------------------------------------------------------


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_unreachable_statuses_are_failures(code: grpc.StatusCode) -> None:
    assert outcome_of(code, cut_short=False) is Outcome.FAILURE


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ],
)
def test_answers_prove_the_service_alive(code: grpc.StatusCode) -> None:
    assert outcome_of(code, cut_short=False) is Outcome.SUCCESS


def test_a_deadline_cut_short_by_the_caller_teaches_nothing() -> None:
    assert outcome_of(grpc.StatusCode.DEADLINE_EXCEEDED, cut_short=True) is Outcome.NOTHING_LEARNT
    # UNAVAILABLE is the service's doing, whatever the deadline.
    assert outcome_of(grpc.StatusCode.UNAVAILABLE, cut_short=True) is Outcome.FAILURE


def test_a_cancelled_call_teaches_nothing() -> None:
    assert outcome_of(grpc.StatusCode.CANCELLED, cut_short=False) is Outcome.NOTHING_LEARNT


# --- CLOSED -> OPEN -------------------------------------------------------------


def test_opens_after_the_threshold_of_consecutive_failures_not_before() -> None:
    breaker = CircuitBreaker(3, 5.0, clock=Clock())
    fail(breaker, 2)
    assert state_of(breaker) is State.CLOSED
    assert breaker.consecutive_failures == 2
    fail(breaker)
    assert state_of(breaker) is State.OPEN


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(3, 5.0, clock=Clock())
    fail(breaker, 2)
    breaker.record(admitted(breaker), Outcome.SUCCESS)
    fail(breaker, 2)
    assert state_of(breaker) is State.CLOSED


def test_nothing_learnt_neither_counts_nor_resets() -> None:
    breaker = CircuitBreaker(3, 5.0, clock=Clock())
    fail(breaker, 2)
    breaker.record(admitted(breaker), Outcome.NOTHING_LEARNT)
    assert breaker.consecutive_failures == 2
    fail(breaker)
    assert state_of(breaker) is State.OPEN


# --- OPEN ------------------------------------------------------------------------


def test_open_refuses_every_call_until_the_cool_down_is_over() -> None:
    breaker, clock = opened(reset=5.0)
    assert breaker.admit() is None
    assert breaker.retry_in() == pytest.approx(5.0)
    clock.now += 4.9
    assert breaker.admit() is None
    assert state_of(breaker) is State.OPEN
    assert breaker.retry_in() == pytest.approx(0.1)


def test_late_outcomes_of_calls_let_through_before_it_opened_are_ignored() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 5.0, clock=clock)
    slow = admitted(breaker)
    fail(breaker, 2)
    # A success from the old regime does not close it...
    breaker.record(slow, Outcome.SUCCESS)
    assert state_of(breaker) is State.OPEN
    # ...and a failure does not restart the cool-down.
    clock.now += 3
    breaker.record(slow, Outcome.FAILURE)
    assert breaker.retry_in() == pytest.approx(2.0)


# --- HALF_OPEN -------------------------------------------------------------------


def test_after_the_cool_down_exactly_one_probe_goes_through() -> None:
    breaker, clock = opened(reset=5.0)
    clock.now += 5.0
    assert state_of(breaker) is State.HALF_OPEN
    probe = admitted(breaker)
    assert probe.probe
    assert state_of(breaker) is State.HALF_OPEN
    assert breaker.admit() is None  # Others fail fast while the probe is out.


def test_a_successful_probe_closes() -> None:
    breaker, clock = opened()
    clock.now += 5.0
    breaker.record(admitted(breaker), Outcome.SUCCESS)
    assert state_of(breaker) is State.CLOSED
    assert breaker.consecutive_failures == 0
    assert not admitted(breaker).probe


def test_a_failed_probe_reopens_for_a_new_cool_down() -> None:
    breaker, clock = opened(reset=5.0)
    clock.now += 7.0
    breaker.record(admitted(breaker), Outcome.FAILURE)
    assert state_of(breaker) is State.OPEN
    assert breaker.retry_in() == pytest.approx(5.0)
    assert breaker.admit() is None


def test_a_probe_that_taught_nothing_frees_the_slot_for_the_next_call() -> None:
    breaker, clock = opened()
    clock.now += 5.0
    breaker.record(admitted(breaker), Outcome.NOTHING_LEARNT)
    assert state_of(breaker) is State.HALF_OPEN
    assert admitted(breaker).probe


def test_a_closed_breaker_needs_the_full_threshold_again() -> None:
    breaker, clock = opened(threshold=2)
    clock.now += 5.0
    breaker.record(admitted(breaker), Outcome.SUCCESS)
    fail(breaker)
    assert state_of(breaker) is State.CLOSED
    fail(breaker)
    assert state_of(breaker) is State.OPEN


def test_listeners_hear_every_transition_in_order() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 1.0, clock=clock)
    heard: list[State] = []
    breaker.subscribe(heard.append)
    fail(breaker)
    clock.now += 1.0
    breaker.record(admitted(breaker), Outcome.FAILURE)
    clock.now += 1.0
    breaker.record(admitted(breaker), Outcome.SUCCESS)
    assert heard == [
        State.OPEN,
        State.HALF_OPEN,
        State.OPEN,
        State.HALF_OPEN,
        State.CLOSED,
    ]


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (1, -1.0)])
def test_nonsense_settings_are_refused(threshold: int, reset: float) -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(threshold, reset)


def test_the_fail_fast_error_is_an_unavailable_rpc_error() -> None:
    error = BreakerOpenError(2.5)
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "circuit breaker open" in str(error.details())
    assert "2.5 s" in str(error.details())


# --- wiring into the memory client -----------------------------------------------


class FakeStub:
    """Stands in for the memory stub: counts calls, answers as told."""

    def __init__(self, code: grpc.StatusCode | None) -> None:
        self.code = code
        self.timeouts: list[float] = []

    async def StorePattern(self, request: Any, **call: Any) -> memory_pb2.StorePatternResponse:
        self.timeouts.append(call["timeout"])
        if self.code is not None:
            raise grpc.aio.AioRpcError(
                self.code, grpc.aio.Metadata(), grpc.aio.Metadata(), "told to"
            )
        return memory_pb2.StorePatternResponse()

    async def SearchPatterns(self, request: Any, **call: Any) -> memory_pb2.SearchPatternsResponse:
        self.timeouts.append(call["timeout"])
        return memory_pb2.SearchPatternsResponse()


def client_with(stub: FakeStub, clock: Clock, **options: Any) -> MemoryClient:
    # Nothing listens on port 1: were the fake bypassed, calls would fail.
    client = MemoryClient(
        "127.0.0.1:1", "default", 1.0, breaker=CircuitBreaker(2, 5.0, clock=clock), **options
    )
    client._stub = stub  # type: ignore[assignment]
    return client


async def test_once_open_calls_fail_fast_without_reaching_the_stub() -> None:
    stub, clock = FakeStub(grpc.StatusCode.UNAVAILABLE), Clock()
    client = client_with(stub, clock)
    try:
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await client.store(memory_pb2.Pattern(id="p"))
        assert state_of(client.breaker) is State.OPEN
        with pytest.raises(BreakerOpenError):
            await client.store(memory_pb2.Pattern(id="p"))
        assert len(stub.timeouts) == 2
        # The error that opened it stays the one GetStatus shows.
        assert client.last_error == "UNAVAILABLE: told to"
        # After the cool-down the next call is the probe, and it closes.
        clock.now += 5.0
        stub.code = None
        await client.store(memory_pb2.Pattern(id="p"))
        assert state_of(client.breaker) is State.CLOSED
        assert client.reachable
    finally:
        await client.close()


async def test_client_side_refusals_never_open_it() -> None:
    stub, clock = FakeStub(grpc.StatusCode.INVALID_ARGUMENT), Clock()
    client = client_with(stub, clock)
    try:
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError):
                await client.store(memory_pb2.Pattern(id="p"))
        assert state_of(client.breaker) is State.CLOSED
        assert len(stub.timeouts) == 5
    finally:
        await client.close()


async def test_deadlines_cut_short_by_the_caller_never_open_it() -> None:
    stub, clock = FakeStub(grpc.StatusCode.DEADLINE_EXCEEDED), Clock()
    client = client_with(stub, clock)
    try:
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError):
                await client.store(memory_pb2.Pattern(id="p"), remaining=0.2)
        assert state_of(client.breaker) is State.CLOSED
        # With the full configured deadline, the same status counts.
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await client.store(memory_pb2.Pattern(id="p"))
        assert state_of(client.breaker) is State.OPEN
    finally:
        await client.close()


async def test_each_rpc_has_its_own_deadline_capped_by_the_caller() -> None:
    stub, clock = FakeStub(None), Clock()
    client = client_with(stub, clock, store_timeout_seconds=3.0, search_timeout_seconds=0.5)
    try:
        await client.store(memory_pb2.Pattern(id="p"))
        await client.search(memory_pb2.SearchPatternsRequest())
        await client.store(memory_pb2.Pattern(id="p"), remaining=1.05)
        assert stub.timeouts == [3.0, 0.5, pytest.approx(1.0)]
    finally:
        await client.close()


async def test_unset_per_rpc_deadlines_fall_back_to_the_general_one() -> None:
    stub, clock = FakeStub(None), Clock()
    client = client_with(stub, clock)
    try:
        await client.store(memory_pb2.Pattern(id="p"))
        await client.search(memory_pb2.SearchPatternsRequest())
        assert stub.timeouts == [1.0, 1.0]
    finally:
        await client.close()
