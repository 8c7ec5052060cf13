"""A BM25 full-text index on SQLite FTS5, scoped by namespace.

The embedded store keeps it in its own database file, in the same
transactions as the patterns; the executor's fallback keeps one over its run
files. Both rank with the same code.
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
"""


class TextIndex:
    """Index operations on a connection the caller owns and serialises."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.executescript(SCHEMA)

    def upsert(self, namespace: str, doc_id: str, body: str) -> None:
        """Indexes a document, replacing any earlier version of it."""
        self.remove(namespace, doc_id)
        self._db.execute(
            "INSERT INTO pattern_text (namespace, doc_id, body) VALUES (?, ?, ?)",
            (namespace, doc_id, body),
        )

    def remove(self, namespace: str, doc_id: str) -> None:
        """Drops a document from the index, if it is there."""
        self._db.execute(
            "DELETE FROM pattern_text WHERE namespace = ? AND doc_id = ?", (namespace, doc_id)
        )

    def search(self, namespace: str, terms: list[Term], limit: int) -> list[tuple[str, float]]:
        """The best documents for the terms, as (doc_id, score), best first."""
        rows = self._db.execute(
            # bm25() is lower-is-better; scores are reported higher-is-better.
            "SELECT doc_id, -bm25(pattern_text) AS score FROM pattern_text "
            "WHERE pattern_text MATCH ? AND namespace = ? ORDER BY score DESC, doc_id LIMIT ?",
            (to_fts_expression(terms), namespace, limit),
        ).fetchall()
        return [(str(doc_id), float(score)) for doc_id, score in rows]
