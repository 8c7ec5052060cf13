"""The benchmarks' realistic corpus and the store file built from it.

`variants` varies the seeded corpus (tests/corpus) in id, time and cost;
the store benchmark stores them through the service, the search benchmarks
write them into an embedded store's file with `build_index`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from attune.memory.v1 import memory_pb2
from memory_service.patterns import fingerprint
from memory_service.search.index import SearchIndex
from memory_service.store.embedded import stamped
from tests.corpus.generate import corpus

NAMESPACE = "bench"
SEARCH_PATTERNS = int(os.environ.get("BENCH_SEARCH_PATTERNS", "100000"))
# The embedded store's file under a memory process's root (see dev/stack.py).
STORE_FILE = Path("memory") / "patterns.sqlite3"

# Made at import: the corpus runs its own event loop.
BASE = [p for p in corpus(300) if p.type == memory_pb2.PATTERN_TYPE_EXECUTION]


def variants(count: int, start: int = 0) -> list[memory_pb2.Pattern]:
    """`count` realistic patterns: the seeded corpus, varied in id, time and cost."""
    return [variant(n) for n in range(start, start + count)]


def variant(n: int) -> memory_pb2.Pattern:
    """The n-th pattern of `variants`."""
    pattern = memory_pb2.Pattern()
    pattern.CopyFrom(BASE[n % len(BASE)])
    pattern.id = pattern.run_id = f"bench-{n:07d}"
    pattern.create_time.FromSeconds(pattern.create_time.seconds - n * 37)
    pattern.total_cost_usd = round(pattern.total_cost_usd * (0.5 + (n % 100) / 100), 6)
    return pattern


def build_index(data_dir: Path, patterns: Iterable[memory_pb2.Pattern]) -> float:
    """Writes the embedded store's file directly, in one transaction; returns seconds."""
    started = time.perf_counter()
    data_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(data_dir / "patterns.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    index = SearchIndex(db)
    db.execute("BEGIN")
    for pattern in patterns:
        index.put(NAMESPACE, stamped(NAMESPACE, pattern), fingerprint(pattern))
    db.execute("COMMIT")
    db.close()
    return time.perf_counter() - started


@dataclass(frozen=True)
class SearchStore:
    """A memory process's root holding an embedded store of `patterns` patterns."""

    root: Path
    patterns: int
    build_seconds: float  # Writing it through SearchIndex.put, in one transaction.
    build_note: str = ""  # How it was built, when not as build_index builds.

    @property
    def file(self) -> Path:
        return self.root / STORE_FILE
