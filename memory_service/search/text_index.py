"""A BM25 full-text index on SQLite FTS5, scoped by namespace.

The embedded store keeps it in its own database file, in the same
transactions as the patterns; the executor's fallback keeps one over its run
files. Both rank with the same code.

`index_docs` maps (namespace, doc id) to a rowid, so updates and namespace
scoping use a b-tree instead of scanning the full-text tables. Two FTS5
tables share that rowid: `pattern_text` is stemmed, so "packages" finds
"package"; `pattern_words` keeps words as written, for prefix terms, because
a stemmer would also stem the prefix ("deploy*" would become "deploi*" and
miss "deployment").
"""

from __future__ import annotations

import sqlite3

from memory_service.search.query import Term, to_fts_expression

SCHEMA = """
CREATE TABLE IF NOT EXISTS index_docs (
    rowid INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    UNIQUE (namespace, doc_id)
);
CREATE VIRTUAL TABLE IF NOT EXISTS pattern_text USING fts5(
    body,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS pattern_words USING fts5(
    body,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3 4'
);
"""


class TextIndex:
    """Index operations on a connection the caller owns and serialises."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.executescript(SCHEMA)

    def upsert(self, namespace: str, doc_id: str, body: str) -> None:
        """Indexes a document, replacing any earlier version of it."""
        self.remove(namespace, doc_id)
        cursor = self._db.execute(
            "INSERT INTO index_docs (namespace, doc_id) VALUES (?, ?)", (namespace, doc_id)
        )
        for table in ("pattern_text", "pattern_words"):
            self._db.execute(
                f"INSERT INTO {table} (rowid, body) VALUES (?, ?)",  # noqa: S608 (fixed names)
                (cursor.lastrowid, body),
            )

    def remove(self, namespace: str, doc_id: str) -> None:
        """Drops a document from the index, if it is there."""
        row = self._db.execute(
            "SELECT rowid FROM index_docs WHERE namespace = ? AND doc_id = ?", (namespace, doc_id)
        ).fetchone()
        if row is None:
            return
        for table in ("index_docs", "pattern_text", "pattern_words"):
            self._db.execute(f"DELETE FROM {table} WHERE rowid = ?", row)  # noqa: S608

    def search(self, namespace: str, terms: list[Term], limit: int) -> list[tuple[str, float]]:
        """The best documents for the terms, as (doc_id, score), best first.

        Scores are BM25, reported higher-is-better (FTS5's bm25() is lower-is-
        better). Whole-word terms rank in the stemmed table; prefix terms
        filter through the unstemmed one, and rank there when they are alone.
        """
        words = [term for term in terms if not term.prefix]
        prefixes = [term for term in terms if term.prefix]
        ranked = "pattern_text" if words else "pattern_words"
        arguments: list[object] = [to_fts_expression(words or prefixes), namespace]
        prefix_filter = ""
        if words and prefixes:
            prefix_filter = (
                "AND d.rowid IN (SELECT rowid FROM pattern_words WHERE pattern_words MATCH ?) "
            )
            arguments.append(to_fts_expression(prefixes))
        arguments.append(limit)
        # Only fixed table names and the constant prefix_filter are interpolated.
        sql = (
            f"SELECT d.doc_id, -bm25({ranked}) AS score FROM {ranked} "  # noqa: S608
            f"JOIN index_docs d ON d.rowid = {ranked}.rowid "
            f"WHERE {ranked} MATCH ? AND d.namespace = ? {prefix_filter}"
            "ORDER BY score DESC, d.doc_id LIMIT ?"
        )
        rows = self._db.execute(sql, arguments).fetchall()
        return [(str(doc_id), float(score)) for doc_id, score in rows]
