"""What of a query's free text ranks, and how many ranked words a result needs.

Filter clauses (typed, or understood from the query) are hard; the free
text ranks. So that the words people add to a question never empty a
result:

- Stop words (stopwords.py) do not rank: a bare single word that is one is
  dropped from the ranked (SHOULD) words. A "quoted" word, a phrase, a
  prefix*, a +required or a -excluded term is never dropped. When dropping
  would leave nothing to search for (no ranked or required term) and there
  is no filter, the stop words are kept and ranked on instead; with a
  filter they are dropped and the filter selects.
- A term typed twice counts once.
- Only -excluded terms and no filter is an error (nothing to rank); with a
  filter the exclusions take results out of the filter's matches.
- The minimum-should-match rule (`minimum_should_match`): of n ranked
  groups (a ranked term with its spelling corrections), a result contains
  at least 1 for n <= 2, n - 1 for n = 3 or 4, and 60% rounded up for
  n >= 5. Short questions are mostly deliberate words, so all but one
  must be there; long ones carry words no pattern has ("gimme", a typo
  beyond correction), so a fixed share must. The ranking (BM25) still puts
  the results with more of the words first.
- Relaxation (`relaxed_minimum`): when no pattern has the minimum and it is
  above one, the search runs again needing one ranked word, and the
  response says so. Decided on the total over all pages, so every page of
  a search reads it the same way and paging stays stable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from memory_service.search.query import Occur, ParsedTerm, QueryError, Term, parse_terms
from memory_service.search.stopwords import is_stop_word

# The minimum a relaxed search needs: any one ranked word.
RELAXED_MINIMUM = 1
# From this many ranked groups on, a fixed share of them must match.
_SHARE_FROM = 5
_SHARE = 0.6


@dataclass(frozen=True)
class TextReading:
    """The terms a free text searches for, and the words it left out."""

    terms: list[Term]
    dropped_words: tuple[str, ...]  # Stop words that do not rank, as typed (lower case).
    min_should_match: int  # Of the SHOULD terms; 0 when there is none.


def _droppable(parsed: ParsedTerm) -> bool:
    term = parsed.term
    return (
        term.occur is Occur.SHOULD
        and not parsed.quoted
        and not term.prefix
        and len(term.words) == 1
        and is_stop_word(term.words[0])
    )


def read_text(text: str, has_filter: bool) -> TextReading:
    """The ranked reading of a free text; raises QueryError if it cannot be
    searched (no words, or only exclusions and no filter)."""
    parsed = parse_terms(text)
    kept = [entry.term for entry in parsed if not _droppable(entry)]
    dropped = [entry.term.words[0] for entry in parsed if _droppable(entry)]
    if dropped and not has_filter and not any(t.occur is not Occur.MUST_NOT for t in kept):
        # Nothing but common words to look for: rank on them rather than fail.
        kept, dropped = [entry.term for entry in parsed], []
    terms = list(dict.fromkeys(kept))
    if not has_filter and terms and all(term.occur is Occur.MUST_NOT for term in terms):
        raise QueryError(
            "nothing to rank: -word only excludes; add a word to search for, or a filter"
        )
    should = sum(1 for term in terms if term.occur is Occur.SHOULD)
    return TextReading(terms, tuple(dict.fromkeys(dropped)), minimum_should_match(should))


def minimum_should_match(groups: int) -> int:
    """How many of `groups` ranked groups a result contains at least."""
    if groups <= 2:
        return min(groups, 1)
    if groups < _SHARE_FROM:
        return groups - 1
    return math.ceil(groups * _SHARE)


def relaxed_minimum(minimum: int, total: int, filtered: bool = False) -> int | None:
    """The minimum to search again with, when a search needing `minimum`
    ranked words matched `total` patterns over all its pages; None when its
    answer stands. The memory service and the executor's fallback both ask
    here, so they relax alike.

    With a filter (given or understood) the filter is what selects: when
    the words left over match none of its patterns (a misspelling no
    correction reached, a word no run holds), they only rank (minimum 0)
    rather than empty an answer the filter alone would give."""
    if total != 0:
        return None
    if filtered and minimum > 0:
        return 0
    if minimum > RELAXED_MINIMUM:
        return RELAXED_MINIMUM
    return None
