"""Stand-ins for a store and the executor's local index that honour
min_should_match the way the ranked engine does (a document matches when it
holds enough of the query's SHOULD words), so tests of what is built on top
(relaxation, the response's query_reading) hold whichever engine is
underneath."""

from __future__ import annotations

from attune.memory.v1 import memory_pb2
from memory_service.search.filter import Node
from memory_service.search.index import Hit, ReadQuery
from memory_service.search.query import Occur, Term

CORRECTION = "retires->retries"  # The fuzzy note every hit carries.


def ranked_hits(documents: dict[str, set[str]], terms: list[Term], minimum: int) -> list[Hit]:
    """The documents (id -> words) with at least `minimum` of the SHOULD words, by id."""
    should = [term.words[0] for term in terms if term.occur is Occur.SHOULD]
    return [
        Hit(memory_pb2.Pattern(id=doc_id), 1.0, 1.0, 1.0, fuzzy_expansions=(CORRECTION,))
        for doc_id, words in sorted(documents.items())
        if sum(1 for word in should if word in words) >= minimum
    ]


class RankedStore:
    """The part of a PatternStore that SearchPatterns reads."""

    def __init__(self, documents: dict[str, set[str]]) -> None:
        self.documents = documents
        self.minimums: list[int] = []  # Of every search, in order.

    async def query_vocabulary(self, namespace: str, *, viewer: str) -> tuple[list[str], list[str]]:
        return [], []

    async def search(self, query: ReadQuery, *, viewer: str) -> tuple[list[Hit], int]:
        self.minimums.append(query.min_should_match)
        found = ranked_hits(self.documents, query.terms, query.min_should_match)
        return found[query.offset : query.offset + query.limit], len(found)


class RankedRuns:
    """The part of the executor's LocalIndex that the fallback search reads."""

    def __init__(self, documents: dict[str, set[str]]) -> None:
        self.documents = documents
        self.minimums: list[int] = []  # Of every search, in order.

    def search(
        self,
        terms: list[Term],
        condition: Node | None,
        limit: int,
        *,
        viewer: object,
        min_should_match: int = 1,
    ) -> list[Hit]:
        self.minimums.append(min_should_match)
        return ranked_hits(self.documents, terms, min_should_match)[:limit]
