"""A BM25 full-text index on SQLite FTS5, scoped by namespace.

The embedded store keeps it in its own database file, in the same
transactions as the patterns; the executor's fallback keeps one over its run
files. Both rank with the same code.

Two FTS5 tables share each document's rowid: `pattern_text` is stemmed, so
"packages" finds "package"; `pattern_words` keeps words as written, for
prefix terms, because a stemmer would also stem the prefix ("deploy*" would
become "deploi*" and miss "deployment").
"""

from __future__ import annotations

import sqlite3

from memory_service.search.query import Term, to_fts_expression

SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS pattern_text USING fts5(
    namespace UNINDEXED,
    doc_id UNINDEXED,
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
            "INSERT INTO pattern_text (namespace, doc_id, body) VALUES (?, ?, ?)",
            (namespace, doc_id, body),
        )
        self._db.execute(
            "INSERT INTO pattern_words (rowid, body) VALUES (?, ?)", (cursor.lastrowid, body)
        )

    def remove(self, namespace: str, doc_id: str) -> None:
        """Drops a document from the index, if it is there."""
        rows = self._db.execute(
            "SELECT rowid FROM pattern_text WHERE namespace = ? AND doc_id = ?",
            (namespace, doc_id),
        ).fetchall()
        for (rowid,) in rows:
            self._db.execute("DELETE FROM pattern_text WHERE rowid = ?", (rowid,))
            self._db.execute("DELETE FROM pattern_words WHERE rowid = ?", (rowid,))

    def search(self, namespace: str, terms: list[Term], limit: int) -> list[tuple[str, float]]:
        """The best documents for the terms, as (doc_id, score), best first.

        Scores are BM25, reported higher-is-better (FTS5's bm25() is lower-is-
        better). Whole-word terms rank in the stemmed table; prefix terms
        filter through the unstemmed one, and rank there when they are alone.
        """
        words = [term for term in terms if not term.prefix]
        prefixes = [term for term in terms if term.prefix]
        if not words:
            sql = (
                "SELECT t.doc_id, -bm25(pattern_words) AS score FROM pattern_words "
                "JOIN pattern_text t ON t.rowid = pattern_words.rowid "
                "WHERE pattern_words MATCH ? AND t.namespace = ? "
                "ORDER BY score DESC, t.doc_id LIMIT ?"
            )
            arguments: tuple[object, ...] = (to_fts_expression(prefixes), namespace, limit)
        else:
            prefix_filter = ""
            arguments = (to_fts_expression(words), namespace)
            if prefixes:
                prefix_filter = (
                    "AND rowid IN (SELECT rowid FROM pattern_words WHERE pattern_words MATCH ?) "
                )
                arguments += (to_fts_expression(prefixes),)
            # Only the constant prefix_filter is interpolated; values are bound.
            sql = (
                "SELECT doc_id, -bm25(pattern_text) AS score FROM pattern_text "  # noqa: S608
                f"WHERE pattern_text MATCH ? AND namespace = ? {prefix_filter}"
                "ORDER BY score DESC, doc_id LIMIT ?"
            )
            arguments += (limit,)
        rows = self._db.execute(sql, arguments).fetchall()
        return [(str(doc_id), float(score)) for doc_id, score in rows]
