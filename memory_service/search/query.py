"""The free-text query language: words, "quoted phrases" and prefix* terms.

Terms are ANDed. Anything that is not a word character is dropped from a
term, so no input can reach the full-text engine as syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

MAX_QUERY_LENGTH = 1024

_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+", re.UNICODE)


class QueryError(ValueError):
    """A query that cannot be searched; the message says why."""


class Occur(Enum):
    """How a term takes part in a search: it ranks (SHOULD: a document needs
    only the query's minimum number of them), it is required (MUST, typed
    `+word`), or it excludes (MUST_NOT, typed `-word`)."""

    SHOULD = "should"
    MUST = "must"
    MUST_NOT = "must_not"


@dataclass(frozen=True)
class Term:
    """One search term: a phrase of one or more words, maybe a prefix."""

    words: tuple[str, ...]
    prefix: bool = False
    occur: Occur = Occur.SHOULD

    def to_fts(self) -> str:
        """The term as an FTS5 expression, every word quoted."""
        phrase = '"' + " ".join(self.words) + '"'
        return phrase + "*" if self.prefix else phrase


def parse_query(text: str) -> list[Term]:
    """Splits free text into terms; raises QueryError if none is searchable."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"query is longer than {MAX_QUERY_LENGTH} characters")
    terms: list[Term] = []
    for match in _TOKEN.finditer(text):
        phrase, bare = match.group(1), match.group(2)
        source = phrase if phrase is not None else bare
        words = tuple(word.lower() for word in _WORD.findall(source))
        if words:
            prefix = phrase is None and bare.endswith("*")
            terms.append(Term(words, prefix))
    if not terms:
        raise QueryError("query has no searchable words")
    return terms


def to_fts_expression(terms: list[Term]) -> str:
    """The FTS5 MATCH expression requiring every term."""
    return " AND ".join(term.to_fts() for term in terms)
