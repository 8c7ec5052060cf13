"""Engine evaluation (issue 15): SQLite FTS5 against tantivy, on one corpus.

Over the search benchmarks' store (BENCH_SEARCH_PATTERNS realistic patterns,
100,000 by default), in this process, no RPC:

- (a) SearchIndex as it is (before issue 15's engine: FTS5, every word
  required, BM25 for every match joined with the filter, then the best 10;
  `top`, and `search`, which also counts). After the engine lands this row
  measures the engine as integrated, beside the bare library in (c).
- (b) SQLite ranked inside FTS5 first, the filter on indexed columns for
  the best-ranked rows only (engine_candidates.sqlite_rank_first).
- (c) tantivy 0.27 (RAM-resident index built from the store file): text
  as SHOULD clauses with the minimum-should-match, filter as tantivy
  clauses (engine_candidates.TantivyEngine); with and without counting.

(b) and (c) answer the same question (the minimum-should-match rule), (a)
the stricter one the issue replaces. Each query's page is fetched and
decoded from the store in every row, as a search returns it. Latency is in
milliseconds and as a multiple of a bare gRPC echo measured in the same run
(an RPC adds about one echo to any of them). A check holds tantivy's filter
translation to the SQL one: requiring every word, both count the same rows.
(b) and the check need the FTS5 tables; without them they are left out.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tantivy

from memory_service.search.filter import Node, compile_filter
from memory_service.search.index import ReadQuery, SearchIndex
from memory_service.search.query import Term, parse_query
from memory_service.search.reading import minimum_should_match
from memory_service.search.schema import PATTERN_SCHEMA
from tests.bench.engine_candidates import (
    TantivyEngine,
    fetch_page,
    has_text_table,
    matched,
    sqlite_count_every_word,
    sqlite_rank_first,
)
from tests.bench.harness import echo_samples, echo_server, report, summary
from tests.bench.search_corpus import NAMESPACE, SearchStore

SEARCHES = int(os.environ.get("BENCH_ENGINE_SEARCHES", "100"))
QUERIES = [
    ("python package publish", "success = true"),
    ("coverage", "form_responses.test_coverage_required >= 80"),
    ("security audit", 'agents.tier = "premium"'),
    ("documentation", "total_cost_usd < 0.2"),
    ("review", "agent_count > 5"),
    ("changelog migration guide", 'template_id = "release_prep" AND success = false'),
]
Planned = list[tuple[list[Term], Node | None]]


def planned() -> Planned:
    return [(parse_query(q), compile_filter(f, PATTERN_SCHEMA)) for q, f in QUERIES]


def timed(search: Callable[[list[Term], Node | None], object], queries: Planned) -> list[float]:
    """Seconds per search, the queries in turn, after one warm-up round each."""
    for terms, condition in queries * 2:
        search(terms, condition)
    samples = []
    for n in range(SEARCHES):
        terms, condition = queries[n % len(queries)]
        started = time.perf_counter()
        search(terms, condition)
        samples.append(time.perf_counter() - started)
    return samples


def read(terms: list[Term], condition: Node | None) -> ReadQuery:
    """A top-10 read with the rule's minimum (the FTS5 engine requires every word anyway)."""
    return ReadQuery(
        NAMESPACE, terms, condition, 10, min_should_match=minimum_should_match(len(terms))
    )


def directory_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def check_filters_agree(db: sqlite3.Connection, engine: TantivyEngine, queries: Planned) -> None:
    """Requiring every word, tantivy and FTS5 with the SQL filter count the same matches."""
    for terms, condition in queries:
        expected = sqlite_count_every_word(db, NAMESPACE, terms, condition)
        query = engine.text_query(terms, len(terms))
        if condition is not None:
            query = tantivy.Query.boolean_query(
                [
                    (tantivy.Occur.Must, query),
                    (tantivy.Occur.Must, engine.filter_query(condition)),
                ]
            )
        assert matched(engine.searcher.search(query, 1, count=True)) == expected, terms


async def test_search_engines(search_store: SearchStore, tmp_path: Path) -> None:
    patterns = search_store.patterns
    with echo_server(tmp_path) as echo_address:
        echo = summary(await echo_samples(echo_address, 2000))
    rows: dict[str, dict[str, float]] = {"bare gRPC echo": echo}
    queries = planned()
    db = sqlite3.connect(search_store.file)
    index = SearchIndex(db)

    def fetched(rowids: list[int]) -> None:
        fetch_page(db, NAMESPACE, rowids)

    def a_top(terms: list[Term], condition: Node | None) -> None:
        index.top(read(terms, condition))

    def a_search(terms: list[Term], condition: Node | None) -> None:
        index.search(read(terms, condition))

    def b_rank_first(terms: list[Term], condition: Node | None) -> None:
        sqlite_rank_first(db, NAMESPACE, terms, condition, 10)

    # The index's files hold exactly what a RAM directory holds; searched
    # through the page cache, so it is as resident as a RAM index.
    with tempfile.TemporaryDirectory(dir=tmp_path) as place:
        gc.collect()
        engine = TantivyEngine(place)
        built = engine.build(db, NAMESPACE)
        engine_bytes = directory_bytes(Path(place))
        fts5 = has_text_table(db)
        if fts5:
            check_filters_agree(db, engine, queries)

        def c_top(terms: list[Term], condition: Node | None) -> None:
            fetched(engine.top(terms, condition, 10)[0])

        def c_counted(terms: list[Term], condition: Node | None) -> None:
            fetched(engine.top(terms, condition, 10, count=True)[0])

        candidates = {
            "(a) SearchIndex as is: top": a_top,
            "(a) SearchIndex as is: search+count": a_search,
            "(b) FTS5 rank-first: top, min-should": b_rank_first,
            "(c) tantivy: top, min-should": c_top,
            "(c) tantivy: top+count, min-should": c_counted,
        }
        if not fts5:
            del candidates["(b) FTS5 rank-first: top, min-should"]
        for label, search in candidates.items():
            rows[label] = summary(timed(search, queries))
    db.close()

    verdicts = {
        label: f"p50 {row['p50_ms'] / echo['p50_ms']:.1f}x echo, "
        f"p95 {row['p95_ms'] / echo['p95_ms']:.1f}x echo"
        for label, row in rows.items()
        if label != "bare gRPC echo"
    }
    sqlite_seconds = search_store.build_seconds
    tantivy_seconds = built.read_seconds + built.index_seconds
    verdicts["build, SQLite (SearchIndex.put, one transaction)"] = (
        f"{patterns / sqlite_seconds:.0f} patterns/s ({sqlite_seconds:.1f} s)"
    )
    verdicts["build, tantivy from the store file's docs"] = (
        f"{patterns / tantivy_seconds:.0f} patterns/s ({tantivy_seconds:.1f} s: "
        f"{built.read_seconds:.1f} s reading and decoding, {built.index_seconds:.1f} s indexing)"
    )
    verdicts["bytes per pattern, SQLite store file (docs, facts, 2 FTS5 tables)"] = (
        f"{search_store.file.stat().st_size / patterns:.0f} B"
    )
    verdicts["bytes per pattern, tantivy index (RAM directory = these files)"] = (
        f"{engine_bytes / patterns:.0f} B"
    )
    report(f"bench_search_engines_{patterns}", rows, verdicts)
