"""The text engine alone (no gRPC) over 100,000 patterns of the embedded store's file.

- build: the first read of a namespace builds its tantivy index from the
  SQLite docs; seconds, patterns per second, and resident memory it added;
- SearchIndex.search (top 10 and the total, as SearchPatterns asks) for
  free text plus a filter, planned as SearchPatterns plans them: p50/p95;
- a write then a read: the re-sync (one document, one commit) a read pays
  after writes;
- how long the SQLite rows took to write (build_index), for comparison with
  the same writes before the text engine (which also wrote FTS5 tables).

BENCH_ENGINE_PATTERNS shrinks the corpus for a quick run.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from memory_service.patterns import fingerprint
from memory_service.search.index import ReadQuery, SearchIndex, every_should
from memory_service.search.planning import plan_search
from memory_service.store.embedded import stamped
from tests.bench.harness import percentile, report, summary
from tests.bench.search_corpus import NAMESPACE, build_index, variants
from tests.bench.search_figures import EXPLICIT as QUERIES

PATTERNS = int(os.environ.get("BENCH_ENGINE_PATTERNS", "100000"))
SEARCHES = int(os.environ.get("BENCH_ENGINE_SEARCHES", "200"))


def resident_bytes() -> int:
    """The process's resident set size now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_text_engine_figures(tmp_path: Path) -> None:
    patterns = variants(PATTERNS)
    stored = build_index(tmp_path, patterns)
    db = sqlite3.connect(tmp_path / "patterns.sqlite3", isolation_level=None)
    index = SearchIndex(db)
    before = resident_bytes()
    started = time.perf_counter()
    index.warm(NAMESPACE)
    built = time.perf_counter() - started
    grown = resident_bytes() - before
    vocabulary = index.query_vocabulary(NAMESPACE)
    plans = [
        plan_search(query, condition, True, vocabulary, datetime.now(UTC))
        for query, condition in QUERIES
    ]
    rows: dict[str, dict[str, float]] = {}
    every: list[float] = []
    for (query, condition), plan in zip(QUERIES, plans, strict=True):
        read = ReadQuery(
            NAMESPACE, plan.terms, plan.condition, 10, min_should_match=every_should(plan.terms)
        )
        index.search(read)  # Warm-up.
        samples = []
        for _ in range(SEARCHES // len(QUERIES)):
            started = time.perf_counter()
            index.search(read)
            samples.append(time.perf_counter() - started)
        every += samples
        rows[f"{query!r} + {condition!r}"[:40]] = summary(samples)
    rows["text + filter, top 10 and total (all)"] = summary(every)
    writes = []
    for n in range(50):
        pattern = patterns[n]
        pattern.content += f" rewritten {n}"
        index.put(NAMESPACE, stamped(NAMESPACE, pattern), fingerprint(pattern))
        started = time.perf_counter()
        index.search(
            ReadQuery(NAMESPACE, plans[0].terms, plans[0].condition, 10, min_should_match=1)
        )
        writes.append(time.perf_counter() - started)
    rows["a write, then text + filter"] = summary(writes)
    db.close()
    verdicts = {
        "SQLite rows (build_index)": f"{stored:.1f} s ({PATTERNS / stored:,.0f} patterns/s)",
        "build": f"{built:.1f} s for {PATTERNS} patterns ({PATTERNS / built:,.0f} patterns/s)",
        "build RAM": f"{grown / 1e6:.0f} MB resident ({grown / PATTERNS:,.0f} bytes/pattern)",
        "engine p50/p95 ms": f"{percentile(every, 0.5) * 1000:.2f} / "
        f"{percentile(every, 0.95) * 1000:.2f}",
    }
    report("text_engine", rows, verdicts)
