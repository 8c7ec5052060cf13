"""The outbox replay: its backoff schedule, its order, its early wake-up.

The memory service is a scripted stand-in and the waits are recorded by an
injected sleep, so the schedule is checked exactly and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar, cast

import grpc
import pytest

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service import metrics
from executor_service.memory.client import MemoryClient
from executor_service.memory.delivery import PatternDeliverer, ReplayBackoff, ReplayPass
from executor_service.memory.outbox import Outbox
from executor_service.runs.store import RunStore, new_run_id
from tests.support.helpers import eventually

T = TypeVar("T")

START = datetime(2026, 1, 17, 5, 29, 59, tzinfo=UTC)


class FakeMemory:
    """StorePattern as scripted: up, down, refusing some ids, or holding some."""

    def __init__(self) -> None:
        self.offered: list[str] = []
        self.down = False
        self.refused: set[str] = set()
        # Ids the service answers about but does not take yet (no key there).
        self.not_yet: set[str] = set()
        # Ids whose store waits until their event is set.
        self.held: dict[str, asyncio.Event] = {}
        # Ids it already holds as sent (another replica stored them).
        self.holding: set[str] = set()

    async def store(
        self, pattern: memory_pb2.Pattern, remaining: float | None = None
    ) -> memory_pb2.StorePatternResponse:
        self.offered.append(pattern.id)
        if (gate := self.held.get(pattern.id)) is not None:
            await gate.wait()
        if pattern.id in self.refused:
            raise _error(grpc.StatusCode.INVALID_ARGUMENT, "refused")
        if pattern.id in self.not_yet:
            raise _error(grpc.StatusCode.FAILED_PRECONDITION, "no encryption key configured")
        if self.down:
            raise _error(grpc.StatusCode.UNAVAILABLE, "connection refused")
        return memory_pb2.StorePatternResponse(deduped=pattern.id in self.holding)


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class Harness:
    """A run store, its outbox and a deliverer talking to a FakeMemory."""

    def __init__(self, root: Path) -> None:
        self.store = RunStore(root)
        self.outbox = Outbox(root)
        self.memory = FakeMemory()
        # The deliverer only ever calls store(): the fake stands in for the client.
        self.deliverer = PatternDeliverer(self.outbox, cast(MemoryClient, self.memory))
        self._runs = 0

    def persist(self) -> memory_pb2.Pattern:
        """A run and its queued pattern on disk; run ids a second apart, so in order."""
        self._runs += 1
        run_id = new_run_id(START + timedelta(seconds=self._runs))
        run = executor_pb2.Run(run_id=run_id, template_id="t")
        pattern = memory_pb2.Pattern(id=run_id, type=memory_pb2.PATTERN_TYPE_EXECUTION)
        self.store.persist(run, {}, self.outbox.staged_file(pattern))
        return pattern

    def queue(self) -> str:
        """A run whose fresh delivery failed: its pattern waits for the replay."""
        pattern = self.persist()
        self.outbox.queued(pattern.id)
        return pattern.id


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


# --- the schedule --------------------------------------------------------------


def test_waits_double_from_the_interval_up_to_the_maximum() -> None:
    lowest = ReplayBackoff(5.0, 60.0, random=lambda: 0.0)
    highest = ReplayBackoff(5.0, 60.0, random=lambda: 1.0)
    # The n-th band is [max(interval, c/2), c] with c = min(60, 5 * 2**n).
    assert [lowest.delay(n) for n in range(1, 7)] == [5.0, 10.0, 20.0, 30.0, 30.0, 30.0]
    assert [highest.delay(n) for n in range(1, 7)] == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]


def test_jitter_draws_each_wait_from_its_band() -> None:
    draws = iter([0.25, 0.5, 0.75])
    backoff = ReplayBackoff(1.0, 100.0, random=lambda: next(draws))
    assert [backoff.delay(1), backoff.delay(2), backoff.delay(3)] == [1.25, 3.0, 7.0]


def test_a_maximum_below_the_interval_means_the_interval() -> None:
    backoff = ReplayBackoff(5.0, 1.0, random=lambda: 0.9)
    assert {backoff.delay(n) for n in range(1, 10)} == {5.0}


def test_an_outage_of_any_length_stays_at_the_maximum() -> None:
    backoff = ReplayBackoff(5.0, 60.0, random=lambda: 1.0)
    assert backoff.delay(100_000) == 60.0


# --- the loop ------------------------------------------------------------------


class ScriptEndError(Exception):
    """Ends replay_forever from the injected sleep."""


async def test_replay_backs_off_while_memory_fails_and_resets_after_a_success(
    harness: Harness,
) -> None:
    memory = harness.memory
    memory.down = True
    first = harness.queue()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        # Each wait is a point where the world changes, as in an outage.
        waits.append(seconds)
        if len(waits) == 2:
            memory.down = False  # Back during the second backoff.
        elif len(waits) == 3:
            memory.down = True  # A new outage while the queue is empty.
            harness.queue()
        elif len(waits) == 5:
            raise ScriptEndError

    with pytest.raises(ScriptEndError):
        await harness.deliverer.replay_forever(5.0, 60.0, random=lambda: 0.5, sleep=sleep)
    # Two stalled passes (7.5, 15), a clean one (the interval, 5), then the
    # new outage starts again from the first band instead of the third.
    assert waits == [7.5, 15.0, 5.0, 7.5, 15.0]
    assert memory.offered.count(first) == 3
    assert harness.outbox.depth() == 1


async def test_a_pass_goes_oldest_first_and_stops_at_the_first_failure(
    harness: Harness,
) -> None:
    ids = [harness.queue() for _ in range(3)]
    harness.memory.down = True
    outcome = await harness.deliverer.replay()
    assert outcome.delivered == 0
    assert outcome.stalled.startswith("UNAVAILABLE")
    # The first failure ends the pass: nothing later is offered out of order.
    assert harness.memory.offered == ids[:1]
    harness.memory.down = False
    outcome = await harness.deliverer.replay()
    assert (outcome.delivered, outcome.stalled) == (3, "")
    assert harness.memory.offered == ids[:1] + ids
    assert harness.outbox.depth() == 0


async def test_a_refused_pattern_is_set_aside_without_stalling_the_pass(
    harness: Harness,
) -> None:
    refused, *others = [harness.queue() for _ in range(3)]
    harness.memory.refused.add(refused)
    outcome = await harness.deliverer.replay()
    assert (outcome.delivered, outcome.stalled) == (2, "")
    assert harness.outbox.is_rejected(refused)
    assert harness.outbox.depth() == 0
    assert harness.memory.offered == [refused, *others]


async def test_a_pattern_not_taken_yet_stays_queued_without_holding_back_the_rest(
    harness: Harness,
) -> None:
    stuck, *others = [harness.queue() for _ in range(3)]
    harness.memory.not_yet.add(stuck)
    outcome = await harness.deliverer.replay()
    assert outcome.delivered == 2
    assert "FAILED_PRECONDITION" in outcome.stalled, "stalled: offered again after a backoff"
    assert harness.outbox.queued_ids() == [stuck]
    assert not harness.outbox.is_rejected(stuck)
    assert harness.memory.offered == [stuck, *others]


async def test_an_outage_stops_the_pass_at_once(harness: Harness) -> None:
    [harness.queue() for _ in range(3)]
    harness.memory.down = True
    outcome = await harness.deliverer.replay()
    assert outcome.delivered == 0
    assert "UNAVAILABLE" in outcome.stalled
    assert len(harness.memory.offered) == 1, "one failed call says the service is away"


async def test_the_replay_leaves_a_pattern_in_fresh_delivery_to_it(harness: Harness) -> None:
    stranded = harness.queue()
    fresh = harness.persist()
    harness.memory.held[fresh.id] = gate = asyncio.Event()
    delivery = asyncio.create_task(harness.deliverer.deliver(fresh, None))
    await eventually(_async(lambda: harness.memory.offered), lambda offered: fresh.id in offered)
    outcome = await harness.deliverer.replay()
    assert outcome.delivered == 1
    gate.set()
    assert (await delivery).stored
    # Offered once each: the replay did not send the fresh one a second time.
    assert sorted(harness.memory.offered) == sorted([stranded, fresh.id])
    assert harness.outbox.depth() == 0


async def test_a_fresh_delivery_that_succeeds_ends_the_backoff_wait(harness: Harness) -> None:
    harness.memory.down = True
    stranded = harness.queue()
    # An hour between replays: only the wake-up can drain the queue in time.
    replaying = asyncio.create_task(harness.deliverer.replay_forever(3600.0, 3600.0))
    try:
        await eventually(_async(lambda: harness.memory.offered), lambda o: stranded in o)
        harness.memory.down = False
        fresh = harness.persist()
        assert (await harness.deliverer.deliver(fresh, None)).stored
        await eventually(_async(harness.outbox.depth), lambda depth: depth == 0, within=5.0)
        assert harness.memory.offered == [stranded, fresh.id, stranded]
    finally:
        replaying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await replaying


async def test_only_a_success_while_patterns_are_stranded_wakes_the_replay(
    harness: Harness,
) -> None:
    # Nothing waits: a success says nothing the replay needs to act on.
    assert (await harness.deliverer.deliver(harness.persist(), None)).stored
    assert not harness.deliverer.wake_pending
    # A failure strands a pattern; it wakes nothing, the memory service is down.
    harness.memory.down = True
    assert not (await harness.deliverer.deliver(harness.persist(), None)).stored
    assert not harness.deliverer.wake_pending
    harness.memory.down = False
    assert (await harness.deliverer.deliver(harness.persist(), None)).stored
    assert harness.deliverer.wake_pending
    # The next pass starts from a clean slate: only later successes count.
    await harness.deliverer.replay()
    assert not harness.deliverer.wake_pending


async def test_cancelling_stops_the_replay_mid_pass_and_keeps_the_pattern(
    harness: Harness,
) -> None:
    queued = harness.queue()
    harness.memory.held[queued] = asyncio.Event()  # Never set: the store hangs.
    replaying = asyncio.create_task(harness.deliverer.replay_forever(5.0, 60.0))
    await eventually(_async(lambda: harness.memory.offered), lambda o: queued in o)
    replaying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await replaying
    assert harness.outbox.is_queued(queued)
    assert Outbox(harness.outbox.root).queued_ids() == [queued]


async def test_cancelling_stops_the_replay_mid_wait(harness: Harness) -> None:
    harness.memory.down = True
    harness.queue()
    replaying = asyncio.create_task(harness.deliverer.replay_forever(3600.0, 3600.0))
    await eventually(_async(lambda: harness.memory.offered), lambda offered: len(offered) == 1)
    replaying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await replaying


def _async(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """A synchronous reading as the coroutine `eventually` polls."""

    async def probe() -> T:
        return read()

    return probe


async def test_a_pass_that_raises_is_logged_and_retried_with_backoff(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    queued = harness.queue()
    replay = harness.deliverer.replay
    raised = False

    async def broken_once() -> ReplayPass:
        nonlocal raised
        if not raised:
            raised = True
            raise RuntimeError("a bug")
        return await replay()

    harness.deliverer.replay = broken_once  # type: ignore[method-assign]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise ScriptEndError

    with pytest.raises(ScriptEndError):
        await harness.deliverer.replay_forever(5.0, 60.0, random=lambda: 0.5, sleep=sleep)
    # A failing pass backs off like an outage (7.5); the next one delivers,
    # and the wait after it is the plain interval again.
    assert waits == [7.5, 5.0]
    assert harness.memory.offered == [queued]
    assert harness.outbox.depth() == 0
    failed = [r for r in caplog.records if r.getMessage() == "outbox replay failed"]
    assert len(failed) == 1
    assert failed[0].exc_info is not None


# --- replicas sharing one runs directory ----------------------------------------------


async def test_only_the_replica_holding_the_outbox_lock_replays(tmp_path: Path) -> None:
    lock = tmp_path / ".outbox.lock"
    first = Harness(tmp_path)
    ids = [first.queue() for _ in range(3)]
    replicas = [
        PatternDeliverer(Outbox(tmp_path), cast(MemoryClient, first.memory), lock) for _ in range(2)
    ]
    # Another replica is replaying: it holds the lock (flock conflicts between
    # open file descriptions even in one process, as between two hosts' processes).
    holder = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        for replica in replicas:
            assert await replica.replay() == ReplayPass(0)
        assert first.memory.offered == []  # Nobody but the holder offers anything.
    finally:
        os.close(holder)
    outcome = await replicas[0].replay()
    assert (outcome.delivered, outcome.stalled) == (3, "")
    # The other replica rescans under the lock and finds nothing left to offer.
    assert await replicas[1].replay() == ReplayPass(0)
    assert first.memory.offered == ids


# --- fresh offers and the replay -------------------------------------------------


async def test_a_pattern_claimed_before_its_run_is_written_is_left_to_its_fresh_offer(
    harness: Harness,
) -> None:
    # The replay rescans the disk (replicas share it): a marker written for a
    # run whose fresh offer has not begun yet is not its to offer.
    pattern = harness.persist()
    with harness.deliverer.claimed(pattern.id):
        harness.outbox.rescan()
        assert harness.outbox.is_queued(pattern.id)
        assert await harness.deliverer.replay() == ReplayPass(0)
        assert harness.memory.offered == []
        delivery = await harness.deliverer.deliver(pattern, None)
    assert delivery.stored
    assert harness.memory.offered == [pattern.id]
    assert await harness.deliverer.replay() == ReplayPass(0)
    assert harness.memory.offered == [pattern.id]


async def test_a_pattern_delivered_fresh_during_a_pass_is_not_offered_again(
    harness: Harness,
) -> None:
    first, second = harness.queue(), harness.queue()
    gate = harness.memory.held[first] = asyncio.Event()
    replay = asyncio.create_task(harness.deliverer.replay())
    await eventually(_async(lambda: harness.memory.offered), lambda offered: offered == [first])
    # While the pass waits on the first, the second is offered fresh and taken.
    (pattern,) = [p for p in harness.outbox.pending() if p.id == second]
    assert (await harness.deliverer.deliver(pattern, None)).stored
    gate.set()
    assert await replay == ReplayPass(1)
    assert harness.memory.offered == [first, second]


async def test_claims_nest_so_the_replay_waits_for_the_outermost(harness: Harness) -> None:
    # The run claims its pattern before it is written and deliver() claims it
    # again: the offer's end must not release the run's claim.
    pattern = harness.persist()
    harness.memory.down = True
    with harness.deliverer.claimed(pattern.id):
        assert not (await harness.deliverer.deliver(pattern, None)).stored
        harness.memory.down = False
        assert await harness.deliverer.replay() == ReplayPass(0)
        assert harness.memory.offered == [pattern.id]
    assert await harness.deliverer.replay() == ReplayPass(1)
    assert harness.memory.offered == [pattern.id, pattern.id]


def deliveries(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "attune_executor_pattern_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


async def test_a_replay_memory_already_holds_is_counted_apart(harness: Harness) -> None:
    # Another replica's fresh offer stored (and counted) it, or an offer's
    # answer was lost; this replay finds it queued and memory dedupes it.
    held, taken = harness.queue(), harness.queue()
    harness.memory.holding.add(held)
    before = {outcome: deliveries(outcome) for outcome in ("replayed", "replay_deduped")}
    assert await harness.deliverer.replay() == ReplayPass(2)
    assert deliveries("replayed") - before["replayed"] == 1
    assert deliveries("replay_deduped") - before["replay_deduped"] == 1
    assert harness.outbox.depth() == 0
    assert harness.memory.offered == [held, taken]
