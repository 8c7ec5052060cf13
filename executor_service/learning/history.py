"""The history of finished runs, as facts, loaded once and kept current.

The run files are the record. The first reader loads every run's facts on a
worker thread; from then on each finishing run of this process is recorded
as it finishes. Runs finished by other replicas sharing the runs directory
appear there as new directories: each reader first catches up with them,
listing the directory (on a worker thread) at most once per
CATCH_UP_SECONDS and reading only the runs not known yet. Facts are keyed
by run id, so a run both recorded and found on disk is counted once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from attune.executor.v1 import executor_pb2
from executor_service import metrics
from executor_service.learning.facts import RunFact, run_fact
from executor_service.learning.tally import RoleTiers, add_runs
from executor_service.runs.store import RunStore

# How stale a reader's view of other replicas' runs may be: listing a
# directory of thousands of runs takes milliseconds, too much for every read.
CATCH_UP_SECONDS = 1.0


class RunHistory:
    """Facts of every finished run of a run store."""

    def __init__(
        self,
        store: RunStore,
        clock: Callable[[], float] = time.monotonic,
        catch_up_seconds: float = CATCH_UP_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._catch_up_seconds = catch_up_seconds
        self._facts: dict[str, RunFact] = {}
        # Recommendations read these on every learned run: kept up to date
        # incrementally, by (template id, runner), instead of recounted.
        self._evidence: dict[tuple[str, str], RoleTiers] = {}
        # Loading runs on a worker thread while the event loop records.
        self._lock = threading.Lock()
        # Unreadable runs (logged once), not read again at every catch-up.
        self._skipped: set[str] = set()
        self._listed_at: float | None = None  # None: never loaded.
        self._loading = asyncio.Lock()

    async def ready(self) -> None:
        """Loads the runs on disk the first time; later, the runs new on disk
        (other replicas'), unless the directory was listed under
        CATCH_UP_SECONDS ago."""
        if self._fresh():
            return
        async with self._loading:
            if not self._fresh():
                # Stamped before listing: a run landing meanwhile is found next time.
                listed_at = self._clock()
                await asyncio.to_thread(self._load_new)
                self._listed_at = listed_at
                metrics.HISTORY_VIEW.refreshed()

    def _fresh(self) -> bool:
        listed_at = self._listed_at
        return listed_at is not None and self._clock() - listed_at < self._catch_up_seconds

    def _load_new(self) -> None:
        on_disk = self._store.run_ids()
        with self._lock:
            new = [run_id for run_id in on_disk if run_id not in self._facts]
        for run_id in new:
            if run_id in self._skipped:
                continue
            if (run := self._store.readable(run_id)) is None:
                self._skipped.add(run_id)
            else:
                self._add(run_fact(run))

    def record(self, run: executor_pb2.Run) -> None:
        """Adds a run that has just finished (and is on disk)."""
        self._add(run_fact(run))

    def _add(self, fact: RunFact) -> None:
        with self._lock:
            if fact.run_id in self._facts:
                return
            self._facts[fact.run_id] = fact
            add_runs(self._evidence.setdefault((fact.template_id, fact.runner), {}), [fact])

    def runs(self) -> list[RunFact]:
        """Every run's facts, in no particular order."""
        with self._lock:
            return list(self._facts.values())

    def evidence(self, template_id: str, runner: str) -> RoleTiers:
        """A copy of the attempt tallies of the template's runs by that runner."""
        with self._lock:
            current = self._evidence.get((template_id, runner), {})
            return {key: replace(tally) for key, tally in current.items()}
