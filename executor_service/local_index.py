"""The local fallback index: the memory service's own search over run files.

The executor answers searches from this index when the memory service cannot
be reached. It indexes each run exactly as the memory service stores it, so
a query and a filter give the same runs in the same order wherever they are
answered:

- the pattern is PII-scrubbed (`scrub_pattern`) before it is indexed, so a
  word the memory service scrubbed matches on neither side;
- it is classified (`classify`, on the pattern as sent, as the memory
  service does), so `classification` filters agree;
- a run whose pattern holds a secret is left out, as the memory service
  refuses it (only runs written before answers were scanned up front can
  hold one, so only `open` looks);
- SENSITIVE runs live in their own index, as the memory service keeps them
  apart from the rest: full-text statistics (BM25), fuzzy corrections and
  the words query understanding knows are each index's own, and results
  merge the way the memory service merges them. A search may leave them out
  (`include_sensitive=False`) for a caller the memory service would not
  show them to.

The index is a cache in `<data_dir>/local-index/` (two SQLite files, one per
half); the run directories stay the record. `open` reuses the cache and
brings it up to date with the run directories: runs added while the
executor was down are indexed, runs deleted by hand are dropped. It is
rebuilt from the run files only when missing, incomplete (a rebuild was
interrupted), written by another INDEX_VERSION or for another namespace, or
unreadable. Writes are durable enough for a cache (WAL, synchronous=NORMAL):
a crash loses at most the newest runs, which the next start picks up again
from their files.

Not mirrored: the memory service's retention expiry (its settings, not the
executor's, decide when a pattern expires there) and owners other than the
executor itself.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.patterns import run_to_pattern
from executor_service.run_store import RunStore
from executor_service.templates.catalog import Catalog
from memory_service.patterns import fingerprint
from memory_service.search.filter import Node
from memory_service.search.index import Hit, SearchIndex, rank_key
from memory_service.search.query import Term
from memory_service.security.pii import ScrubBudgetExceededError
from memory_service.security.secrets import find_secrets
from memory_service.servicekit.private_files import private_file
from memory_service.write_pipeline import classified_and_scrubbed

log = logging.getLogger("attune.executor.local_index")

INDEX_DIR = "local-index"
# Bump whenever what is indexed for a run changes (run_to_pattern, the
# scrubbing or classification applied here, the index layout): a cache
# written by another version is rebuilt instead of answering differently.
INDEX_VERSION = 2  # 2: runs whose pattern holds a secret are left out
_HALVES = ("open.sqlite3", "sensitive.sqlite3")
_MANIFEST = "CREATE TABLE IF NOT EXISTS manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# Runs indexed per transaction while rebuilding or catching up: bounds the
# WAL while keeping commits (and their page writes) few.
_BATCH = 500


def as_memory_stores(pattern: memory_pb2.Pattern) -> memory_pb2.Pattern | None:
    """The pattern as the memory service's write pipeline stores it, as far
    as search can tell: classified on the pattern as sent, then PII-scrubbed.

    Owner and expiry are left out: no filter can name them, and the memory
    service's retention settings are not the executor's. None when it holds
    more text than scrubbing may check: the memory service refuses it too.
    """
    try:
        stored, _, _ = classified_and_scrubbed(pattern)
    except ScrubBudgetExceededError:
        log.warning("run not indexed: too much text to scrub", extra={"run_id": pattern.id})
        return None
    return stored


def _read_run(root: Path, run_id: str) -> executor_pb2.Run | None:
    """The run in its result.json, or None (logged) when it cannot be read.

    Not RunStore.readable: the run store keeps every run it parses, and a
    rebuild reads every run once (about 10 MB more per 1,000 runs, kept).
    """
    try:
        text = (root / run_id / "result.json").read_text(encoding="utf-8")
        return json_format.Parse(text, executor_pb2.Run())
    except (json_format.ParseError, OSError, UnicodeDecodeError) as error:
        log.error("run not indexed", extra={"run_id": run_id, "reason": str(error)})
        return None


def _is_sensitive(pattern: memory_pb2.Pattern) -> bool:
    return pattern.classification == common_pb2.CLASSIFICATION_SENSITIVE


@dataclass(frozen=True)
class Opened:
    """What `LocalIndex.open` did, for the log and for tests."""

    action: str  # "up_to_date", "caught_up" or "rebuilt"
    reason: str  # Why it rebuilt ("" otherwise).
    runs: int  # Runs indexed after opening.
    added: int  # Runs indexed from their files during the open.
    removed: int  # Runs dropped because their directories are gone.
    seconds: float


class _UnusableError(Exception):
    """The cache cannot be reused; the message says why."""


class LocalIndex:
    """The executor's search index over its runs, persisted as a cache.

    Opened on a worker thread at start, then used on the event loop only:
    one caller at a time, as SearchIndex requires.
    """

    def __init__(self, folder: Path, namespace: str) -> None:
        self._folder = folder
        self._namespace = namespace
        self._connections: list[sqlite3.Connection] = []
        self._open_index: SearchIndex | None = None
        self._sensitive_index: SearchIndex | None = None
        self._has_sensitive = False

    # --- opening -------------------------------------------------------------------

    def open(self, runs: RunStore, catalog: Catalog) -> Opened:
        """Reuses the cache, brought up to date with the run directories, or
        rebuilds it from them; says which and how long it took."""
        started = time.perf_counter()
        on_disk = set(runs.run_ids())
        reason = ""
        try:
            indexed = self._reuse()
            added, removed = self._catch_up(on_disk, indexed, runs, catalog)
        except (_UnusableError, sqlite3.DatabaseError) as error:
            # A DatabaseError while catching up is a corrupt page found late.
            reason = str(error) if isinstance(error, _UnusableError) else f"unreadable ({error})"
            self.close()
            shutil.rmtree(self._folder, ignore_errors=True)
            self._connect(fresh=True)
            indexed = set()
            added, removed = self._catch_up(on_disk, indexed, runs, catalog)
            # Written last: a rebuild cut short leaves no manifest, so the
            # next start rebuilds again instead of trusting half an index.
            for db in self._connections:
                with _transaction(db):
                    db.executemany(
                        "INSERT OR REPLACE INTO manifest (key, value) VALUES (?, ?)",
                        [("version", str(INDEX_VERSION)), ("namespace", self._namespace)],
                    )
        self._warm()
        action = "rebuilt" if reason else ("caught_up" if added or removed else "up_to_date")
        opened = Opened(
            action=action,
            reason=reason,
            runs=len(indexed) + added - removed,
            added=added,
            removed=removed,
            seconds=time.perf_counter() - started,
        )
        log.info(
            f"local index {action.replace('_', ' ')}",
            extra={
                "path": str(self._folder),
                "reason": reason,
                "runs": opened.runs,
                "added": added,
                "removed": removed,
                "seconds": round(opened.seconds, 3),
            },
        )
        return opened

    def _catch_up(
        self, on_disk: set[str], indexed: set[str], runs: RunStore, catalog: Catalog
    ) -> tuple[int, int]:
        """Indexes the runs not indexed yet and drops those gone from disk;
        (runs added, runs removed)."""
        missing = sorted(on_disk - indexed, reverse=True)
        gone = sorted(indexed - on_disk)
        with _transaction(self._open_db), _transaction(self._sensitive_db):
            for run_id in gone:
                self._remove(run_id)
        added = 0
        for start in range(0, len(missing), _BATCH):
            with _transaction(self._open_db), _transaction(self._sensitive_db):
                for run_id in missing[start : start + _BATCH]:
                    run = _read_run(runs.root, run_id)  # An unreadable run is logged and skipped.
                    if run is None:
                        continue
                    pattern = run_to_pattern(run, catalog.get(run.template_id))
                    if find_secrets(pattern):
                        # Refused by the memory service, so not searchable here
                        # either; read again at each start (only runs from before
                        # answers were scanned up front can hold one).
                        continue
                    stored = as_memory_stores(pattern)
                    if stored is not None:
                        self._put(stored)
                        added += 1
        return added, len(gone)

    def _reuse(self) -> set[str]:
        """The ids the existing cache holds; raises _UnusableError if it cannot be reused."""
        if not all((self._folder / name).is_file() for name in _HALVES):
            raise _UnusableError("missing")
        try:
            self._connect(fresh=False)
            ids: set[str] = set()
            for db in self._connections:
                manifest = dict(db.execute("SELECT key, value FROM manifest").fetchall())
                if not manifest:
                    raise _UnusableError("incomplete: an earlier rebuild was interrupted")
                if manifest.get("version") != str(INDEX_VERSION):
                    raise _UnusableError(
                        f"written by index version {manifest.get('version')}, not {INDEX_VERSION}"
                    )
                if manifest.get("namespace") != self._namespace:
                    raise _UnusableError(f"built for namespace {manifest.get('namespace')!r}")
                found = self._ids(db)
                if ids & found:
                    raise _UnusableError("a run is in both halves")
                ids |= found
            self._has_sensitive = self._count(self._sensitive_db) > 0
        except sqlite3.DatabaseError as error:
            raise _UnusableError(f"unreadable ({error})") from None
        return ids

    def _connect(self, fresh: bool) -> None:
        for name in _HALVES:
            # Owner-only before SQLite opens it: its -wal and -shm take its mode.
            path = private_file(self._folder / name)
            # Autocommit: transactions are explicit, so each run's rows commit together.
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._connections.append(db)
            db.execute("PRAGMA journal_mode=WAL")
            # A cache: losing the newest commits to a power cut is fine (the
            # next start re-indexes them); corruption is not, and WAL with
            # NORMAL never corrupts.
            db.execute("PRAGMA synchronous=NORMAL")
            if not fresh:
                # Reading fails fast on a file that is not a database.
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            db.execute(_MANIFEST)
        self._open_index = SearchIndex(self._open_db)
        self._sensitive_index = SearchIndex(self._sensitive_db)

    def _warm(self) -> None:
        """Loads what the first search would otherwise load (the fuzzy
        vocabularies and the query words), here on the start thread."""
        self._index(self._open_db).expand(self._namespace, [])
        self._index(self._open_db).query_vocabulary(self._namespace)
        if self._has_sensitive:
            self._index(self._sensitive_db).expand(self._namespace, [])
            self._index(self._sensitive_db).query_vocabulary(self._namespace)

    # --- writes --------------------------------------------------------------------

    def add(self, pattern: memory_pb2.Pattern) -> None:
        """Indexes (or re-indexes) one run's pattern, as sent to the memory service.

        Never raises for the cache's sake: the run is already on disk, and a
        run missing here is indexed from its files at the next start.
        """
        # No secret check here: a run's answers were scanned before it started.
        stored = as_memory_stores(pattern)
        if stored is None:
            return
        try:
            with _transaction(self._open_db), _transaction(self._sensitive_db):
                self._put(stored)
        except sqlite3.Error as error:
            log.error(
                "local index not updated; the next start indexes the run from its files",
                extra={"run_id": pattern.id, "reason": str(error)},
            )

    def _put(self, stored: memory_pb2.Pattern) -> None:
        """Puts a stored pattern in its half, and out of the other one."""
        sensitive = _is_sensitive(stored)
        target = self._sensitive_db if sensitive else self._open_db
        other = self._open_db if sensitive else self._sensitive_db
        self._index(other).delete(self._namespace, stored.id)
        self._index(target).put(self._namespace, stored, fingerprint(stored))
        self._has_sensitive = self._has_sensitive or sensitive

    def _remove(self, run_id: str) -> None:
        for db in self._connections:
            self._index(db).delete(self._namespace, run_id)

    # --- reads ---------------------------------------------------------------------

    def vocabulary(self, *, include_sensitive: bool = True) -> tuple[list[str], list[str]]:
        """Template ids and numeric question ids of the runs, for query understanding.

        From the runs the search may show, as the memory service answers its
        owner: the SENSITIVE runs count only with `include_sensitive`.
        """
        templates, numeric = self._index(self._open_db).query_vocabulary(self._namespace)
        if not include_sensitive or not self._has_sensitive:
            return templates, numeric
        own = self._index(self._sensitive_db).query_vocabulary(self._namespace)
        return sorted({*templates, *own[0]}), sorted({*numeric, *own[1]})

    def search(
        self,
        terms: list[Term],
        condition: Node | None,
        limit: int,
        *,
        include_sensitive: bool = True,
    ) -> list[Hit]:
        """The best runs for the terms and filter, best first.

        The filter selects inside the index, before the limit, so no match
        is lost to it. SENSITIVE runs are merged in as the memory service
        merges its owner's SENSITIVE patterns (both halves give their best
        `limit`; ordered by rank, then newest, then id).
        """
        hits = self._index(self._open_db).top(self._namespace, terms, condition, limit)
        if not include_sensitive or not self._has_sensitive:
            return hits
        own = self._index(self._sensitive_db).top(self._namespace, terms, condition, limit)

        def order(hit: Hit) -> tuple[float, int, str]:
            rank, created = rank_key(hit, None, bool(terms))
            return -rank, -created, hit.pattern.id

        return sorted(hits + own, key=order)[:limit]

    def run_ids(self) -> set[str]:
        """Every run id indexed."""
        return {run_id for db in self._connections for run_id in self._ids(db)}

    def close(self) -> None:
        """Closes the files (idempotent)."""
        for db in self._connections:
            db.close()
        self._connections = []
        self._open_index = self._sensitive_index = None
        self._has_sensitive = False

    # --- plumbing ------------------------------------------------------------------

    @property
    def _open_db(self) -> sqlite3.Connection:
        return self._connections[0]

    @property
    def _sensitive_db(self) -> sqlite3.Connection:
        return self._connections[1]

    def _index(self, db: sqlite3.Connection) -> SearchIndex:
        index = self._open_index if db is self._open_db else self._sensitive_index
        assert index is not None, "the local index is closed"
        return index

    def _ids(self, db: sqlite3.Connection) -> set[str]:
        return {
            str(doc_id)
            for (doc_id,) in db.execute(
                "SELECT doc_id FROM docs WHERE namespace = ?", (self._namespace,)
            )
        }

    def _count(self, db: sqlite3.Connection) -> int:
        row = db.execute(
            "SELECT count(*) FROM docs WHERE namespace = ?", (self._namespace,)
        ).fetchone()
        return int(row[0])


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction on an autocommit connection: committed, or rolled back on error."""
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
