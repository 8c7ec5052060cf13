"""SecureIndex keys and older files: what is sealed needs its key, keys rotate,
and files of older versions are brought up to date at open.

Part of the SecureIndex tests (test_secure_index.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from memory_service.search import index as search_index
from memory_service.search.index import PageQuery, SearchIndex
from memory_service.security.crypto import DecryptionError, MissingKeyError
from memory_service.store.secure_index import SecureIndex
from tests.support.secure_indexes import (  # Helpers, and the fixtures.
    NS,
    T0,
    Clock,
    Opened,
    index,
    keys,
    opened,
    paged,
    pattern,
    put,
    searched,
)

__all__ = ["index", "opened"]  # Fixtures: imported for pytest.


def test_open_needs_the_keys_of_what_is_sealed(opened: Opened, index: SecureIndex) -> None:
    put(index, pattern("p-1", "sealed", owner="alice", sensitive=True))
    with pytest.raises(MissingKeyError, match="1 SENSITIVE patterns are stored"):
        opened.open(keys())
    with pytest.raises(DecryptionError, match="'k1'"):
        opened.open(keys("k2"))
    assert paged(opened.open(keys("k1")), "alice") == ["p-1"]


def test_an_altered_envelope_or_owner_fails_at_open(opened: Opened, index: SecureIndex) -> None:
    put(index, pattern("p-1", "sealed", owner="alice", sensitive=True))
    raw = opened.raw()
    raw.execute("UPDATE sealed_docs SET owner = 'mallory'")
    with pytest.raises(DecryptionError, match="owner column was altered"):
        opened.open(keys("k1"))
    raw.execute("UPDATE sealed_docs SET owner = 'alice', doc_id = 'p-2'")  # Moved: AD differs.
    with pytest.raises(DecryptionError, match="failed authentication"):
        opened.open(keys("k1"))


def test_rotation_then_reencrypt_then_only_the_new_key(opened: Opened, index: SecureIndex) -> None:
    put(
        index,
        pattern("s-1", "first secret", owner="alice", sensitive=True),
        pattern("s-2", "second secret", owner="bob", sensitive=True),
        pattern("p-1", "shared"),
    )
    rotated = opened.open(keys("k1", "k2", active="k2"))  # Old key still there: readable.
    assert searched(rotated, "secret", "alice") == (["s-1"], 1)
    put(rotated, pattern("s-3", "third secret", owner="alice", sensitive=True))
    progress: list[tuple[int, int]] = []
    with rotated.transaction():
        assert rotated.reencrypt(lambda done, total: progress.append((done, total))) == (2, 3)
    assert progress == [(1, 3), (2, 3), (3, 3)]
    with rotated.transaction():
        assert rotated.reencrypt() == (0, 3)

    only_new = opened.open(keys("k2"))
    assert sorted(searched(only_new, "secret", "alice")[0]) == ["s-1", "s-3"]
    assert searched(only_new, "secret", "bob") == (["s-2"], 1)


def test_plaintext_sensitive_patterns_of_an_older_version_are_sealed_at_open(
    opened: Opened,
) -> None:
    legacy = SearchIndex(opened.raw())
    legacy.put(NS, pattern("old", "legacy secret", owner="alice", sensitive=True), "d")
    with pytest.raises(MissingKeyError, match="in plaintext"):
        opened.open(keys())
    index = opened.open(keys("k1"))
    raw = opened.raw()
    assert raw.execute("SELECT count(*) FROM docs").fetchone() == (0,)
    assert raw.execute("SELECT doc_id, owner FROM sealed_docs").fetchall() == [("old", "alice")]
    assert searched(index, "legacy", "alice") == (["old"], 1)
    assert searched(index, "legacy", "bob") == ([], 0)


def test_a_search_index_file_from_before_retention_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old_schema = search_index.SCHEMA.replace(
        "    expire_us INTEGER NOT NULL DEFAULT 0,\n", ""
    ).replace(
        "CREATE INDEX IF NOT EXISTS docs_by_expiry ON docs (namespace, expire_us) "
        "WHERE expire_us > 0;\n",
        "",
    )
    assert "expire_us" not in old_schema
    with sqlite3.connect(path) as old:
        old.executescript(old_schema)
    connection = sqlite3.connect(path)
    try:
        index = SearchIndex(connection, Clock())
        index.put(NS, pattern("p-1", "x", expire_us=T0 - 1), "d")
        index.put(NS, pattern("p-2", "x"), "d")
        assert [p.id for p in index.page(PageQuery(NS, None, [], 10, 0))[0]] == ["p-2"]
    finally:
        connection.close()
