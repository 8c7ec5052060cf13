"""The circuit breaker in front of the memory service.

CLOSED: calls flow; `failure_threshold` consecutive failures open it.
OPEN: calls fail fast, without touching the network, for `reset_seconds`.
HALF_OPEN: the cool-down is over; exactly one call goes through as a probe.
Its success closes the breaker, its failure opens it for another cool-down,
and while it is in flight every other call still fails fast.

Why a small state machine of our own rather than aiobreaker or purgatory:
both judge a call by the exception it raises, while here a call has three
outcomes, decided by its gRPC status (see `outcome_of`): a failure (the
service could not answer), a success (it answered, even "no"), or nothing
learnt (the caller cancelled, or cut the deadline short with its own). The
readiness probe's NOT_SERVING is a failure without an exception at all.
GetStatus and readiness read the state synchronously, where purgatory keeps
it behind an asynchronous store, and the tests drive the cool-down with an
injected clock instead of sleeping. Neither library is a dependency of the
project today.

Everything here runs on the event loop and never awaits, so each method is
atomic with respect to the calls it guards.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

log = logging.getLogger("attune.executor.breaker")


class State(enum.Enum):
    """Where the breaker stands."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class Outcome(enum.Enum):
    """What one guarded call says about the service's health."""

    SUCCESS = "success"
    FAILURE = "failure"
    # The call says nothing either way: it does not count, and a probe's
    # slot is freed for the next call.
    NOTHING_LEARNT = "nothing learnt"


# Statuses that mean the service could not answer. Every other status is an
# answer (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED...): the service is
# alive, whatever it thought of the request.
FAILURE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def outcome_of(code: grpc.StatusCode, cut_short: bool) -> Outcome:
    """The outcome of a call that ended with this status.

    `cut_short`: the call's deadline was the caller's remaining time, below
    the configured one. Its DEADLINE_EXCEEDED blames the caller's budget, not
    the service, or one impatient client could open the breaker for everyone.
    CANCELLED is the client giving up (gRPC reports a dropped connection as
    UNAVAILABLE), so it says nothing either.
    """
    if code == grpc.StatusCode.CANCELLED:
        return Outcome.NOTHING_LEARNT
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and cut_short:
        return Outcome.NOTHING_LEARNT
    return Outcome.FAILURE if code in FAILURE_CODES else Outcome.SUCCESS


class BreakerOpenError(grpc.aio.AioRpcError):
    """A call refused by the open breaker: UNAVAILABLE, made locally.

    It is an AioRpcError so every caller already handles it as the outage it
    stands for: runs queue their pattern, AUTO searches answer from files.
    """

    def __init__(self, retry_in_seconds: float) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details=(
                "circuit breaker open: the memory service failed repeatedly; "
                f"next probe in {retry_in_seconds:.1f} s"
            ),
        )


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; hand it back with the call's outcome."""

    generation: int
    probe: bool


class CircuitBreaker:
    """Counts consecutive failures and decides whether a call may go."""

    def __init__(
        self,
        failure_threshold: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        name: str = "memory",
    ) -> None:
        if failure_threshold < 1 or reset_seconds < 0:
            raise ValueError("needs failure_threshold >= 1 and reset_seconds >= 0")
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.name = name
        self._clock = clock
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        # Bumped on every transition: an outcome that arrives from a call let
        # through under an earlier state is stale and ignored, e.g. a slow
        # call admitted while CLOSED and failing after the probe closed it.
        self._generation = 0
        self._listeners: list[Callable[[State], None]] = []

    @property
    def state(self) -> State:
        """The state now: OPEN reads HALF_OPEN once its cool-down is over."""
        if self._state is State.OPEN and self.retry_in() == 0:
            return State.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success, while CLOSED."""
        return self._failures

    def subscribe(self, listener: Callable[[State], None]) -> None:
        """Calls `listener(new_state)` on every transition, e.g. so a queue
        waiting out a backoff can replay as soon as the breaker closes."""
        self._listeners.append(listener)

    def retry_in(self) -> float:
        """Seconds until a probe may go; 0 unless OPEN."""
        if self._state is not State.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_seconds - self._clock())

    def admit(self) -> Permit | None:
        """A permit for one call, or None: fail fast."""
        state = self.state
        if state is State.CLOSED:
            return Permit(self._generation, probe=False)
        if state is State.HALF_OPEN and not self._probing:
            if self._state is State.OPEN:
                self._move(State.HALF_OPEN)
            self._probing = True
            return Permit(self._generation, probe=True)
        return None

    def record(self, permit: Permit, outcome: Outcome) -> None:
        """Hands a permit back with what its call taught."""
        if permit.generation != self._generation:
            return
        if permit.probe:
            self._probing = False
            if outcome is Outcome.SUCCESS:
                self._move(State.CLOSED)
            elif outcome is Outcome.FAILURE:
                self._move(State.OPEN)
            return
        if outcome is Outcome.SUCCESS:
            self._failures = 0
        elif outcome is Outcome.FAILURE:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._move(State.OPEN)

    def _move(self, state: State) -> None:
        previous = self._state
        self._state = state
        self._generation += 1
        self._failures = 0
        if state is State.OPEN:
            self._opened_at = self._clock()
        # Opening is what an operator must see; the rest is the way back.
        log.log(
            logging.WARNING if state is State.OPEN else logging.INFO,
            "circuit breaker state changed",
            extra={
                "breaker": self.name,
                "from_state": previous.value,
                "to_state": state.value,
                "reset_seconds": self.reset_seconds,
            },
        )
        for listener in self._listeners:
            listener(state)
