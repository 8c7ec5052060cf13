"""The local fallback index: the memory service's own search over run files.

Built from the run directories at start and updated on every run, it ranks
and filters with the same SearchIndex as the memory service, so a query and
a filter mean the same wherever they are answered.
"""

from __future__ import annotations

import logging
import sqlite3

from attune.memory.v1 import memory_pb2
from executor_service.patterns import run_to_pattern
from executor_service.run_store import RunStore
from executor_service.templates.catalog import Catalog
from memory_service.patterns import fingerprint
from memory_service.search.filter import Node
from memory_service.search.index import Hit, SearchIndex
from memory_service.search.query import Term

log = logging.getLogger("attune.executor.local_index")


class LocalIndex:
    """An in-memory search index over the executor's runs."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        # Built on a worker thread at start, then used on the event loop only.
        self._index = SearchIndex(sqlite3.connect(":memory:", check_same_thread=False))

    def add(self, pattern: memory_pb2.Pattern) -> None:
        """Indexes (or re-indexes) one run's pattern."""
        self._index.put(self._namespace, pattern, fingerprint(pattern))

    def rebuild(self, runs: RunStore, catalog: Catalog) -> int:
        """Indexes every run on disk; returns how many."""
        count = 0
        for run_id in runs.run_ids():
            run = runs.readable(run_id)
            if run is None:
                continue
            self.add(run_to_pattern(run, catalog.get(run.template_id)))
            count += 1
        log.info("local index built", extra={"runs": count})
        return count

    def vocabulary(self) -> tuple[list[str], list[str]]:
        """Template ids and numeric question ids of the runs, for query understanding."""
        return self._index.query_vocabulary(self._namespace)

    def search(self, terms: list[Term], condition: Node | None, limit: int) -> list[Hit]:
        """The best runs for the terms and filter, best first."""
        return self._index.search(self._namespace, terms, condition, limit)[0]
