"""Audit records appended in batches, off the event loop.

A call adds its record to a queue; a background task appends what has queued
up, in order, with one trip to a worker thread (or one pipelined round trip
to Redis). Calls that arrive while a batch is being written share the next
one: a group commit.

Two ways in:

- `commit` (acknowledged writes): returns once the batch holding the records
  is appended, and for the file log fsynced, so a write is never acknowledged
  without its audit record; it raises if the sink failed.
- `submit` (reads, and calls that failed): returns at once. The drain starts
  at once too, so a crash loses at most the records queued since the last
  batch began, which is one batch's write time (milliseconds) of calls.

Reading the log first waits for the queue to empty, so a reader sees every
earlier call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from memory_service.access.audit import AuditRecord

log = logging.getLogger("attune.memory.audit")


class AuditSink(Protocol):
    """Where records go: a rotated file (embedded) or a Redis stream (redis)."""

    async def write_many(self, records: Sequence[AuditRecord], *, sync: bool = False) -> None:
        """Appends the records, in order; `sync`: durably (fsync), where the sink can."""
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


def _consume(done: asyncio.Future[None]) -> None:
    # A waiter that went away (cancelled) still has its outcome retrieved.
    if not done.cancelled():
        done.exception()


class BufferedAudit:
    """An audit sink written in the background, in group-committed batches."""

    def __init__(self, audit_log: AuditSink) -> None:
        self._log = audit_log
        self._pending: list[AuditRecord] = []
        # Futures of `commit` callers whose records are in _pending.
        self._waiters: list[asyncio.Future[None]] = []
        self._drainer: asyncio.Task[None] | None = None

    def submit(self, record: AuditRecord) -> None:
        """Queues a record; never blocks the call being audited."""
        self._pending.append(record)
        self._start()

    async def commit(self, records: Sequence[AuditRecord]) -> None:
        """Appends the records durably, sharing a batch with concurrent callers.

        OSError or RuntimeError if the sink did not take them. Cancelling the
        caller does not take the records back.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.extend(records)
        self._waiters.append(done)
        self._start()
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            done.add_done_callback(_consume)
            raise

    def _start(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            waiters, self._waiters = self._waiters, []
            try:
                await self._log.write_many(batch, sync=bool(waiters))
            except (OSError, RuntimeError) as error:
                # The calls already happened; a lost audit line is logged loudly.
                log.exception("audit records not written", extra={"records": len(batch)})
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
            except BaseException:
                # Cancelled at shutdown: no commit caller may wait forever.
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(RuntimeError("the audit log is closing"))
                raise
            else:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)

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
