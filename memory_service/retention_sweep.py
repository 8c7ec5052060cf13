"""The background sweep that purges expired patterns for good.

Reads never return an expired pattern, swept or not; the sweep only frees
the space and removes the data itself, as the retention policy promises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from memory_service import metrics
from memory_service.store.base import PatternStore, StoreUnavailableError

log = logging.getLogger("attune.memory.retention")


class RetentionSweep:
    """Calls `purge_expired` on the store every interval until stopped."""

    def __init__(self, store: PatternStore, interval_seconds: float) -> None:
        self._store = store
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts sweeping in the background (first sweep at once)."""
        self._task = asyncio.create_task(self._run(), name="retention-sweep")

    async def sweep_once(self) -> int:
        """Purges what has expired now; how many patterns went."""
        purged = await self._store.purge_expired(metrics.purged)
        if purged:
            log.info("expired patterns purged", extra={"purged": purged})
        return purged

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except StoreUnavailableError as error:
                log.warning("retention sweep skipped: %s", error)
            except Exception:
                # Whatever went wrong this time, the next sweep tries again:
                # a sweep that died for good would keep expired data forever.
                log.exception("retention sweep failed; retrying at the next interval")
            await asyncio.sleep(self._interval)  # A period, not a synchronisation.

    async def stop(self) -> None:
        """Stops sweeping; a sweep in progress is cancelled (it is transactional)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
