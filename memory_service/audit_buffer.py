"""Audit records off the RPC path: queued, then appended in batches.

A call adds its record to a queue and returns; a background task appends
what has queued up, in order, with one trip to a worker thread. Reading the
log first waits for the queue to empty, so a reader sees every earlier call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from memory_service.security.audit import AuditRecord

log = logging.getLogger("attune.memory.audit")


class AuditSink(Protocol):
    """Where records go: a rotated file (embedded) or a Redis stream (redis)."""

    async def write_many(self, records: list[AuditRecord]) -> None:
        """Appends the records, in order."""
        ...

    async def read(
        self,
        namespace: str | None,
        filter_text: str,
        page_size: int,
        page_token: str,
        *,
        reader: str | None = None,
    ) -> tuple[list[AuditRecord], str]:
        """A page of records, newest first, as `reader` may see them, and the next page's token."""
        ...

    def close(self) -> None:
        """Stops writing."""
        ...


class BufferedAudit:
    """An audit sink written in the background."""

    def __init__(self, audit_log: AuditSink) -> None:
        self._log = audit_log
        self._pending: list[AuditRecord] = []
        self._drainer: asyncio.Task[None] | None = None

    def submit(self, record: AuditRecord) -> None:
        """Queues a record; never blocks the call being audited."""
        self._pending.append(record)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._log.write_many(batch)
            except (OSError, RuntimeError):
                # The calls already happened; a lost audit line is logged loudly.
                log.exception("audit records not written", extra={"records": len(batch)})

    async def flush(self) -> None:
        """Returns once every queued record is appended."""
        while self._drainer is not None and not self._drainer.done():
            await self._drainer

    async def read(
        self,
        namespace: str | None,
        filter_text: str,
        page_size: int,
        page_token: str,
        *,
        reader: str | None = None,
    ) -> tuple[list[AuditRecord], str]:
        """A page of records, newest first, after every earlier call's record,
        as `reader` may see them (AuditRecord.seen_by)."""
        await self.flush()
        return await self._log.read(namespace, filter_text, page_size, page_token, reader=reader)

    async def close(self) -> None:
        """Appends what is queued, then closes the file."""
        await self.flush()
        self._log.close()
