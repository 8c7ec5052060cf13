"""The candidates of a ranked read: fetched from tantivy in batches (the
selection matches exactly the read's documents: see text_search.py), put in
their exact order, and served from SQLite.

Order: rank (the score; with recency log(score) - age in half-lives x ln 2,
which never underflows), then create time (newest first), then id, then view
(a store's shared half before a SENSITIVE one under the same id). Tantivy
returns candidates by score (or create time when nothing ranks) with ties
in document-address order, so:

- a batch settles the page once the page's last candidate ranks strictly
  above the best any unfetched candidate could (the last one fetched: the
  recency factor is at most 1); until then the next batch, twice as big;
- ids are read from SQLite only for candidates tied on (rank, create time)
  at the page, as few as there are.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import tantivy

from attune.memory.v1 import memory_pb2
from memory_service.search.documents import Decode
from memory_service.search.fuzzy import FuzzyVocabulary
from memory_service.search.query import Term
from memory_service.search.text_engine import ROWID, VIEW, Snapshot
from memory_service.search.text_filter import CREATED
from memory_service.search.text_query import contains
from memory_service.search.tie_reach import FIRST_REACH

if TYPE_CHECKING:
    from memory_service.search.index import ReadQuery

LN2 = math.log(2)
_CHUNK = 500  # Rowids per statement.
# After a first pass that stops inside the boundary's tied group, at least
# this many: each pass scores every match (see tie_reach.py).
_TIE_BATCH = 1024

# A candidate: (-rank, -create time, view, rowid, keyword score, address).
Candidate = tuple[float, int, int, int, float, tantivy.DocAddress]


@dataclass(frozen=True)
class View:
    """A source's namespace, as one read sees it."""

    source: int
    namespace: str
    connection: sqlite3.Connection
    vocabulary: FuzzyVocabulary
    decode: Decode
    live: tuple[str, list[object]]  # Its expiry clause on docs `d` ("" while none expired).


@dataclass(frozen=True)
class Found:
    """One result: the pattern and what its score is made of."""

    pattern: memory_pb2.Pattern
    score: float  # keyword_score x recency_factor; the factor alone when no term ranks.
    keyword_score: float
    recency_factor: float
    matched_terms: tuple[str, ...]


class Reader:
    """Fetches, verifies, orders and serves the candidates of one read.

    `numbers` maps the engine's view numbers to indexes into `views`;
    `ranked`: some term ranks (else candidates come newest first).
    """

    def __init__(
        self,
        snapshot: Snapshot,
        views: list[View],
        numbers: dict[int, int],
        query: ReadQuery,
        *,
        ranked: bool,
    ) -> None:
        self._snapshot = snapshot
        self._views = views
        self._numbers = numbers
        self._query = query
        self._ranked = ranked
        self._decayed = ranked and query.recency is not None
        # Ids read so far, by (view, rowid).
        self._ids: dict[tuple[int, int], str] = {}

    # --- ranking -------------------------------------------------------------------

    def halves(self, created: int) -> float:
        """A create time's age in half-lives (0 without recency)."""
        recency = self._query.recency
        if recency is None:
            return 0.0
        return max(0, recency.now_us - created) / (recency.half_life_seconds * 1e6)

    def _rank(self, score: float, created: int) -> float:
        if not self._ranked:
            return 0.0
        if not self._decayed:
            return score
        return math.log(max(score, 1e-12)) - self.halves(created) * LN2

    def _settled(self, kth: Candidate, last: Candidate) -> bool:
        """Whether nothing fetched after `last` can come before `kth`."""
        if not self._ranked:
            return -kth[1] > -last[1]
        bound = math.log(max(last[4], 1e-12)) if self._decayed else last[4]
        return -kth[0] > bound

    # --- fetching ------------------------------------------------------------------

    def _search(
        self, selection: tantivy.Query, limit: int, offset: int, count: bool
    ) -> tuple[list[tuple[Any, tantivy.DocAddress]], int | None]:
        """Hits (score, or create time when nothing ranks; address) in tantivy's order."""
        searcher = self._snapshot.searcher
        if self._ranked:
            result = searcher.search(selection, limit, count=count, offset=offset)
        else:
            result = searcher.search(
                selection, limit, count=count, offset=offset, order_by_field=CREATED
            )
        return result.hits, _counted(result) if count else None

    def _candidates(self, hits: list[tuple[Any, tantivy.DocAddress]]) -> list[Candidate]:
        """The hits with their view, rowid and create time (fast fields)."""
        searcher = self._snapshot.searcher
        addresses = [address for _, address in hits]
        views = cast(list[int], searcher.fast_field_values(VIEW, addresses))
        rowids = cast(list[int], searcher.fast_field_values(ROWID, addresses))
        created = cast(list[int], searcher.fast_field_values(CREATED, addresses))
        numbers = self._numbers
        rank = self._rank
        ranked = self._ranked
        return [
            (
                -rank(float(score) if ranked else 0.0, moment),
                -moment,
                numbers[view],
                rowid,
                float(score) if ranked else 0.0,
                address,
            )
            for (score, address), view, rowid, moment in zip(
                hits, views, rowids, created, strict=True
            )
        ]

    def page(self, selection: tantivy.Query, count: bool) -> tuple[list[Candidate], int | None]:
        """The page's candidates in order, and the total if `count`."""
        if self._decayed:
            ordered, total = self._reordered(selection, count)
        else:
            ordered, total = self._in_tantivy_order(selection, count)
        need = self._query.offset + self._query.limit
        return self._tie_broken(ordered, need)[self._query.offset :], total

    def _in_tantivy_order(
        self, selection: tantivy.Query, count: bool
    ) -> tuple[list[Candidate], int | None]:
        """The candidates, by (rank, create time), that can be on the page, when
        tantivy's order is the rank (no recency decay): the hits
        above the page boundary's rank, then of those tied with it (read on
        until the rank drops) the newest, by their create time alone."""
        need = self._query.offset + self._query.limit
        ties = self._snapshot.ties
        hits: list[tuple[Any, tantivy.DocAddress]] = []
        total: int | None = None
        batch = need + (ties.reach if self._ranked else FIRST_REACH)
        while True:
            found, counted = self._search(selection, batch, len(hits), count and not hits)
            total = counted if total is None else total
            hits += found
            if need == 0 or len(found) < batch or hits[need - 1][0] > hits[-1][0]:
                break
            batch = max(batch * 2, _TIE_BATCH)
        if need == 0 or len(hits) <= need:
            chosen = hits[:need]
            end = len(hits)
        else:
            # Hits come by descending key: the boundary's tied run is found by bisection.
            boundary = -hits[need - 1][0]
            start = bisect_left(hits, boundary, key=_negated_key)
            end = bisect_right(hits, boundary, key=_negated_key)
            chosen = hits[:start] + self._newest(hits[start:end], need - start)
        if self._ranked:
            # The hits it took to see the tie end (one past it, when it ended).
            ties.observe(min(end + 1, len(hits)) - need)
        candidates = self._candidates(chosen)
        candidates.sort(key=_head)
        return candidates, total

    def _newest(
        self, hits: list[tuple[Any, tantivy.DocAddress]], wanted: int
    ) -> list[tuple[Any, tantivy.DocAddress]]:
        """The `wanted` newest hits, and any as new as the last of them."""
        if len(hits) <= wanted:
            return hits
        created = cast(
            list[int],
            self._snapshot.searcher.fast_field_values(CREATED, [address for _, address in hits]),
        )
        order = sorted(range(len(hits)), key=created.__getitem__, reverse=True)
        cut = created[order[wanted - 1]]
        return [hits[n] for n in order if created[n] >= cut]

    def _reordered(
        self, selection: tantivy.Query, count: bool
    ) -> tuple[list[Candidate], int | None]:
        """Every candidate that can be on the page, in order, when recency
        reorders tantivy's hits: read on until no unread hit can outrank the page."""
        need = self._query.offset + self._query.limit
        passing: list[Candidate] = []
        total: int | None = None
        batch = need + FIRST_REACH
        while True:
            hits, counted = self._search(selection, batch, len(passing), count and not passing)
            total = counted if total is None else total
            candidates = self._candidates(hits)
            passing += candidates
            if len(candidates) < batch:
                break  # Every match is read.
            if len(passing) >= need:
                passing.sort(key=_head)
                if need == 0 or self._settled(passing[need - 1], candidates[-1]):
                    break
            batch *= 4
        passing.sort(key=_head)
        return passing, total

    def _tie_broken(self, ordered: list[Candidate], need: int) -> list[Candidate]:
        """The first `need` candidates, ties on (rank, create time) broken by id, then view."""
        page: list[Candidate] = []
        for _, group in itertools.groupby(ordered, key=_head):
            if len(page) >= need:
                break
            members = list(group)
            if len(members) > 1:
                self._read_ids(members)
                members.sort(key=lambda c: (self._ids[c[2], c[3]], c[2]))
            page += members
        return page[:need]

    # --- SQLite ----------------------------------------------------------------------

    def _read_ids(self, candidates: list[Candidate]) -> None:
        """Reads the ids of candidates not read yet."""
        for number, view in enumerate(self._views):
            known = self._ids
            rowids = [c[3] for c in candidates if c[2] == number and (number, c[3]) not in known]
            for rowid, doc_id in self._rows(view, rowids, "d.doc_id"):
                self._ids[number, rowid] = str(doc_id)

    def _rows(self, view: View, rowids: list[int], columns: str) -> list[tuple[Any, ...]]:
        """(rowid, columns...) of the view's docs among the rowids."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(rowids), _CHUNK):
            chunk = rowids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            # `+d.namespace`: looked up by rowid, never by scanning the namespace's index.
            rows += view.connection.execute(
                f"SELECT d.rowid, {columns} FROM docs d "  # noqa: S608 - columns are constants
                f"WHERE d.rowid IN ({marks}) AND +d.namespace = ?",
                [*chunk, view.namespace],
            ).fetchall()
        return rows

    # --- results -------------------------------------------------------------------

    def found(self, page: list[Candidate], notes: list[str]) -> list[Found]:
        """The page's results, in order (a document whose stored bytes do not
        parse is left out)."""
        stored: dict[tuple[int, int], tuple[str, bytes]] = {}
        for number, view in enumerate(self._views):
            rowids = [c[3] for c in page if c[2] == number]
            for rowid, doc_id, body in self._rows(view, rowids, "d.doc_id, d.body"):
                stored[number, rowid] = (str(doc_id), bytes(body))
        results = []
        for candidate in page:
            _, negative_created, number, rowid, keyword, address = candidate
            if (number, rowid) not in stored:
                continue
            view = self._views[number]
            doc_id, body = stored[number, rowid]
            pattern = view.decode(body, view.namespace, doc_id)
            if pattern is None:
                continue
            factor = 0.5 ** self.halves(-negative_created)
            matched: tuple[str, ...] = ()
            if self._query.explain and self._query.terms:
                matched = self._matched(address, notes)
            score = keyword * factor if self._ranked else factor
            results.append(Found(pattern, score, keyword, factor, matched))
        return results

    def _matched(self, address: tantivy.DocAddress, notes: list[str]) -> tuple[str, ...]:
        """Which terms (or their corrections) the document contains."""
        texts = [" ".join(t.words) + ("*" if t.prefix else "") for t in self._query.terms]
        texts += [note.split("->", 1)[1] for note in notes]
        found = []
        for text in texts:
            term = Term(tuple(text.rstrip("*").split()), text.endswith("*"))
            if contains(self._snapshot, term, address):
                found.append(text)
        return tuple(found)


def _negated_key(hit: tuple[Any, tantivy.DocAddress]) -> Any:
    return -hit[0]


def _head(candidate: Candidate) -> tuple[float, int]:
    return candidate[0], candidate[1]


def _counted(result: tantivy.SearchResult) -> int:
    """The count of a search asked to count (missing from tantivy's type stub)."""
    count = getattr(result, "count", None)
    assert isinstance(count, int)
    return count
