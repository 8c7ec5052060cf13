"""The search index of a store, with SENSITIVE patterns sealed at rest.

Both backends keep their searchable patterns in one of these (the embedded
store in its durable file, a Redis replica in its cache file), so both keep
SENSITIVE patterns the same way:

- everything else lives in a `SearchIndex` on the connection given, as before;
- a SENSITIVE pattern is on that connection only as an AES-256-GCM envelope
  in `sealed_docs` (no text, no facts, no typed columns); its plaintext
  lives only in a second `SearchIndex` on an in-memory SQLite connection,
  under the namespace `<namespace>\\x1f<owner>`. So the fuzzy vocabulary
  and the query words of SENSITIVE text are per owner, and never reach
  another user. At open every envelope is decrypted into that in-memory
  index: a start-up cost (logged) and RAM about the size of the index of
  those patterns.
- both halves rank in ONE text engine (text_engine.py, RAM only): a
  namespace's shared documents and every owner's SENSITIVE ones are in one
  tantivy index, each tagged with its half and owner, and a search shows
  the viewer's own with the shared ones, ranked on one score. BM25
  statistics are the namespace's, SENSITIVE documents included (the
  side channel text_engine.py describes).

Ids: every owner has their own SENSITIVE ids. Under one id a namespace
holds at most one non-SENSITIVE pattern (the shared one) and at most one
SENSITIVE pattern per owner; a viewer sees their own and the shared one. So a
write never meets, and never answers differently because of, a SENSITIVE
pattern its writer cannot see (no existence oracle), and never touches one
either: it replaces only the writer's own version and the shared one. Where
a viewer holds both (someone wrote a shared pattern under an id the viewer
had made SENSITIVE), a read by id (get, delete) takes the viewer's own
first, and lists and searches show both.

Every read takes the viewer (the caller's user id) and shows SENSITIVE
patterns only to their owner. When the viewer owns none in the namespace the
on-disk index answers alone; otherwise a search is one ranked read over both
halves (the viewer's scope only), and lists and counts merge the halves.

Removing plaintext for good: the connection runs with PRAGMA secure_delete
(freed pages are zeroed) and temp_store=MEMORY; no full-text table keeps
deleted terms in older segments (the text engine is in RAM). After a
commit that removed plaintext the WAL is checkpointed and truncated, so no
old frame keeps it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.search.filter import Node
from memory_service.search.index import (
    Group,
    Hit,
    PageQuery,
    ReadQuery,
    SearchIndex,
    StoredDoc,
    UnreadablePatternError,
    decode_pattern,
    expire_us,
    search_views,
    wall_clock_us,
)
from memory_service.search.text_engine import SCOPE_SEPARATOR, TextEngine
from memory_service.security.crypto import DecryptionError, Keyring, MissingKeyError
from memory_service.servicekit.sqlite import transaction
from memory_service.servicekit.tracing import span

log = logging.getLogger("attune.memory.secure_index")

SEALED_SCHEMA = """
CREATE TABLE IF NOT EXISTS sealed_docs (
    namespace TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    envelope BLOB NOT NULL,
    expire_us INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, doc_id, owner)
);
CREATE INDEX IF NOT EXISTS sealed_by_expiry ON sealed_docs (expire_us) WHERE expire_us > 0;
"""
# Between namespace and owner in the in-memory index's namespaces: namespaces
# are [a-z0-9._-], so no namespace contains it. The text engine ranks a
# scope with its base namespace.
OWNER_SEPARATOR = SCOPE_SEPARATOR


def is_sensitive(pattern: memory_pb2.Pattern) -> bool:
    """Whether the pattern is stored sealed and shown to its owner only."""
    return pattern.classification == common_pb2.CLASSIFICATION_SENSITIVE


def associated_data(namespace: str, pattern_id: str) -> bytes:
    """What an envelope is bound to: moved to another id or namespace, it fails."""
    return f"{namespace}/{pattern_id}".encode()


def owner_scope(namespace: str, owner: str) -> str:
    """The in-memory index's namespace of one owner's SENSITIVE patterns."""
    return f"{namespace}{OWNER_SEPARATOR}{owner}"


@dataclass(frozen=True)
class Current:
    """A version of a pattern as another store holds it now: its bytes (an
    envelope when sealed), fingerprint and, when sealed, its owner. For
    mirroring that store."""

    body: bytes
    fingerprint: str
    sealed: bool
    owner: str = ""


class SecureIndex:
    """A SearchIndex whose SENSITIVE half is sealed on disk, plaintext in memory.

    The caller owns the connection and serialises every call (one thread),
    and makes writes inside `transaction()`.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        keyring: Keyring,
        clock: Callable[[], int] = wall_clock_us,
    ) -> None:
        self._db = connection
        self._keyring = keyring
        connection.execute("PRAGMA secure_delete=ON")
        connection.execute("PRAGMA temp_store=MEMORY")  # No sort spills to temp files.
        self._engine = TextEngine()
        self._disk = SearchIndex(connection, clock, self._engine)
        connection.executescript(SEALED_SCHEMA)
        _key_sealed_by_owner(connection)
        self._memory_db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._memory = SearchIndex(self._memory_db, clock, self._engine)
        # (namespace, owner) pairs that have (or had) SENSITIVE patterns: only
        # their reads merge. Never shrinks, so it can be stale only towards
        # merging with nothing, which is still right.
        self._owners: set[tuple[str, str]] = set()
        self._truncate_wal = False  # This transaction removed plaintext.
        try:
            self._load()
            self._seal_plaintext_sensitive()
        except BaseException:
            self._memory_db.close()
            raise

    # --- opening -----------------------------------------------------------------

    def _load(self) -> None:
        """Decrypts every sealed pattern into the in-memory index."""
        started = time.perf_counter()
        rows = self._db.execute(
            "SELECT namespace, doc_id, owner, fingerprint, envelope FROM sealed_docs"
        ).fetchall()
        if rows and not self._keyring.key_ids:
            raise MissingKeyError(f"{len(rows)} SENSITIVE patterns are stored")
        with transaction(self._memory_db):
            for namespace, doc_id, owner, digest, envelope in rows:
                pattern = self._open_envelope(str(namespace), str(doc_id), bytes(envelope))
                if pattern.owner != owner:
                    raise DecryptionError(
                        f"sealed pattern {doc_id!r} in {namespace!r}: its owner column was altered"
                    )
                self._memory.put(owner_scope(namespace, owner), pattern, str(digest))
                self._owners.add((str(namespace), str(owner)))
        log.info(
            "sealed patterns decrypted into memory",
            extra={
                "sealed": len(rows),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    def _seal_plaintext_sensitive(self) -> None:
        """Seals SENSITIVE patterns a version before encryption at rest left in plaintext."""
        rows = self._db.execute(
            "SELECT namespace, body, fingerprint FROM docs WHERE classification = 'SENSITIVE'"
        ).fetchall()
        if not rows:
            return
        if not self._keyring.configured:
            raise MissingKeyError(f"{len(rows)} SENSITIVE patterns are stored in plaintext")
        with self.transaction():
            for namespace, body, fingerprint in rows:
                self.put(str(namespace), memory_pb2.Pattern.FromString(body), str(fingerprint))
        log.warning("sealed SENSITIVE patterns stored in plaintext", extra={"sealed": len(rows)})

    def _open_envelope(
        self, namespace: str, pattern_id: str, envelope: bytes
    ) -> memory_pb2.Pattern:
        plaintext = self._keyring.decrypt(envelope, associated_data(namespace, pattern_id))
        pattern = memory_pb2.Pattern.FromString(plaintext)
        pattern.DiscardUnknownFields()  # As decode_pattern: nothing unchecked is served.
        return pattern

    def close(self) -> None:
        """Releases the in-memory index (the caller closes its own connection)."""
        self._memory_db.close()

    # --- transactions --------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction over both halves: all of it happens, or none.

        Then, if it removed plaintext, no copy of that plaintext stays in the
        file or its WAL.
        """
        self._truncate_wal = False
        # The disk half commits first: if its COMMIT fails, memory rolls back too.
        with transaction(self._memory_db), transaction(self._db, immediate=True):
            yield
        if self._truncate_wal:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:  # Another connection reads an old snapshot; the next one truncates.
                log.warning("WAL not truncated after removing plaintext: a reader is busy")

    # --- writes --------------------------------------------------------------------

    def put(self, namespace: str, pattern: memory_pb2.Pattern, fingerprint: str) -> None:
        """Stores a pattern written by its owner: in the half its classification
        says, replacing the versions under its id that the owner sees (their
        own SENSITIVE one and the shared one), never another owner's.
        MissingKeyError (and nothing changed) for a SENSITIVE pattern without a key."""
        if is_sensitive(pattern):
            with span("attune.write.encrypt", namespace=namespace, pattern_id=pattern.id):
                envelope = self._keyring.encrypt(
                    pattern.SerializeToString(), associated_data(namespace, pattern.id)
                )
            if self._disk.delete(namespace, pattern.id):
                self._truncate_wal = True
            self._put_sealed(namespace, pattern, fingerprint, envelope)
            return
        self._remove_sealed(namespace, pattern.id, pattern.owner)
        self._disk.put(namespace, pattern, fingerprint)

    def _put_sealed(
        self, namespace: str, pattern: memory_pb2.Pattern, fingerprint: str, envelope: bytes
    ) -> None:
        """Stores the owner's SENSITIVE version under the id, replacing theirs only."""
        self._remove_sealed(namespace, pattern.id, pattern.owner)
        self._db.execute(
            "INSERT INTO sealed_docs (namespace, doc_id, owner, fingerprint, envelope, expire_us) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (namespace, pattern.id, pattern.owner, fingerprint, envelope, expire_us(pattern)),
        )
        self._memory.put(owner_scope(namespace, pattern.owner), pattern, fingerprint)
        self._owners.add((namespace, pattern.owner))

    def _sealed_owners(self, namespace: str, pattern_id: str) -> set[str]:
        """The owners holding a SENSITIVE version under the id."""
        return {
            str(owner)
            for (owner,) in self._db.execute(
                "SELECT owner FROM sealed_docs WHERE namespace = ? AND doc_id = ?",
                (namespace, pattern_id),
            )
        }

    def _remove_sealed(self, namespace: str, pattern_id: str, owner: str) -> bool:
        cursor = self._db.execute(
            "DELETE FROM sealed_docs WHERE namespace = ? AND doc_id = ? AND owner = ?",
            (namespace, pattern_id, owner),
        )
        if not cursor.rowcount:
            return False
        self._memory.delete(owner_scope(namespace, owner), pattern_id)
        return True

    def remove(self, namespace: str, pattern_id: str, owner: str = "") -> bool:
        """Deletes one version under the id, live or expired: the owner's
        SENSITIVE one, or with owner "" the shared one."""
        if owner:
            return self._remove_sealed(namespace, pattern_id, owner)
        if self._disk.delete(namespace, pattern_id):
            self._truncate_wal = True
            return True
        return False

    def delete(self, namespace: str, pattern_id: str, *, viewer: str) -> bool:
        """Deletes the live pattern the viewer gets under the id (see `get`);
        False if there is none the viewer may see. An unreadable shared one
        can be deleted: the disk half holds no SENSITIVE pattern."""
        if self._own(namespace, pattern_id, viewer) is not None:
            return self._remove_sealed(namespace, pattern_id, viewer)
        try:
            if self._disk.get(namespace, pattern_id) is None:
                return False
        except UnreadablePatternError:
            pass
        return self.remove(namespace, pattern_id)

    def sync(self, namespace: str, pattern_id: str, current: list[Current]) -> None:
        """Mirrors every version another store holds under the id now (none:
        deleted there); unchanged bytes are skipped. A replica's cache of Redis."""
        kept: set[str] = set()  # Owners whose SENSITIVE version stays.
        shared = False
        for version in current:
            if version.sealed:
                if self.envelope(namespace, pattern_id, version.owner) != version.body:
                    pattern = self._open_envelope(namespace, pattern_id, version.body)
                    self._put_sealed(namespace, pattern, version.fingerprint, version.body)
                kept.add(version.owner)
            elif self._disk.stored_body(namespace, pattern_id) == version.body:
                shared = True
            else:
                readable = decode_pattern(version.body, namespace, pattern_id)
                if readable is None:  # Damaged where it is kept: left out of every read.
                    continue
                if is_sensitive(readable):  # In plaintext (an older version wrote it): sealed here.
                    envelope = self._keyring.encrypt(
                        version.body, associated_data(namespace, pattern_id)
                    )
                    self._put_sealed(namespace, readable, version.fingerprint, envelope)
                    kept.add(readable.owner)
                else:
                    self._disk.put(namespace, readable, version.fingerprint)
                    shared = True
        if not shared:
            self.remove(namespace, pattern_id)
        for owner in self._sealed_owners(namespace, pattern_id) - kept:
            self._remove_sealed(namespace, pattern_id, owner)

    def drop_namespace(self, namespace: str) -> None:
        """Deletes every pattern of a namespace, in both halves."""
        if self._disk.drop_namespace(namespace):
            self._truncate_wal = True
        owners = [
            str(owner)
            for (owner,) in self._db.execute(
                "SELECT DISTINCT owner FROM sealed_docs WHERE namespace = ?", (namespace,)
            )
        ]
        self._db.execute("DELETE FROM sealed_docs WHERE namespace = ?", (namespace,))
        for owner in owners:
            self._memory.drop_namespace(owner_scope(namespace, owner))

    # --- retention and keys ------------------------------------------------------

    def expired(self, now_us: int) -> list[tuple[str, str, str]]:
        """(namespace, id, owner) of every version, of any owner, expired at
        now_us; owner "" for a shared (non-SENSITIVE) one."""
        return [(ns, doc_id, owner) for ns, doc_id, owner, _ in self.expired_classified(now_us)]

    def expired_classified(self, now_us: int) -> list[tuple[str, str, str, str]]:
        """`expired`, each with its classification (PUBLIC, INTERNAL or SENSITIVE)."""
        sealed = [
            (str(namespace), str(doc_id), str(owner), "SENSITIVE")
            for namespace, doc_id, owner in self._db.execute(
                "SELECT namespace, doc_id, owner FROM sealed_docs "
                "WHERE expire_us > 0 AND expire_us <= ?",
                (now_us,),
            )
        ]
        shared = [
            (namespace, doc_id, "", classification)
            for namespace, doc_id, classification in self._disk.expired_classified(now_us)
        ]
        return sorted(shared + sealed)

    def purge(self, now_us: int) -> int:
        """Deletes every pattern expired at now_us; how many."""
        purged = self._disk.purge(now_us)
        if purged:
            self._truncate_wal = True
        for namespace, doc_id, owner in self.expired(now_us):
            purged += self._remove_sealed(namespace, doc_id, owner)
        return purged

    def envelope(self, namespace: str, pattern_id: str, owner: str) -> bytes | None:
        """The sealed bytes of the owner's SENSITIVE pattern under the id, or None."""
        row = self._db.execute(
            "SELECT envelope FROM sealed_docs WHERE namespace = ? AND doc_id = ? AND owner = ?",
            (namespace, pattern_id, owner),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def sealed_ids(self) -> list[tuple[str, str, str]]:
        """(namespace, id, owner) of every sealed pattern."""
        return [
            (str(namespace), str(doc_id), str(owner))
            for namespace, doc_id, owner in self._db.execute(
                "SELECT namespace, doc_id, owner FROM sealed_docs ORDER BY namespace, doc_id, owner"
            )
        ]

    def reencrypt(self, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Re-seals every envelope not under the active key: (re-sealed, sealed).

        The plaintext does not change, so the in-memory index stays as it is.
        """
        rows = self._db.execute(
            "SELECT namespace, doc_id, owner, envelope FROM sealed_docs "
            "ORDER BY namespace, doc_id, owner"
        ).fetchall()
        resealed = 0
        for done, (namespace, doc_id, owner, envelope) in enumerate(rows, start=1):
            if self._keyring.needs_reencrypt(bytes(envelope)):
                fresh = self._keyring.reencrypt(bytes(envelope), associated_data(namespace, doc_id))
                self._db.execute(
                    "UPDATE sealed_docs SET envelope = ? "
                    "WHERE namespace = ? AND doc_id = ? AND owner = ?",
                    (fresh, namespace, doc_id, owner),
                )
                resealed += 1
            if progress is not None:
                progress(done, len(rows))
        return resealed, len(rows)

    # --- reads -------------------------------------------------------------------

    def _scope(self, namespace: str, viewer: str) -> str | None:
        """The viewer's SENSITIVE scope of the namespace, if there may be
        anything in it; None means the disk index answers alone."""
        if (namespace, viewer) in self._owners:
            return owner_scope(namespace, viewer)
        return None

    def _own(self, namespace: str, pattern_id: str, viewer: str) -> StoredDoc | None:
        """The viewer's own live SENSITIVE pattern under the id."""
        scope = self._scope(namespace, viewer)
        return None if scope is None else self._memory.get(scope, pattern_id)

    def visible(
        self, namespace: str, pattern_id: str, *, viewer: str, for_write: bool = False
    ) -> list[StoredDoc]:
        """The live versions under the id the viewer sees, their own first:
        what a write by the viewer dedupes against, conflicts with or replaces.
        An unreadable shared version raises UnreadablePatternError for a read
        that has nothing else to show; for a write it counts as absent, so
        the write repairs it."""
        own = self._own(namespace, pattern_id, viewer)
        try:
            shared = self._disk.get(namespace, pattern_id)
        except UnreadablePatternError:
            if own is None and not for_write:
                raise
            shared = None
        return [version for version in (own, shared) if version is not None]

    def get(self, namespace: str, pattern_id: str, *, viewer: str) -> StoredDoc | None:
        """The pattern with its fingerprint, if the viewer may see one under the
        id: their own SENSITIVE one first, then the shared one."""
        versions = self.visible(namespace, pattern_id, viewer=viewer)
        return versions[0] if versions else None

    def get_many(
        self, namespace: str, pattern_ids: list[str], *, viewer: str
    ) -> dict[str, memory_pb2.Pattern]:
        """Patterns the viewer may see, by id (as `get` picks); others are left out."""
        scope = self._scope(namespace, viewer)
        found = {} if scope is None else self._memory.get_many(scope, pattern_ids)
        missing = [pattern_id for pattern_id in pattern_ids if pattern_id not in found]
        return self._disk.get_many(namespace, missing) | found

    def vectors(
        self, namespace: str, condition: Node | None, *, viewer: str
    ) -> list[tuple[str, bytes]]:
        """(id, vector) of the patterns the viewer may see that pass the filter."""
        found = self._disk.vectors(namespace, condition)
        scope = self._scope(namespace, viewer)
        return found if scope is None else found + self._memory.vectors(scope, condition)

    def query_vocabulary(self, namespace: str, *, viewer: str) -> tuple[list[str], list[str]]:
        """Query words of the patterns the viewer may see: the non-SENSITIVE
        ones and the viewer's own SENSITIVE ones, never another user's."""
        templates, numeric = self._disk.query_vocabulary(namespace)
        scope = self._scope(namespace, viewer)
        if scope is None:
            return templates, numeric
        own_templates, own_numeric = self._memory.query_vocabulary(scope)
        return sorted({*templates, *own_templates}), sorted({*numeric, *own_numeric})

    def search(self, query: ReadQuery, *, viewer: str) -> tuple[list[Hit], int]:
        """Ranked patterns the viewer may see, and their total (see SearchIndex.search):
        one read over the shared half and the viewer's SENSITIVE scope, on one score."""
        scope = self._scope(query.namespace, viewer)
        if scope is None:
            return self._disk.search(query)
        views = [self._disk.view(query.namespace), self._memory.view(scope)]
        hits, total = search_views(self._engine, views, query, count=True)
        assert total is not None  # Counted when asked to.
        return hits, total

    def warm(self) -> None:
        """Builds the text index of every namespace now, not at its first search
        (which would wait for it: about 15 s per 100,000 patterns)."""
        started = time.perf_counter()
        namespaces = [
            str(namespace)
            for (namespace,) in self._db.execute(
                "SELECT namespace FROM docs UNION SELECT namespace FROM sealed_docs"
            )
        ]
        for namespace in namespaces:
            self._disk.warm(namespace)
        if namespaces:
            log.info(
                "text indexes built",
                extra={
                    "namespaces": len(namespaces),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )

    def page(self, query: PageQuery, *, viewer: str) -> tuple[list[memory_pb2.Pattern], int]:
        """A page of the patterns the viewer may see, in order, and the total."""
        scope = self._scope(query.namespace, viewer)
        if scope is None:
            return self._disk.page(query)
        depth = replace(query, limit=query.offset + query.limit, offset=0)
        patterns, total = self._disk.page(depth)
        own, own_total = self._memory.page(replace(depth, namespace=scope))
        merged = _in_order(patterns + own, query.order_by)
        return merged[query.offset : query.offset + query.limit], total + own_total

    def count(
        self, namespace: str, condition: Node | None, group_by: str, *, viewer: str
    ) -> tuple[int, list[Group]]:
        """How many patterns the viewer may see pass the filter, grouped."""
        scope = self._scope(namespace, viewer)
        if scope is None:
            return self._disk.count(namespace, condition, group_by)
        total, groups = self._disk.count(namespace, condition, group_by)
        own_total, own_groups = self._memory.count(scope, condition, group_by)
        return total + own_total, _merge_groups(groups + own_groups)


def _in_order(
    patterns: list[memory_pb2.Pattern], order_by: list[tuple[str, bool]]
) -> list[memory_pb2.Pattern]:
    """Sorted as SearchIndex.page orders (create_time, id; id last if absent)."""
    keys = list(order_by)
    if not any(name == "id" for name, _ in keys):
        keys.append(("id", False))
    ordered = list(patterns)
    # Stable sorts, least significant key first (reverse keeps stability).
    for name, descending in reversed(keys):
        if name == "create_time":
            ordered.sort(key=lambda p: p.create_time.ToMicroseconds(), reverse=descending)
        elif name == "id":
            ordered.sort(key=lambda p: p.id, reverse=descending)
        else:
            raise KeyError(name)
    return ordered


def _merge_groups(groups: list[Group]) -> list[Group]:
    """Groups of the same key summed, by count (descending), then key."""
    sums: dict[str, tuple[int, int, float]] = {}
    for group in groups:
        count, success, cost = sums.get(group.key, (0, 0, 0.0))
        sums[group.key] = (
            count + group.count,
            success + group.success_count,
            cost + group.total_cost_usd,
        )
    merged = [Group(key, *totals) for key, totals in sums.items()]
    return sorted(merged, key=lambda group: (-group.count, group.key))


def _key_sealed_by_owner(db: sqlite3.Connection) -> None:
    """Re-keys a sealed_docs table written before ids were per owner.

    Its key was (namespace, doc_id): every row fits the new key too, so the
    rows are copied as they are.
    """
    columns = {str(row[1]): int(row[5]) for row in db.execute("PRAGMA table_info(sealed_docs)")}
    if columns.get("owner", 0):
        return
    # Constants only: the schema above, and no value from anywhere else.
    migration = (
        "BEGIN IMMEDIATE;"  # noqa: S608
        "ALTER TABLE sealed_docs RENAME TO sealed_docs_by_id;"
        "DROP INDEX IF EXISTS sealed_by_expiry;"
        f"{SEALED_SCHEMA}"
        "INSERT INTO sealed_docs SELECT namespace, doc_id, owner, fingerprint, envelope, "
        "expire_us FROM sealed_docs_by_id;"
        "DROP TABLE sealed_docs_by_id;"
        "COMMIT;"
    )
    db.executescript(migration)
    log.info("sealed patterns re-keyed by owner")
