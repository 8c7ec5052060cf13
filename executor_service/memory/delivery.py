"""Getting run patterns to the memory service: now, or later from the outbox.

A run's pattern is offered once when the run finishes (`deliver`). Whatever
the memory service did not take stays queued on disk, and `replay_forever`
offers the queue again, oldest run first, stopping at the first pattern the
memory service does not take: a later pattern would meet the same outage,
and stopping keeps the queue in creation order.

While the memory service keeps failing, the replay backs off exponentially
(`ReplayBackoff`), from the replay interval up to a maximum, with jitter. A
pass that gets through the whole queue resets it to the interval. A fresh
delivery that succeeds while patterns are stranded in the queue ends the
current wait at once: the memory service is back, so the queue drains now
instead of up to a maximum interval later.

tenacity drives the backoff: one retry episode per outage, so its attempt
count is the number of stalled passes in a row, and a custom wait draws from
an injected random source, so tests check the schedule exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, retry_if_result
from tenacity.wait import wait_base

from attune.memory.v1 import memory_pb2
from executor_service import metrics
from executor_service.memory.client import (
    CREDENTIAL_CODES,
    EXECUTOR_CREDENTIALS_HINT,
    UNREACHABLE_CODES,
    MemoryClient,
)
from executor_service.memory.outbox import Outbox

log = logging.getLogger("attune.executor.delivery")

# Answers about the pattern itself: final. Every other failure is transient,
# UNAUTHENTICATED and PERMISSION_DENIED included: they are about the
# executor's token, not the pattern, and the pattern must reach the memory
# service once the token is fixed ("No pattern lost or duplicated"), so it stays queued.
FINAL_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS})

# 2**64 intervals exceed any maximum anyone configures; a bigger exponent
# would only overflow the float.
_MAX_DOUBLINGS = 64


@dataclass(frozen=True)
class Delivery:
    """What happened to a pattern."""

    stored: bool
    deduped: bool = False
    reason: str = ""
    rejected: bool = False
    # Not taken because the memory service cannot be reached (as opposed to
    # an answer about this pattern, such as a missing encryption key there).
    outage: bool = False


@dataclass(frozen=True)
class ReplayPass:
    """What one pass over the queue did."""

    delivered: int
    # Why the pass stopped short of the end of the queue; "" if it did not.
    stalled: str = ""


class ReplayBackoff(wait_base):
    """The wait after the n-th stalled replay pass in a row (a tenacity wait).

    The n-th wait is drawn uniformly from [max(interval, c/2), c], where
    c = min(maximum, interval * 2**n): exponential growth, never sooner than
    the interval, never longer than the maximum. The jitter keeps executors
    that lost the same memory service from all replaying in the same instant
    when it returns. A maximum below the interval means the interval.
    `random` returns a float in [0, 1); tests inject it.
    """

    def __init__(
        self,
        interval_seconds: float,
        max_interval_seconds: float,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.interval = interval_seconds
        self.maximum = max(interval_seconds, max_interval_seconds)
        self._random = random

    def delay(self, stalled_passes: int) -> float:
        """Seconds to wait after this many stalled passes in a row (1 or more)."""
        doublings = min(max(stalled_passes, 0), _MAX_DOUBLINGS)
        ceiling = min(self.maximum, self.interval * 2.0**doublings)
        floor = max(self.interval, ceiling / 2)
        return floor + self._random() * (ceiling - floor)

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.delay(retry_state.attempt_number)


Sleep = Callable[[float], Awaitable[None]]


class PatternDeliverer:
    """Queues each pattern durably, then offers it to the memory service."""

    def __init__(
        self, outbox: Outbox, client: MemoryClient, replay_lock: Path | None = None
    ) -> None:
        self.outbox = outbox
        self.client = client
        # Replicas sharing the runs root replay one at a time: a pass runs
        # only while holding this file's lock, and rescans the queue first.
        self._replay_lock = replay_lock
        self._lock = asyncio.Lock()
        # The code of the credentials refusal being reported, "" when none.
        # The replay meets the same refusal every interval: one error line per
        # episode says it; GetStatus and each queued run keep saying it.
        self._refused = ""
        # Patterns whose fresh delivery is under way, with how many claims
        # each holds (the run's and the offer's nest). The replay leaves them
        # to it: offering them as well would only send each twice.
        self._in_flight: Counter[str] = Counter()
        # Set when a fresh delivery succeeds while others wait in the queue:
        # the memory service is back, so the replay stops waiting.
        self._wake = asyncio.Event()

    @contextlib.contextmanager
    def claimed(self, pattern_id: str) -> Iterator[None]:
        """Keeps the replay off a pattern while its fresh offer is under way.

        Taken before the run (with the pattern's marker) is persisted: the
        replay rescans the disk and would otherwise offer the pattern too,
        between the write and the fresh offer, and both would count. Claims
        nest: the pattern stays claimed until the outermost one ends.
        """
        self._in_flight[pattern_id] += 1
        try:
            yield
        finally:
            self._in_flight[pattern_id] -= 1
            if self._in_flight[pattern_id] <= 0:
                del self._in_flight[pattern_id]

    async def deliver(self, pattern: memory_pb2.Pattern, remaining: float | None) -> Delivery:
        """Tries once to store a pattern already queued with its run."""
        self.outbox.queued(pattern.id)
        with self.claimed(pattern.id):
            outcome = await self._offer(pattern, remaining)
        metrics.pattern_delivered(_fresh_outcome(outcome))
        if outcome.stored:
            self.memory_seen_back()
        return outcome

    def memory_seen_back(self) -> None:
        """Ends the replay's wait if patterns are stranded in the queue.

        For whatever sees the memory service answer again: a fresh delivery
        does. A queued pattern stuck for a reason of its own rather than an
        outage is then offered again after each such success: one extra call
        per run at most, the price of draining promptly after a real outage.
        """
        if self.outbox.any_queued(exclude=self._in_flight):
            self._wake.set()

    @property
    def wake_pending(self) -> bool:
        """Whether the replay's next pass starts at once, without its wait."""
        return self._wake.is_set()

    async def _offer(self, pattern: memory_pb2.Pattern, remaining: float | None) -> Delivery:
        try:
            response = await self.client.store(pattern, remaining)
        except grpc.aio.AioRpcError as error:
            reason = f"{error.code().name}: {error.details()}"
            if error.code() in FINAL_CODES:
                # The memory service judged the pattern itself: retrying the
                # same bytes can never succeed. Anything else stays queued.
                log.error("pattern rejected", extra={"pattern_id": pattern.id, "reason": reason})
                await asyncio.to_thread(self.outbox.set_aside, pattern.id)
                return Delivery(stored=False, reason=reason, rejected=True)
            if error.code() in CREDENTIAL_CODES:
                reason = f"{reason} ({EXECUTOR_CREDENTIALS_HINT})"
                self._report_refusal(error.code(), pattern.id, reason)
            return Delivery(stored=False, reason=reason, outage=error.code() in UNREACHABLE_CODES)
        except grpc.aio.UsageError as error:  # The channel closed under us (shutdown).
            return Delivery(stored=False, reason=f"memory channel closed: {error}", outage=True)
        if self._refused:
            log.info("the memory service accepts the executor's token again")
            self._refused = ""
        await asyncio.to_thread(self.outbox.remove, pattern.id)
        return Delivery(stored=True, deduped=response.deduped)

    def _report_refusal(self, code: grpc.StatusCode, pattern_id: str, reason: str) -> None:
        """Logs a configuration problem: loudly once, then quietly while it lasts."""
        level = logging.DEBUG if self._refused == code.name else logging.ERROR
        self._refused = code.name
        log.log(
            level,
            "configuration problem: the memory service refused the executor's token "
            "(EXECUTOR_MEMORY_TOKEN); patterns stay queued until it is fixed",
            extra={"pattern_id": pattern_id, "reason": reason},
        )

    async def replay(self) -> ReplayPass:
        """Offers every queued pattern in order; stops at the first outage.

        A pattern refused for good is set aside and the pass goes on: the
        refusal is about that pattern, not about the memory service. So does
        a pattern the memory service answers about but does not take yet
        (e.g. FAILED_PRECONDITION: it holds no encryption key for a
        SENSITIVE pattern): it stays queued, and must not hold back every
        pattern queued after it. The pass still counts as stalled, so such a
        pattern is offered again on the backoff's schedule, not in a loop.
        """
        async with self._lock:
            if self._replay_lock is None:
                return await self._replay_pass()
            # What other replicas queued or delivered since the last pass.
            await asyncio.to_thread(self.outbox.rescan)
            held = await asyncio.to_thread(_try_lock, self._replay_lock)
            if held is None:
                return ReplayPass(0)  # Another replica replays now; next interval, maybe us.
            try:
                await asyncio.to_thread(self.outbox.rescan)  # As it stands under the lock.
                return await self._replay_pass()
            finally:
                os.close(held)  # Closing the descriptor releases the lock.

    async def _replay_pass(self) -> ReplayPass:
        """One pass over the queue (the caller holds the locks)."""
        # Only a success after this point says the memory service is back.
        self._wake.clear()
        began = time.monotonic()
        delivered, stalled = 0, ""
        in_flight = frozenset(self._in_flight)
        for pattern in await asyncio.to_thread(self.outbox.pending, in_flight):
            if pattern.id in self._in_flight or not self.outbox.is_queued(pattern.id):
                continue  # Claimed, or delivered, by a fresh offer since the read.
            outcome = await self._offer(pattern, None)
            if outcome.rejected:
                metrics.pattern_delivered("rejected")
                continue
            if not outcome.stored:
                stalled = stalled or outcome.reason
                if outcome.outage:
                    break
                continue
            # Deduped: memory held it already, stored by another replica's
            # fresh offer (replicas share the queue) or by an offer whose
            # answer was lost. Apart, so the two never add up to one pattern twice.
            metrics.pattern_delivered("replay_deduped" if outcome.deduped else "replayed")
            delivered += 1
        if delivered:
            log.info(
                "outbox replayed",
                extra={
                    "delivered": delivered,
                    "left": self.outbox.depth(),
                    "seconds": round(time.monotonic() - began, 3),
                },
            )
        return ReplayPass(delivered, stalled)

    async def replay_forever(
        self,
        interval_seconds: float,
        max_interval_seconds: float,
        *,
        random: Callable[[], float] = random.random,
        sleep: Sleep | None = None,
    ) -> None:
        """Replays the outbox until cancelled: every interval while the memory
        service takes what is offered, backing off while it does not.

        `sleep` waits between passes; by default it also ends early when the
        memory service is seen to be back. Tests inject it to record the waits.
        """
        nap = sleep or self._nap
        # One retry episode per outage: tenacity counts the stalled passes
        # in a row and asks the backoff for each wait; a clean pass ends the
        # episode, so the next outage starts again from the interval.
        # Cancellation (shutdown) is neither a result nor an Exception, so
        # tenacity re-raises it from a pass as from a wait.
        retrying = AsyncRetrying(
            sleep=nap,
            wait=ReplayBackoff(interval_seconds, max_interval_seconds, random),
            retry=retry_if_result(lambda done: bool(done.stalled))
            | retry_if_exception_type(Exception),
            before_sleep=self._log_stall,
        )
        while True:
            await retrying(self.replay)
            await nap(interval_seconds)

    @staticmethod
    def _log_stall(state: RetryCallState) -> None:
        """Says why the queue is not draining: once per outage, then quietly."""
        outcome = state.outcome
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        extra = {"stalled_passes": state.attempt_number, "next_try_seconds": round(wait, 3)}
        if outcome is not None and outcome.failed:
            # A bug, not an outage: always loud, with its traceback.
            log.error("outbox replay failed", exc_info=outcome.exception(), extra=extra)
            return
        reason = outcome.result().stalled if outcome is not None else ""
        level = logging.WARNING if state.attempt_number == 1 else logging.DEBUG
        log.log(
            level, "outbox replay waits for the memory service", extra={**extra, "reason": reason}
        )

    async def _nap(self, seconds: float) -> None:
        """Waits `seconds`, or less if a fresh delivery sees the memory service back."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()


def _fresh_outcome(delivery: Delivery) -> str:
    """What a finished run's first offer did, as the deliveries metric names it."""
    if delivery.stored:
        return "deduped" if delivery.deduped else "stored"
    return "rejected" if delivery.rejected else "queued"


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding `path`'s exclusive lock, or None when
    another process holds it. Any thread."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor
