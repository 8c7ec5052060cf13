"""The history of finished runs, as facts, loaded once and kept current.

The run files are the record. The first reader loads every run's facts on a
worker thread; from then on each finishing run is recorded as it finishes,
so no read scans the disk again. Facts are keyed by run id, so a run both
recorded and found on disk while loading is counted once.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

from attune.executor.v1 import executor_pb2
from executor_service.learning.facts import RunFact, run_fact
from executor_service.learning.tally import RoleTiers, add_runs
from executor_service.runs.store import RunStore


class RunHistory:
    """Facts of every finished run of a run store."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self._facts: dict[str, RunFact] = {}
        # Recommendations read these on every learned run: kept up to date
        # incrementally, by (template id, runner), instead of recounted.
        self._evidence: dict[tuple[str, str], RoleTiers] = {}
        # Loading runs on a worker thread while the event loop records.
        self._lock = threading.Lock()
        self._loaded = False
        self._loading = asyncio.Lock()

    async def ready(self) -> None:
        """Loads the runs on disk, the first time only."""
        if self._loaded:
            return
        async with self._loading:
            if not self._loaded:
                await asyncio.to_thread(self._load_all)
                self._loaded = True

    def _load_all(self) -> None:
        for run_id in self._store.run_ids():
            with self._lock:
                known = run_id in self._facts
            if not known and (run := self._store.readable(run_id)) is not None:
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
