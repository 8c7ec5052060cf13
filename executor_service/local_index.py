"""The local fallback index: the memory service's own search over run files.

Built from the run directories at start and updated on every run, it ranks
with the same query language and text index as the memory service, so a
query means the same wherever it is answered.
"""

from __future__ import annotations

import logging
import sqlite3

from attune.memory.v1 import memory_pb2
from executor_service.patterns import run_to_pattern
from executor_service.run_store import RunStore
from executor_service.templates.catalog import Catalog
from memory_service.search.documents import searchable_text
from memory_service.search.query import Term
from memory_service.search.text_index import TextIndex

log = logging.getLogger("attune.executor.local_index")


class LocalIndex:
    """An in-memory full-text index over the executor's runs."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        # Built on a worker thread at start, then used on the event loop only.
        self._index = TextIndex(sqlite3.connect(":memory:", check_same_thread=False))
        self._patterns: dict[str, memory_pb2.Pattern] = {}

    def add(self, pattern: memory_pb2.Pattern) -> None:
        """Indexes (or re-indexes) one run's pattern."""
        self._patterns[pattern.id] = pattern
        self._index.upsert(self._namespace, pattern.id, searchable_text(pattern))

    def rebuild(self, runs: RunStore, catalog: Catalog) -> int:
        """Indexes every run on disk; returns how many."""
        count = 0
        for run_id in runs.run_ids():
            run = runs.load(run_id)
            if run is None:
                continue
            self.add(run_to_pattern(run, catalog.get(run.template_id)))
            count += 1
        log.info("local index built", extra={"runs": count})
        return count

    def search(self, terms: list[Term], limit: int) -> list[tuple[memory_pb2.Pattern, float]]:
        """The best runs for the terms, best first."""
        return [
            (self._patterns[doc_id], score)
            for doc_id, score in self._index.search(self._namespace, terms, limit)
        ]
