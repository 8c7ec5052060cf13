"""Search terms as tantivy queries over the text engine's fields.

- A word or "phrase" is analysed as indexed text is (text_engine.analyzer:
  split, lower-cased, unaccented, stemmed) and searched in the stemmed body:
  one token is a term, several a phrase ("security_audit" is the phrase
  "secur audit", as an indexed "security audit" is).
- A prefix* term matches the unstemmed words (so "deploym*" finds
  "deployment", whose stem is shorter): every word with that start, and it
  ranks by BM25 over its first PREFIX_SCORING_TERMS completions (in word
  order). A prefix of several tokens ("python_pack*") matches and ranks as a phrase
  whose last word is any completion.
- A term's fuzzy corrections join it as alternatives in ONE group, which
  counts once towards the minimum number of SHOULD terms to match.
- Groups: SHOULD ones rank (a document needs `min_should_match` of them;
  a score never depends on where a document sits in the index: see
  `text_query`),
  MUST ones are required and rank too, MUST_NOT ones exclude. A term with
  no searchable token (only characters the analyser drops) is left out, and
  the minimum shrinks with it: nothing could ever match it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import tantivy

from memory_service.search.query import Occur, Term
from memory_service.search.text_engine import BODY, SCHEMA, WORDS, Snapshot

PREFIX_SCORING_TERMS = 50
_REGEX_SPECIAL = re.compile(r"([^\w])")


@dataclass(frozen=True)
class TextQuery:
    """What the terms ask: `ranked` (None: no term ranks, so the filter alone
    selects) must match; every `excluded` query must not."""

    ranked: tantivy.Query | None
    excluded: list[tantivy.Query]


def term_query(snapshot: Snapshot, term: Term) -> tantivy.Query | None:
    """One term as a query; None when it has no searchable token."""
    text = " ".join(term.words)
    if not term.prefix:
        tokens = snapshot.stemmed.analyze(text)
        if not tokens:
            return None
        if len(tokens) == 1:
            return tantivy.Query.term_query(SCHEMA, BODY, tokens[0])
        return tantivy.Query.phrase_query(SCHEMA, BODY, list(tokens))
    tokens = snapshot.words.analyze(text)
    if not tokens:
        return None
    start = _REGEX_SPECIAL.sub(r"\\\1", tokens[-1]) + ".*"
    if len(tokens) > 1:
        return tantivy.Query.regex_phrase_query(SCHEMA, WORDS, [*tokens[:-1], start])
    matches = tantivy.Query.const_score_query(tantivy.Query.regex_query(SCHEMA, WORDS, start), 0.0)
    completions = snapshot.searcher.terms_with_prefix(WORDS, tokens[0], limit=PREFIX_SCORING_TERMS)
    return tantivy.Query.boolean_query(
        [(tantivy.Occur.Must, matches)]
        + [
            (tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, WORDS, word))
            for word, _ in completions
        ]
    )


def _group(snapshot: Snapshot, group: list[Term]) -> tantivy.Query | None:
    """A term with its corrections: any of them."""
    queries = [query for term in group if (query := term_query(snapshot, term)) is not None]
    if not queries:
        return None
    if len(queries) == 1:
        return queries[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, query) for query in queries])


def text_query(snapshot: Snapshot, groups: list[list[Term]], min_should_match: int) -> TextQuery:
    """The query of expanded terms (each group: a term, then its corrections)."""
    should: list[tantivy.Query] = []
    must: list[tantivy.Query] = []
    excluded: list[tantivy.Query] = []
    for group in groups:
        query = _group(snapshot, group)
        occur = group[0].occur
        if query is None:
            if occur is Occur.SHOULD:
                min_should_match -= 1  # It could never match: it does not count.
            continue
        {Occur.SHOULD: should, Occur.MUST: must, Occur.MUST_NOT: excluded}[occur].append(query)
    if not should and not must:
        return TextQuery(None, excluded)
    clauses = [(tantivy.Occur.Should, query) for query in should]
    clauses += [(tantivy.Occur.Must, query) for query in must]
    if len(clauses) == 1 and should:
        return TextQuery(should[0], excluded)
    minimum = max(0, min(min_should_match, len(should)))
    if minimum <= 1:
        return TextQuery(tantivy.Query.boolean_query(clauses, minimum), excluded)
    # Scored as "any of them", selected by "the minimum of them" (scoring 0):
    # tantivy's minimum-match scorer sums the terms' f32 scores in an order
    # that depends on document addresses, so the same document scored a bit
    # apart (1 ulp) in two indexes holding the same documents written in
    # another order; the union sums in clause order.
    scored = tantivy.Query.boolean_query(clauses)
    minimum_met = tantivy.Query.const_score_query(
        tantivy.Query.boolean_query(clauses, minimum), 0.0
    )
    return TextQuery(
        tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, scored), (tantivy.Occur.Must, minimum_met)]
        ),
        excluded,
    )


def contains(snapshot: Snapshot, term: Term, address: tantivy.DocAddress) -> bool:
    """Whether the document at the address matches the term (for explain)."""
    query = term_query(snapshot, term)
    if query is None:
        return False
    try:
        query.explain(snapshot.searcher, address)
    except ValueError:  # "Document #n does not match"
        return False
    return True
