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
- SENSITIVE runs live in their own index, one scope per owner (the run's
  `owner`), as the memory service keeps each owner's SENSITIVE patterns
  apart from the rest and from each other: fuzzy corrections and the words
  query understanding knows are each scope's own, and both halves rank in
  one text engine, as the memory service's do, so a search is one ranked
  read on one score (and BM25 statistics are the namespace's, as there).
  Every read takes the viewer (visibility.py): a SENSITIVE run is found,
  and its words shape a query, only for its owner (with authentication off,
  for everyone). `visible` answers the same for one run, for GetRun and
  ListRuns, without classifying anything again.

The index is a cache in `<data_dir>/local-index/` (two SQLite files, one per
half); the run directories stay the record. `open` reuses the cache and
brings it up to date with the run directories: runs added while the
executor was down are indexed, runs deleted by hand are dropped. It is
rebuilt from the run files only when missing, incomplete (a rebuild was
interrupted), written by another INDEX_VERSION or for another namespace, or
unreadable. Writes are durable enough for a cache (WAL, synchronous=NORMAL):
a crash loses at most the newest runs, which the next start picks up again
from their files.

Replicas sharing one runs directory each keep their own index. Runs another
replica finished appear as new run directories: `catch_up`, awaited before
a local search, indexes them (and drops runs deleted), listing the
directory at most once per CATCH_UP_SECONDS. Listing, reading, scrubbing
and classifying run on a worker thread; only the index writes stay on the
event loop, as every other use of the index (SearchIndex takes one caller
at a time).

Not mirrored: the memory service's retention expiry (its settings, not the
executor's, decide when a pattern expires there), and the owner of an
ownerless run (one started with authentication off): the memory service
stores it as the executor's own, here no authenticated caller sees it if it
is SENSITIVE.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from attune.memory.v1 import memory_pb2
from executor_service.runs.as_pattern import run_to_pattern
from executor_service.runs.store import RunStore
from executor_service.runs.visibility import Viewer
from executor_service.templates.catalog import Catalog
from memory_service.patterns import fingerprint
from memory_service.search.filter import Node
from memory_service.search.index import Hit, ReadQuery, SearchIndex, search_views
from memory_service.search.query import Term
from memory_service.search.text_engine import TextEngine
from memory_service.security.classify import classify
from memory_service.security.pii import ScrubBudgetExceededError
from memory_service.security.secrets import find_secrets
from memory_service.servicekit.sqlite import open_cache_file, read_stamp, transaction, write_stamp
from memory_service.store.secure_index import OWNER_SEPARATOR, owner_scope
from memory_service.write_pipeline import classified_and_scrubbed

log = logging.getLogger("attune.executor.local_index")

INDEX_DIR = "local-index"
# Bump whenever what is indexed for a run changes (run_to_pattern, the
# scrubbing or classification applied here, the index layout): a cache
# written by another version is rebuilt instead of answering differently.
# 2: runs whose pattern holds a secret are left out; 3: SENSITIVE runs are
# indexed per owner; 4: agents carry their tier strategy and first tier
# (escalation filters).
INDEX_VERSION = 4
_HALVES = ("open.sqlite3", "sensitive.sqlite3")
_MANIFEST = "manifest"  # The stamp table: version and namespace, written last.
# Runs indexed per transaction while rebuilding or catching up: bounds the
# WAL while keeping commits (and their page writes) few.
_BATCH = 500
# How stale a replica's local search may be about other replicas' runs: the
# listing is cheap, but not cheap enough for every search.
CATCH_UP_SECONDS = 1.0


def as_memory_stores(pattern: memory_pb2.Pattern) -> memory_pb2.Pattern | None:
    """The pattern as the memory service's write pipeline stores it, as far
    as search can tell: classified on the pattern as sent, then PII-scrubbed.

    The owner stays as the run gave it (the memory service would make the
    executor the owner of an ownerless run); expiry is left out: no filter
    can name it, and the memory service's retention settings are not the
    executor's. None when it holds more text than scrubbing may check: the
    memory service refuses it too.
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


def _classified_sensitive(pattern: memory_pb2.Pattern) -> bool:
    """Whether the pattern as sent classifies SENSITIVE: for a run left out of
    the index, which is still shown only as it classifies."""
    classification, _ = classify(pattern)
    return classification == common_pb2.CLASSIFICATION_SENSITIVE


@dataclass(frozen=True)
class _Prepared:
    """A run read from its files, ready to index: `stored` as the memory
    service stores it, or None when the memory service would refuse it."""

    pattern: memory_pb2.Pattern
    stored: memory_pb2.Pattern | None


def _prepare(root: Path, run_id: str, catalog: Catalog) -> _Prepared | None:
    """The run's pattern, classified and scrubbed; None when unreadable (logged).

    Touches no index: safe on any thread.
    """
    run = _read_run(root, run_id)
    if run is None:
        return None
    pattern = run_to_pattern(run, catalog.get(run.template_id))
    if find_secrets(pattern):
        # Refused by the memory service, so not searchable here either; read
        # again at each start (only runs from before answers were scanned up
        # front can hold one).
        return _Prepared(pattern, None)
    return _Prepared(pattern, as_memory_stores(pattern))


def _prepare_all(root: Path, run_ids: Iterable[str], catalog: Catalog) -> list[_Prepared]:
    return [prepared for run_id in run_ids if (prepared := _prepare(root, run_id, catalog))]


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

    def __init__(
        self,
        folder: Path,
        namespace: str,
        clock: Callable[[], float] = time.monotonic,
        catch_up_seconds: float = CATCH_UP_SECONDS,
    ) -> None:
        self._folder = folder
        self._namespace = namespace
        self._clock = clock
        self._catch_up_seconds = catch_up_seconds
        # Set by `open`: where `catch_up` looks, and what with.
        self._runs: RunStore | None = None
        self._catalog: Catalog | None = None
        # Run ids on disk at the last listing or added since: what a catch-up
        # need not read (unreadable runs included, until the next start).
        self._known: set[str] = set()
        self._listed_at = 0.0
        self._catching_up = asyncio.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._open_index: SearchIndex | None = None
        self._sensitive_index: SearchIndex | None = None
        self._engine = TextEngine()
        # The owner of every SENSITIVE run ("" when ownerless), indexed or
        # left out (a secret, too much text): who may see it, without
        # classifying it again. Read from any thread (one dict lookup).
        self._sensitive_owners: dict[str, str] = {}
        # Owners whose scope in the SENSITIVE half holds (or held) runs.
        # Never shrinks: stale only towards searching an empty scope.
        self._owners: set[str] = set()

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
                write_stamp(db, _MANIFEST, self._stamp())
        self._warm()
        self._runs, self._catalog, self._known = runs, catalog, on_disk
        self._listed_at = self._clock()
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
        self._drop(gone)
        added = 0
        for start in range(0, len(missing), _BATCH):
            # Read a batch at a time: a rebuild never holds every run at once.
            added += self._apply(_prepare_all(runs.root, missing[start : start + _BATCH], catalog))
        return added, len(gone)

    def _drop(self, run_ids: Sequence[str]) -> None:
        with transaction(self._open_db), transaction(self._sensitive_db):
            for run_id in run_ids:
                self._remove(run_id)

    def _apply(self, prepared: Sequence[_Prepared]) -> int:
        """Indexes prepared runs, _BATCH per transaction; the number indexed
        (the others are left out, as the memory service refuses them)."""
        added = 0
        for start in range(0, len(prepared), _BATCH):
            with transaction(self._open_db), transaction(self._sensitive_db):
                for run in prepared[start : start + _BATCH]:
                    if run.stored is None:
                        self._left_out(run.pattern)
                    else:
                        self._put(run.stored)
                        added += 1
        return added

    async def catch_up(self) -> None:
        """Indexes the runs that appeared on disk since the last look (other
        replicas' runs, in a shared runs directory) and drops those deleted;
        does nothing if it looked under CATCH_UP_SECONDS ago.

        Never raises for the cache's sake: a search answers from what is indexed.
        """
        if self._runs is None or not self._connections or self._fresh():
            return
        async with self._catching_up:
            if self._fresh():
                return
            self._listed_at = self._clock()  # Before listing: later runs are found next time.
            try:
                await self._catch_up_now(self._runs)
            except (OSError, sqlite3.Error) as error:
                log.error("local index not caught up", extra={"reason": str(error)})

    def _fresh(self) -> bool:
        return self._clock() - self._listed_at < self._catch_up_seconds

    async def _catch_up_now(self, runs: RunStore) -> None:
        # A snapshot: a run added while the directory is listed is not "gone".
        known = set(self._known)
        on_disk = set(await asyncio.to_thread(runs.run_ids))
        missing = sorted(on_disk - known, reverse=True)
        catalog = self._catalog
        assert catalog is not None  # Set by `open` with `_runs`.
        prepared = await asyncio.to_thread(_prepare_all, runs.root, missing, catalog)
        if not self._connections:
            return  # Closed meanwhile (the executor is stopping).
        gone = sorted(known - on_disk)
        self._drop(gone)
        added = self._apply(prepared)
        self._known = (self._known | on_disk) - set(gone)
        if added or gone:
            log.info("local index caught up", extra={"added": added, "removed": len(gone)})

    def met(self, run_id: str) -> bool:
        """Whether the index has seen the run (on disk at its last look, or
        added since): only then does `visible` know whether it is SENSITIVE."""
        return run_id in self._known

    def _reuse(self) -> set[str]:
        """The ids the existing cache holds; raises _UnusableError if it cannot be reused."""
        if not all((self._folder / name).is_file() for name in _HALVES):
            raise _UnusableError("missing")
        try:
            self._connect(fresh=False)
            for db in self._connections:
                manifest = read_stamp(db, _MANIFEST)
                if not manifest:
                    raise _UnusableError("incomplete: an earlier rebuild was interrupted")
                if manifest.get("version") != str(INDEX_VERSION):
                    raise _UnusableError(
                        f"written by index version {manifest.get('version')}, not {INDEX_VERSION}"
                    )
                if manifest.get("namespace") != self._namespace:
                    raise _UnusableError(f"built for namespace {manifest.get('namespace')!r}")
            ids = self._ids(self._open_db)
            sensitive = self._sensitive_runs()
            if ids & sensitive.keys():
                raise _UnusableError("a run is in both halves")
        except sqlite3.DatabaseError as error:
            raise _UnusableError(f"unreadable ({error})") from None
        self._sensitive_owners = sensitive
        self._owners = set(sensitive.values())
        return ids | sensitive.keys()

    def _stamp(self) -> dict[str, str]:
        return {"version": str(INDEX_VERSION), "namespace": self._namespace}

    def _connect(self, fresh: bool) -> None:
        for name in _HALVES:
            # A cache: losing the newest commits to a power cut is fine (the
            # next start re-indexes them); corruption is not, and WAL with
            # NORMAL never corrupts. Autocommit: transactions are explicit,
            # so each run's rows commit together.
            db = open_cache_file(
                self._folder / name, synchronous="NORMAL", check="none" if fresh else "readable"
            )
            self._connections.append(db)
            read_stamp(db, _MANIFEST)  # Creates the table a rebuild stamps last.
        # One text engine for both halves: a search ranks them together.
        self._engine = TextEngine()
        self._open_index = SearchIndex(self._open_db, engine=self._engine)
        self._sensitive_index = SearchIndex(self._sensitive_db, engine=self._engine)

    def _warm(self) -> None:
        """Loads what the first search would otherwise load (the text index,
        the fuzzy vocabularies and the query words), here on the start thread."""
        self._index(self._open_db).warm(self._namespace)
        self._index(self._open_db).expand(self._namespace, [])
        self._index(self._open_db).query_vocabulary(self._namespace)
        for owner in self._owners:
            scope = owner_scope(self._namespace, owner)
            self._index(self._sensitive_db).expand(scope, [])
            self._index(self._sensitive_db).query_vocabulary(scope)

    # --- writes --------------------------------------------------------------------

    def add(self, pattern: memory_pb2.Pattern) -> None:
        """Indexes (or re-indexes) one run's pattern, as sent to the memory service.

        Never raises for the cache's sake: the run is already on disk, and a
        run missing here is indexed from its files at the next start.
        """
        self._known.add(pattern.id)  # Not read again by a catch-up.
        # No secret check here: a run's answers were scanned before it started.
        stored = as_memory_stores(pattern)
        if stored is None:
            self._left_out(pattern)
            return
        try:
            with transaction(self._open_db), transaction(self._sensitive_db):
                self._put(stored)
        except sqlite3.Error as error:
            log.error(
                "local index not updated; the next start indexes the run from its files",
                extra={"run_id": pattern.id, "reason": str(error)},
            )

    def _put(self, stored: memory_pb2.Pattern) -> None:
        """Puts a stored pattern in its half (its owner's scope when SENSITIVE),
        and out of wherever it was before."""
        self._remove(stored.id)
        if _is_sensitive(stored):
            scope = owner_scope(self._namespace, stored.owner)
            self._index(self._sensitive_db).put(scope, stored, fingerprint(stored))
            self._sensitive_owners[stored.id] = stored.owner
            self._owners.add(stored.owner)
        else:
            self._index(self._open_db).put(self._namespace, stored, fingerprint(stored))

    def _left_out(self, pattern: memory_pb2.Pattern) -> None:
        """Notes who may see a run that is not indexed (not searchable, but
        GetRun and ListRuns still show it, to its owner only if SENSITIVE)."""
        if _classified_sensitive(pattern):
            self._sensitive_owners[pattern.id] = pattern.owner

    def _remove(self, run_id: str) -> None:
        self._index(self._open_db).delete(self._namespace, run_id)
        owner = self._sensitive_owners.pop(run_id, None)
        if owner is not None:
            self._index(self._sensitive_db).delete(owner_scope(self._namespace, owner), run_id)

    # --- reads ---------------------------------------------------------------------

    def visible(self, run_id: str, viewer: Viewer) -> bool:
        """Whether the viewer may see the run: false only for another owner's
        SENSITIVE run. A run the index has never met (not on disk when it
        opened, not added since) counts as not SENSITIVE."""
        owner = self._sensitive_owners.get(run_id)
        return owner is None or viewer.sees(owner)

    def _scopes(self, viewer: Viewer) -> list[str]:
        """The SENSITIVE scopes whose runs the viewer may see."""
        if viewer.sees_everyones:
            owners = sorted(self._owners)
        else:
            owners = [viewer.user_id] if viewer.user_id in self._owners else []
        return [owner_scope(self._namespace, owner) for owner in owners]

    def vocabulary(self, *, viewer: Viewer) -> tuple[list[str], list[str]]:
        """Template ids and numeric question ids of the runs, for query understanding.

        From the runs the viewer's search may show, as the memory service
        answers them: another owner's SENSITIVE runs never count.
        """
        templates, numeric = self._index(self._open_db).query_vocabulary(self._namespace)
        scopes = self._scopes(viewer)
        if not scopes:
            return templates, numeric
        all_templates, all_numeric = set(templates), set(numeric)
        for scope in scopes:
            own_templates, own_numeric = self._index(self._sensitive_db).query_vocabulary(scope)
            all_templates.update(own_templates)
            all_numeric.update(own_numeric)
        return sorted(all_templates), sorted(all_numeric)

    def search(
        self,
        terms: list[Term],
        condition: Node | None,
        limit: int,
        *,
        viewer: Viewer,
        min_should_match: int = 1,
    ) -> list[Hit]:
        """The best runs the viewer may see for the terms and filter, best first
        (having at least `min_should_match` of the ranked terms).

        The filter selects inside the index, before the limit, so no match
        is lost to it. The viewer's SENSITIVE runs rank with the rest in one
        read, as the memory service ranks its caller's own SENSITIVE patterns.
        Every SHOULD term is required (min_should_match), as the memory
        service's SearchPatterns asks.
        """
        query = ReadQuery(
            self._namespace, terms, condition, limit, min_should_match=min_should_match
        )
        views = [self._index(self._open_db).view(self._namespace)]
        views += [self._index(self._sensitive_db).view(scope) for scope in self._scopes(viewer)]
        hits, _ = search_views(self._engine, views, query, count=False)
        return hits

    def run_ids(self) -> set[str]:
        """Every run id indexed."""
        return self._ids(self._open_db) | self._sensitive_runs().keys()

    def close(self) -> None:
        """Closes the files (idempotent)."""
        for db in self._connections:
            db.close()
        self._connections = []
        self._open_index = self._sensitive_index = None
        self._sensitive_owners = {}
        self._owners = set()

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

    def _sensitive_runs(self) -> dict[str, str]:
        """The owner of every run in the SENSITIVE half, by run id."""
        prefix = self._namespace + OWNER_SEPARATOR
        return {
            str(doc_id): str(scope)[len(prefix) :]
            for doc_id, scope in self._sensitive_db.execute(
                "SELECT doc_id, namespace FROM docs WHERE substr(namespace, 1, ?) = ?",
                (len(prefix), prefix),
            )
        }
