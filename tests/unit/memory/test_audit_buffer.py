"""BufferedAudit: an acknowledged write's record is appended (and synced) before commit returns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from memory_service.access.audit import AuditAction, AuditRecord, FileAuditLog
from memory_service.access.audit_buffer import BufferedAudit


def stored(index: int) -> AuditRecord:
    return AuditRecord(
        principal="alice", namespace="team-a", action=AuditAction.STORE, pattern_ids=(f"p{index}",)
    )


class CountingLog(FileAuditLog):
    """The real file log, counting its batches and whether each was synced."""

    batches: list[tuple[int, bool]]

    async def write_many(self, records: Sequence[AuditRecord], *, sync: bool = False) -> None:
        self.batches.append((len(records), sync))
        await super().write_many(records, sync=sync)


def ids_in(path: Path) -> list[str]:
    return [json.loads(line)["pattern_ids"][0] for line in path.read_text().splitlines()]


async def test_commit_returns_once_the_record_is_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    audit = BufferedAudit(FileAuditLog(path, 1 << 20, 1))
    for index in range(5):
        await audit.commit([stored(index)])
        # Read straight from the file: what a SIGKILL right now would leave.
        assert ids_in(path)[-1] == f"p{index}"


async def test_concurrent_commits_share_synced_batches(tmp_path: Path) -> None:
    log = CountingLog(tmp_path / "audit.log", 1 << 20, 1)
    log.batches = []
    audit = BufferedAudit(log)
    await asyncio.gather(*(audit.commit([stored(i)]) for i in range(200)))
    assert sorted(ids_in(tmp_path / "audit.log")) == sorted(f"p{i}" for i in range(200))
    assert len(log.batches) < 200 / 4  # Group commit: many writers per append and fsync.
    assert all(synced for _, synced in log.batches)
    audit.submit(stored(999))  # A read's record: queued, not synced.
    await audit.flush()
    assert log.batches[-1] == (1, False)


async def test_a_failed_append_fails_the_commit(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path / "audit.log", 1 << 20, 1)
    log.close()  # Later writes raise RuntimeError.
    with pytest.raises(RuntimeError):
        await BufferedAudit(log).commit([stored(1)])
