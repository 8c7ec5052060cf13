"""The free-text query language: what a user types and the terms it means.

- `word`: ranks (SHOULD). A result needs only some of the ranked words;
  reading.py says how many, and which common words do not rank at all.
- `"a quoted phrase"`: ranks as one term, its words next to each other in
  order; an unclosed quote runs to the end of the query.
- `+word`, `+"a phrase"`: required (MUST).
- `-word`, `-"a phrase"`: excluded (MUST_NOT).
- `prefix*`: a bare word ending in `*` matches the words starting with it;
  `+pack*` and `-pack*` mark it too.

A `+` or `-` marks a term only as the first character of a token. Anything
that is not a word character is dropped from a term, and a bare token with
punctuation inside ("attune-services:v1") is the phrase of its words, so no
input can reach a text engine as syntax. `format_query` prints terms back
as text that parses to the same terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from memory_service.search.stopwords import is_stop_word

MAX_QUERY_LENGTH = 1024

# One token: an optional mark and a "quoted phrase", or a run of non-spaces.
# Query understanding splits text with the same tokens (see phrases.py).
TOKEN = re.compile(r'(?P<mark>[+-]?)"(?P<phrase>[^"]*)"?|(?P<bare>\S+)')
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


_MARKS = {"": Occur.SHOULD, "+": Occur.MUST, "-": Occur.MUST_NOT}
_MARK_OF = {occur: mark for mark, occur in _MARKS.items()}


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

    def to_text(self) -> str:
        """The term as query text that parses back to this term.

        A ranked single word that is a stop word is quoted, as it must
        have been typed to rank (see reading.py).
        """
        if self.prefix:
            # Hyphens, not quotes: a quoted phrase cannot be a prefix.
            body = "-".join(self.words) + "*"
        elif len(self.words) > 1 or (self.occur is Occur.SHOULD and is_stop_word(self.words[0])):
            body = '"' + " ".join(self.words) + '"'
        else:
            body = self.words[0]
        return _MARK_OF[self.occur] + body


@dataclass(frozen=True)
class ParsedTerm:
    """A term and whether it was typed in quotes."""

    term: Term
    quoted: bool


def is_literal_token(token: str) -> bool:
    """Whether a token is the user's exact control of the search: a quoted
    phrase, or a +required or -excluded term. Query understanding leaves
    such tokens to the free text, as it finds them."""
    return token.startswith('"') or (token[:1] in ("+", "-") and _WORD.search(token) is not None)


def parse_terms(text: str) -> list[ParsedTerm]:
    """Every term of the text, in order; raises QueryError if there is none."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"query is longer than {MAX_QUERY_LENGTH} characters")
    parsed: list[ParsedTerm] = []
    for match in TOKEN.finditer(text):
        phrase, bare = match.group("phrase"), match.group("bare")
        mark = match.group("mark") if phrase is not None else bare[:1]
        occur = _MARKS.get(mark, Occur.SHOULD)
        source = phrase if phrase is not None else bare
        # Lower case first, so every word is a whole word of what is printed back.
        words = tuple(_WORD.findall(source.lower()))
        if words:
            prefix = phrase is None and bare.endswith("*")
            parsed.append(ParsedTerm(Term(words, prefix, occur), phrase is not None))
    if not parsed:
        raise QueryError("query has no searchable words")
    return parsed


def parse_query(text: str) -> list[Term]:
    """Splits free text into terms; raises QueryError if none is searchable."""
    return [parsed.term for parsed in parse_terms(text)]


def format_query(terms: list[Term]) -> str:
    """The terms as query text, in order: `python "test coverage" +publish -draft pack*`."""
    return " ".join(term.to_text() for term in terms)


def to_fts_expression(terms: list[Term]) -> str:
    """The FTS5 MATCH expression requiring every term."""
    return " AND ".join(term.to_fts() for term in terms)
