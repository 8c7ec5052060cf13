"""The file audit log: JSON lines, rotation, filtered newest-first paging, concurrency."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from memory_service.access.audit import (
    AuditAction,
    AuditLog,
    AuditRecord,
    FileAuditLog,
)
from memory_service.security.identity import Action, Principal, Role, authorize
from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.logging import request_id_var
from memory_service.servicekit.paging import encode_cursor

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def record(i: int, **changes: object) -> AuditRecord:
    """The i-th of a varied stream of records, one minute apart."""
    fields: dict[str, object] = {
        "principal": ("alice", "bob", "carol")[i % 3],
        "namespace": ("team-a", "team-b")[i % 2],
        "action": (AuditAction.GET, AuditAction.STORE, AuditAction.SEARCH, AuditAction.DELETE)[
            i % 4
        ],
        "outcome": "PERMISSION_DENIED" if i % 5 == 4 else "OK",
        "pattern_ids": (f"p{i}",),
        "result_count": i,
        "event_time": T0 + timedelta(minutes=i),
        "request_id": f"req-{i}",
    }
    fields.update(changes)
    return AuditRecord(**fields)  # type: ignore[arg-type]


def files(log: FileAuditLog) -> list[Path]:
    """The log's files, newest first."""
    found = [log.path]
    found += [log.path.with_name(f"{log.path.name}.{n}") for n in range(1, log.backups + 1)]
    return [path for path in found if path.exists()]


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


async def read_all(
    log: AuditLog, namespace: str | None = None, filter_text: str = "", page_size: int = 7
) -> list[AuditRecord]:
    """Every matching record, newest first, page by page."""
    found: list[AuditRecord] = []
    token = ""
    while True:
        page, token = await log.read(namespace, filter_text, page_size, token)
        assert len(page) <= page_size
        found += page
        if not token:
            return found


async def write_all(log: FileAuditLog, count: int) -> list[AuditRecord]:
    written = [record(i) for i in range(count)]
    for item in written:
        await log.write(item)
    return written


@pytest.fixture
def log(tmp_path: Path) -> FileAuditLog:
    return FileAuditLog(tmp_path / "audit" / "audit.log", max_bytes=1 << 20, backups=3)


def invalid_fields(error: ServiceError) -> list[str]:
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    return [v.field for d in error.details for v in d.field_violations]  # type: ignore[attr-defined]


# --- records -------------------------------------------------------------------------


def test_record_to_proto() -> None:
    event = record(1, pattern_ids=("p1", "p2"), result_count=2).to_proto()
    assert event.principal == "bob"
    assert event.namespace == "team-b"
    assert event.action == "store"
    assert list(event.pattern_ids) == ["p1", "p2"]
    assert event.result_count == 2
    assert event.outcome == "OK"
    assert event.request_id == "req-1"
    assert event.event_time.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=1)


def test_record_defaults_take_now_and_the_request_id() -> None:
    token = request_id_var.set("rid-42")
    try:
        item = AuditRecord(principal="alice", namespace="team-a", action=AuditAction.GET)
    finally:
        request_id_var.reset(token)
    assert item.request_id == "rid-42"
    assert item.outcome == "OK"
    assert abs(datetime.now(UTC) - item.event_time) < timedelta(seconds=5)


def test_record_normalises_time_and_bounds_fields() -> None:
    naive = AuditRecord(
        principal="p" * 10_000,
        namespace="n" * 10_000,
        action="get",
        pattern_ids=tuple(f"p{i}" for i in range(5000)),
        result_count=2**40,
        event_time=datetime(2025, 1, 1, 12, 0),
    )
    assert naive.event_time == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert len(naive.principal) <= 256
    assert len(naive.namespace) <= 256
    assert len(naive.pattern_ids) == 1000
    assert naive.result_count == 2**31 - 1
    naive.to_proto()  # int32 and all: serialisable


def test_json_round_trip() -> None:
    item = record(7)
    assert AuditRecord.from_json(json.loads(json.dumps(item.to_json()))) == item


def test_delegated_by_round_trips_and_older_records_read_without_it() -> None:
    delegated = record(7, principal="alice", delegated_by="svc:executor")
    data = delegated.to_json()
    assert data["delegated_by"] == "svc:executor"
    assert AuditRecord.from_json(json.loads(json.dumps(data))) == delegated
    assert delegated.to_proto().delegated_by == "svc:executor"
    older = record(7).to_json()
    assert "delegated_by" not in older  # Absent unless set, as before the field existed.
    assert AuditRecord.from_json(older).delegated_by == ""


async def test_delegated_by_is_stored_and_filterable(log: FileAuditLog) -> None:
    mine = record(1, principal="alice")
    delegated = record(2, principal="alice", delegated_by="svc:executor")
    await log.write_many([mine, delegated])
    assert lines(log.path)[1]["delegated_by"] == "svc:executor"
    assert await read_all(log) == [delegated, mine]
    assert await read_all(log, filter_text='delegated_by = "svc:executor"') == [delegated]
    assert await read_all(log, filter_text='delegated_by = ""') == [mine]


def test_file_audit_log_is_an_audit_log(log: FileAuditLog) -> None:
    as_protocol: AuditLog = log
    assert as_protocol is log


# --- appending -------------------------------------------------------------------------


async def test_append_writes_one_json_line_per_record(log: FileAuditLog) -> None:
    written = await write_all(log, 3)
    [path] = files(log)
    parsed = lines(path)
    assert [line["seq"] for line in parsed] == [1, 2, 3]
    assert parsed[0] == {
        "seq": 1,
        "event_time": "2025-06-01T12:00:00.000000Z",
        "principal": "alice",
        "namespace": "team-a",
        "action": "get",
        "pattern_ids": ["p0"],
        "result_count": 0,
        "outcome": "OK",
        "request_id": "req-0",
        "peer": "",
        "repeat_count": 1,
    }
    assert await read_all(log) == written[::-1]


async def test_file_is_owner_only(log: FileAuditLog) -> None:
    await log.write(record(0))
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600


async def test_records_are_flushed_at_once(log: FileAuditLog) -> None:
    await log.write(record(0))
    # Another reader (no close, no fsync) already sees the whole line.
    assert lines(log.path)[0]["request_id"] == "req-0"


async def test_text_with_newlines_and_unicode_stays_on_one_line(log: FileAuditLog) -> None:
    odd = record(0, principal="ali\nce\u2028é", namespace="a\r\nb", request_id='"}{\n')
    await log.write(odd)
    assert len(log.path.read_bytes().splitlines()) == 1
    assert log.path.read_bytes().isascii()
    assert await read_all(log) == [odd]


async def test_empty_log_reads_empty(log: FileAuditLog) -> None:
    assert await log.read(None, "", 10, "") == ([], "")


async def test_closed_log_refuses_writes(log: FileAuditLog) -> None:
    await log.write(record(0))
    log.close()
    log.close()  # Idempotent.
    with pytest.raises(RuntimeError, match="closed"):
        await log.write(record(1))


@pytest.mark.parametrize(("max_bytes", "backups"), [(0, 1), (100, 0), (-1, 3)])
def test_rotation_settings_are_checked(tmp_path: Path, max_bytes: int, backups: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        FileAuditLog(tmp_path / "a.log", max_bytes, backups)


async def test_restart_continues_the_sequence(tmp_path: Path) -> None:
    first = FileAuditLog(tmp_path / "audit.log", 1 << 20, 2)
    await write_all(first, 3)
    first.close()
    second = FileAuditLog(tmp_path / "audit.log", 1 << 20, 2)
    await second.write(record(3))
    assert [line["seq"] for line in lines(tmp_path / "audit.log")] == [1, 2, 3, 4]
    assert [r.result_count for r in await read_all(second)] == [3, 2, 1, 0]


async def test_a_torn_last_line_is_skipped_and_ended(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    first = FileAuditLog(path, 1 << 20, 2)
    await write_all(first, 2)
    first.close()
    with path.open("ab") as handle:
        handle.write(b'{"seq":3,"event_time":"2025-')  # A crash mid-write.
    second = FileAuditLog(path, 1 << 20, 2)
    await second.write(record(5))
    raw = path.read_bytes().splitlines()
    assert len(raw) == 4  # The torn line stays, alone on its line.
    assert json.loads(raw[-1])["seq"] == 3  # Continues after the last whole record.
    assert [r.result_count for r in await read_all(second)] == [5, 1, 0]


async def test_garbage_lines_are_skipped(log: FileAuditLog) -> None:
    await log.write(record(0))
    with log.path.open("ab") as handle:
        handle.write(b"not json\n[1,2]\n{}\n" + b'{"seq":"x"}\n')
    await log.write(record(1))
    assert [r.result_count for r in await read_all(log)] == [1, 0]


# --- rotation --------------------------------------------------------------------------


async def test_rotation_keeps_order_and_reads_span_files(tmp_path: Path) -> None:
    line_size = len(json.dumps(record(10).to_json(), separators=(",", ":"))) + 12
    log = FileAuditLog(tmp_path / "audit.log", max_bytes=line_size * 4, backups=10)
    written = await write_all(log, 30)
    rotated = files(log)
    assert len(rotated) >= 6
    for path in rotated:
        assert path.stat().st_size <= log.max_bytes
    # Within each file seqs ascend; across files (newest first) they descend.
    seqs_newest_first: list[int] = []
    for path in rotated:
        seqs = [int(str(line["seq"])) for line in lines(path)]
        assert seqs == sorted(seqs)
        seqs_newest_first += seqs[::-1]
    assert seqs_newest_first == list(range(30, 0, -1))
    assert await read_all(log, page_size=4) == written[::-1]


async def test_rotation_drops_only_the_oldest(tmp_path: Path) -> None:
    line_size = len(json.dumps(record(10).to_json(), separators=(",", ":"))) + 12
    log = FileAuditLog(tmp_path / "audit.log", max_bytes=line_size * 2, backups=2)
    written = await write_all(log, 20)
    assert [p.name for p in files(log)] == ["audit.log", "audit.log.1", "audit.log.2"]
    assert not (tmp_path / "audit.log.3").exists()
    kept = await read_all(log)
    assert kept == written[::-1][: len(kept)]
    assert 4 <= len(kept) <= 6


async def test_a_record_larger_than_max_bytes_still_fits_alone(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path / "audit.log", max_bytes=50, backups=2)
    await write_all(log, 3)
    assert [len(lines(path)) for path in files(log)] == [1, 1, 1]
    assert [r.result_count for r in await read_all(log)] == [2, 1, 0]


# --- filtering -------------------------------------------------------------------------


@pytest.fixture
async def filled(log: FileAuditLog) -> list[AuditRecord]:
    """40 varied records, newest first."""
    return (await write_all(log, 40))[::-1]


@pytest.mark.parametrize(
    "filter_text",
    [
        'principal = "alice"',
        "principal = bob",
        "action = store",
        "action = STORE OR action = delete",
        "outcome = PERMISSION_DENIED",
        "outcome != OK",
        'event_time >= "2025-06-01T12:30:00Z"',
        'event_time < "2025-06-01T12:10:00Z" AND principal = "carol"',
        'pattern_ids:"p12"',
        "result_count > 30",
        'request_id = "req-3"',
        "NOT namespace = team-a",
    ],
)
async def test_filters(log: FileAuditLog, filled: list[AuditRecord], filter_text: str) -> None:
    expected = {
        'principal = "alice"': [r for r in filled if r.principal == "alice"],
        "principal = bob": [r for r in filled if r.principal == "bob"],
        "action = store": [r for r in filled if r.action == "store"],
        "action = STORE OR action = delete": [r for r in filled if r.action in ("store", "delete")],
        "outcome = PERMISSION_DENIED": [r for r in filled if r.outcome == "PERMISSION_DENIED"],
        "outcome != OK": [r for r in filled if r.outcome != "OK"],
        'event_time >= "2025-06-01T12:30:00Z"': [
            r for r in filled if r.event_time >= T0 + timedelta(minutes=30)
        ],
        'event_time < "2025-06-01T12:10:00Z" AND principal = "carol"': [
            r
            for r in filled
            if r.event_time < T0 + timedelta(minutes=10) and r.principal == "carol"
        ],
        'pattern_ids:"p12"': [r for r in filled if "p12" in r.pattern_ids],
        "result_count > 30": [r for r in filled if r.result_count > 30],
        'request_id = "req-3"': [r for r in filled if r.request_id == "req-3"],
        "NOT namespace = team-a": [r for r in filled if r.namespace != "team-a"],
    }[filter_text]
    assert expected
    assert await read_all(log, filter_text=filter_text, page_size=3) == expected


async def test_namespace_scopes_the_read(log: FileAuditLog, filled: list[AuditRecord]) -> None:
    assert await read_all(log, "team-a") == [r for r in filled if r.namespace == "team-a"]
    both = await read_all(log, "team-b", "principal = alice")
    assert both == [r for r in filled if r.namespace == "team-b" and r.principal == "alice"]
    assert await read_all(log, "team-c") == []


async def test_empty_namespace_never_means_all(log: FileAuditLog) -> None:
    with pytest.raises(ValueError, match="never means every namespace"):
        await log.read("", "", 10, "")


@pytest.mark.parametrize(
    "filter_text",
    [
        "user = alice",  # Unknown field.
        "action = fly",  # Not an action.
        "outcome = DENIED",  # Not a status code name.
        'event_time > "yesterday"',
        "principal = ",
    ],
)
async def test_bad_filters_are_invalid_argument(log: FileAuditLog, filter_text: str) -> None:
    with pytest.raises(ServiceError) as caught:
        await log.read(None, filter_text, 10, "")
    assert invalid_fields(caught.value) == ["filter"]


# --- paging ----------------------------------------------------------------------------


async def test_pages_cover_everything_once(log: FileAuditLog, filled: list[AuditRecord]) -> None:
    for size in (1, 3, 39, 40, 41, 1000):
        assert await read_all(log, page_size=size) == filled
    page, token = await log.read(None, "", 40, "")
    assert page == filled
    assert token == ""


async def test_page_size_defaults_and_is_clamped(log: FileAuditLog) -> None:
    await write_all(log, 105)
    page, token = await log.read(None, "", 0, "")
    assert len(page) == 100
    assert token
    with pytest.raises(ServiceError) as caught:
        await log.read(None, "", -1, "")
    assert invalid_fields(caught.value) == ["page_size"]


async def test_new_records_do_not_shift_pages(log: FileAuditLog) -> None:
    written = await write_all(log, 10)
    first, token = await log.read(None, "", 4, "")
    for i in range(10, 15):
        await log.write(record(i))
    second, token = await log.read(None, "", 4, token)
    third, token = await log.read(None, "", 4, token)
    assert token == ""
    assert first + second + third == written[::-1]


@pytest.mark.parametrize("other", [("team-a", ""), (None, "principal = alice")])
async def test_tokens_are_bound_to_their_query(
    log: FileAuditLog, filled: list[AuditRecord], other: tuple[str | None, str]
) -> None:
    _, token = await log.read(None, "", 5, "")
    with pytest.raises(ServiceError) as caught:
        await log.read(other[0], other[1], 5, token)
    assert invalid_fields(caught.value) == ["page_token"]


@pytest.mark.parametrize("token", ["garbage", "e30", "eyJhIjogIi0xIiwgInEiOiAieCJ9"])
async def test_foreign_tokens_are_invalid_argument(log: FileAuditLog, token: str) -> None:
    with pytest.raises(ServiceError) as caught:
        await log.read(None, "", 5, token)
    assert invalid_fields(caught.value) == ["page_token"]


async def test_cursor_must_hold_a_sequence_number(log: FileAuditLog) -> None:
    # Well-formed and bound to this query (the scope format is internal), but no seq.
    token = encode_cursor("not-a-seq", "audit|None|")
    with pytest.raises(ServiceError) as caught:
        await log.read(None, "", 5, token)
    assert invalid_fields(caught.value) == ["page_token"]


# --- concurrency -----------------------------------------------------------------------


async def test_concurrent_tasks_write_intact_lines(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path / "audit.log", max_bytes=16 * 1024, backups=50)
    tasks, per_task = 40, 25

    async def writer(task: int) -> None:
        for i in range(per_task):
            await log.write(record(i, principal=f"task-{task}", request_id=f"{task}/{i}"))

    reads = 0

    async def reader() -> None:
        nonlocal reads
        while not all(t.done() for t in writers):
            await read_all(log, filter_text="principal = task-3", page_size=50)
            reads += 1
            await asyncio.sleep(0)

    writers = [asyncio.create_task(writer(n)) for n in range(tasks)]
    await asyncio.gather(*writers, reader())
    assert reads > 0
    assert len(files(log)) > 5  # Rotated while writing.
    seqs, request_ids = [], set()
    for path in files(log):
        for raw in path.read_bytes().splitlines():
            line = json.loads(raw)  # Every line is whole JSON.
            seqs.append(line["seq"])
            request_ids.add(line["request_id"])
    assert sorted(seqs) == list(range(1, tasks * per_task + 1))
    assert len(request_ids) == tasks * per_task
    mine = await read_all(log, filter_text="principal = task-3", page_size=10)
    assert [r.request_id for r in mine] == [f"3/{i}" for i in reversed(range(per_task))]


def test_threads_with_their_own_loops_share_one_log(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path / "audit.log", max_bytes=8 * 1024, backups=40)

    async def burst(n: int) -> None:
        for i in range(50):
            await log.write(record(i, principal=f"thread-{n}"))

    threads = [threading.Thread(target=asyncio.run, args=(burst(n),)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = [line["seq"] for path in files(log) for line in lines(path)]
    assert sorted(seqs) == list(range(1, 201))  # type: ignore[type-var]


# --- denied attempts -------------------------------------------------------------------


async def test_denied_attempts_are_recorded(log: FileAuditLog) -> None:
    bob = Principal("bob", Role.READER, frozenset({"team-a"}))
    attempts = [("team-a", Action.READ), ("team-b", Action.READ), ("team-a", Action.DELETE)]
    for namespace, action in attempts:
        outcome = grpc.StatusCode.OK
        try:
            authorize(bob, namespace, action)
        except ServiceError as error:
            outcome = error.code
        audit_action = AuditAction.GET if action is Action.READ else AuditAction.DELETE
        await log.write(
            AuditRecord(
                principal=bob.user_id,
                namespace=namespace,
                action=audit_action,
                outcome=outcome.name,
                pattern_ids=("p1",),
            )
        )
    await log.write(
        AuditRecord(
            principal="",
            namespace="team-a",
            action=AuditAction.DENIED,
            outcome=grpc.StatusCode.UNAUTHENTICATED.name,
        )
    )
    denied = await read_all(log, filter_text="outcome = PERMISSION_DENIED")
    assert [(r.namespace, r.action) for r in denied] == [("team-a", "delete"), ("team-b", "get")]
    assert all(r.principal == "bob" for r in denied)
    [anonymous] = await read_all(log, filter_text="action = denied")
    assert anonymous.to_proto().outcome == "UNAUTHENTICATED"
    assert len(await read_all(log, filter_text="outcome = OK")) == 1
