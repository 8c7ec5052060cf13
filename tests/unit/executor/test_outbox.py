"""The outbox inside run directories: queued atomically, survives restarts."""

from __future__ import annotations

from pathlib import Path

from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.memory.outbox import PENDING, REJECTED, Outbox
from executor_service.runs.store import RunStore, new_run_id


def persist_queued(store: RunStore, outbox: Outbox) -> str:
    run = executor_pb2.Run(run_id=new_run_id(), template_id="t")
    pattern = memory_pb2.Pattern(id=run.run_id, type=memory_pb2.PATTERN_TYPE_EXECUTION)
    store.persist(run, {}, outbox.staged_file(pattern))
    outbox.queued(pattern.id)
    return run.run_id


def test_queued_patterns_survive_a_restart_in_run_order(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    outbox = Outbox(tmp_path)
    ids = [persist_queued(store, outbox) for _ in range(3)]
    reopened = Outbox(tmp_path)
    assert reopened.depth() == 3
    assert [pattern.id for pattern in reopened.pending()] == sorted(ids)
    age = reopened.oldest_age_seconds()
    assert age is not None
    assert age >= 0


def test_acknowledged_patterns_leave_the_queue_and_the_disk(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    outbox = Outbox(tmp_path)
    first, second = persist_queued(store, outbox), persist_queued(store, outbox)
    outbox.remove(first)
    assert not (tmp_path / first / PENDING).exists()
    assert [pattern.id for pattern in outbox.pending()] == [second]
    assert not outbox.is_queued(first)
    assert outbox.is_queued(second)
    assert Outbox(tmp_path).depth() == 1


def test_refused_patterns_are_kept_beside_their_run_but_not_replayed(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    outbox = Outbox(tmp_path)
    refused = persist_queued(store, outbox)
    outbox.set_aside(refused)
    assert (tmp_path / refused / REJECTED).exists()
    assert outbox.depth() == 0
    assert Outbox(tmp_path).pending() == []


def test_an_empty_outbox_has_no_age(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    assert outbox.depth() == 0
    assert outbox.oldest_age_seconds() is None


def test_pending_leaves_out_patterns_being_delivered_elsewhere(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    outbox = Outbox(tmp_path)
    ids = sorted(persist_queued(store, outbox) for _ in range(3))
    assert outbox.queued_ids() == ids
    assert [pattern.id for pattern in outbox.pending(exclude={ids[1]})] == [ids[0], ids[2]]
    # The left-out pattern is still queued: only this reading skips it.
    assert outbox.depth() == 3


def test_any_queued_tells_whether_something_beyond_the_excluded_waits(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    outbox = Outbox(tmp_path)
    assert not outbox.any_queued()
    only = persist_queued(store, outbox)
    assert outbox.any_queued()
    assert not outbox.any_queued(exclude={only})


def test_an_unreadable_marker_is_set_aside_and_holds_nothing_back(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    outbox = Outbox(tmp_path)
    damaged, intact = sorted(persist_queued(store, outbox) for _ in range(2))
    (tmp_path / damaged / PENDING).write_bytes(b"\xff\xff\xff\xff")
    assert [pattern.id for pattern in outbox.pending()] == [intact]
    assert outbox.is_rejected(damaged)
    assert outbox.queued_ids() == [intact]
