"""The words query understanding learns from a namespace's data: its template
ids and the ids of its numeric form answers, counted per namespace so that a
word leaves with the last document naming it."""

from __future__ import annotations

import sqlite3
from collections import Counter

from attune.memory.v1 import memory_pb2
from memory_service.search.documents import Decode

# Query words (template ids, numeric question ids) of a namespace that query
# understanding considers: far more than any real catalog holds.
MAX_QUERY_WORDS = 10_000


def query_words(pattern: memory_pb2.Pattern) -> tuple[list[str], list[str]]:
    """The words query understanding learns from a pattern: its template id
    and the ids of its numeric form answers."""
    templates = [pattern.template_id] if pattern.template_id else []
    numeric = [
        key
        for key, value in pattern.form_responses.items()
        if value.WhichOneof("kind") == "number_value"
    ]
    return templates, numeric


class QueryWordCounts:
    """Per namespace, how many documents name each template id and numeric
    question id: read from the index's tables when first needed, then kept
    up to date by `count`. `decode` reads a stored body."""

    def __init__(self, connection: sqlite3.Connection, decode: Decode) -> None:
        self._db = connection
        self._decode = decode
        self._counts: dict[str, tuple[Counter[str], Counter[str]]] = {}

    def vocabulary(self, namespace: str, now: list[object]) -> tuple[list[str], list[str]]:
        """(template ids, numeric form question ids) of the namespace's live
        documents. `now` is [the time] once something in the namespace has
        expired, else []: the words of documents expired but not yet purged
        are then taken off (a read of those documents only, through the
        expiry index)."""
        if namespace not in self._counts:
            self._counts[namespace] = self._load(namespace)
        templates, numeric = self._counts[namespace]
        if now:
            gone: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
            for body, doc_id in self._db.execute(
                "SELECT body, doc_id FROM docs "
                "WHERE namespace = ? AND expire_us > 0 AND expire_us <= ?",
                [namespace, *now],
            ):
                pattern = self._decode(body, namespace, doc_id)
                if pattern is None:  # Damaged: its words stay counted until it is purged.
                    continue
                for counter, words in zip(gone, query_words(pattern), strict=True):
                    counter.update(words)
            templates, numeric = templates - gone[0], numeric - gone[1]
        # The most common words only: what a search weighs stays bounded
        # however many distinct ids writers have sent.
        return _most_common(templates), _most_common(numeric)

    def count(self, namespace: str, pattern: memory_pb2.Pattern, step: int) -> None:
        """Adds (step 1) or removes (step -1) a document's query words, if loaded."""
        if namespace not in self._counts:
            return
        for counter, words in zip(self._counts[namespace], query_words(pattern), strict=True):
            for word in words:
                counter[word] += step
                if counter[word] <= 0:
                    del counter[word]

    def forget(self, namespace: str) -> None:
        """Drops the namespace's counts; they are read again when next needed."""
        self._counts.pop(namespace, None)

    def _load(self, namespace: str) -> tuple[Counter[str], Counter[str]]:
        queries = (
            "SELECT template_id, count(*) FROM docs "
            "WHERE namespace = ? AND template_id <> '' GROUP BY template_id",
            "SELECT f.key, count(*) FROM docs d, json_each(d.record, '$.form_responses') f "
            "WHERE d.namespace = ? AND f.type IN ('integer', 'real') GROUP BY f.key",
        )
        templates, numeric = (
            Counter({str(word): int(n) for word, n in self._db.execute(sql, (namespace,))})
            for sql in queries
        )
        return templates, numeric


def _most_common(words: Counter[str]) -> list[str]:
    """At most MAX_QUERY_WORDS of the words, the most used first kept, sorted."""
    if len(words) <= MAX_QUERY_WORDS:
        return sorted(words)
    return sorted(word for word, _ in words.most_common(MAX_QUERY_WORDS))
