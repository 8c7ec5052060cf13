"""Query understanding: common phrasings in free text become filter terms.

"failed publish runs last week that used premium agents" becomes the filter
`success = false AND create_time >= "..." AND agents.tier = "premium"` and the
free text "publish". Rules are regular expressions tried in groups, in a fixed
order: numeric conditions (cost, agent count, form answers) first because they
are the most specific, then time, template names, tiers and success words.
Text a group consumes is hidden from later groups; within a group the longest
match wins (ties: the leftmost). Matching is case-insensitive and bounded by
word boundaries. Words inside "quoted phrases" are never consumed: quoting is
how a user asks for the literal words, and so is marking a word +required or
-excluded.

Every term is built as a filter tree, printed with to_text and checked against
PATTERN_SCHEMA before its phrase is consumed, so `filter_text` always
compiles; a term that does not check (a caller's field id that is no filter
name, a date out of range) leaves its phrase in the free text. Terms are ANDed
in the order their phrases appear; a phrase whose terms would push the filter
past MAX_FILTER_LENGTH stays free text too.

Time is computed from `now` in UTC (a naive `now` is taken as UTC):
"today", "this week" (from Monday), "this month", "this year" start at the
calendar boundary; "yesterday", "last month", "last year" (and "previous ...")
are bounded calendar windows; "last week", "past N days/hours/weeks/months",
"N days ago" are rolling windows ending now (so "last week" is the past seven
days); "since/before/after/until/on DATE" and "between DATE and DATE" use
RFC 3339 dates, a bare date meaning the whole day.

The remaining text is what no rule consumed. Filler words ("runs", "with",
"that", ...; the stop words of stopwords.py) and stray punctuation next to a
consumed phrase, directly or through other filler, are dropped (and listed in
`dropped_words`): they only tied the phrase to the sentence. Filler elsewhere
is the user's own wording and stays, for the free text's reading to judge
(reading.py: stop words do not rank); text left with nothing but filler
becomes "".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from memory_service.search.filter import (
    MAX_FILTER_LENGTH,
    And,
    FilterError,
    Node,
    check_filter,
    parse_filter,
    to_text,
)
from memory_service.search.phrase_rules import rule_groups
from memory_service.search.phrases import FIELD_NAME, FILLER, MASK, TOKEN, Candidate, Context, Rule
from memory_service.search.query import is_literal_token
from memory_service.search.schema import PATTERN_SCHEMA


@dataclass(frozen=True)
class Vocabulary:
    """What the rules may name besides the fixed pattern fields."""

    templates: Mapping[str, str]  # Template id -> human name ("Publish a Python package").
    numeric_fields: Sequence[str]  # Form question ids with number answers, in preference order.


@dataclass(frozen=True)
class Understanding:
    """A query split into filter terms and the free text left over."""

    filter_text: str  # AIP-160 text of the derived terms ANDed; "" if none.
    remaining_query: str  # The free text left after removing consumed phrases; may be "".
    interpretations: tuple[str, ...]  # '"cost under $0.50" -> total_cost_usd < 0.5', ...
    dropped_words: tuple[str, ...] = ()  # Filler dropped next to consumed phrases.


def _is_valid(term: Node) -> bool:
    """Whether the term prints, parses back to itself and fits the pattern schema."""
    try:
        return (
            parse_filter(to_text(term)) == term and check_filter(term, PATTERN_SCHEMA) is not None
        )
    except FilterError:
        return False


def _as_utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _fields(vocabulary: Vocabulary) -> tuple[tuple[str, tuple[str, ...]], ...]:
    fields: list[tuple[str, tuple[str, ...]]] = []
    for field_id in vocabulary.numeric_fields:
        if FIELD_NAME.fullmatch(field_id):  # Others cannot be named in a filter.
            words = tuple(word.lower() for word in re.split(r"[_-]+", field_id) if word)
            if words:
                fields.append((field_id, words))
    return tuple(fields)


def _mask(text: str, start: int, end: int) -> str:
    return text[:start] + MASK * (end - start) + text[end:]


def _candidates(rules: Sequence[Rule], working: str, context: Context) -> list[Candidate]:
    found: list[Candidate] = []
    for pattern, handler in rules:
        for match in pattern.finditer(working):
            try:
                candidate = handler(match, context)
            except (ValueError, OverflowError):
                continue  # An impossible date or a window beyond the calendar: not a term.
            if (
                candidate is not None
                and candidate.end > candidate.start
                and all(_is_valid(term) for term in candidate.terms)
            ):
                found.append(candidate)
    # Longest first, then leftmost.
    found.sort(key=lambda candidate: (candidate.start - candidate.end, candidate.start))
    return found


def _is_filler(token: str) -> bool:
    if is_literal_token(token):
        return False  # A quoted, +required or -excluded term is the user's own.
    return all(word in FILLER for word in re.findall(r"\w+", token.lower()))


def _remaining(query: str, spans: Sequence[tuple[int, int]]) -> tuple[str, tuple[str, ...]]:
    """The unconsumed text, minus filler left dangling next to a consumed
    phrase; and the words of that filler."""
    kept: list[str] = []
    dropped: list[str] = []
    cursor = 0
    bounds = [*spans, (len(query), len(query))]
    for index, (start, end) in enumerate(bounds):
        tokens = [token.group() for token in TOKEN.finditer(query[cursor:start])]
        first, last = 0, len(tokens)
        if index > 0:  # A consumed phrase precedes this piece.
            while first < last and _is_filler(tokens[first]):
                first += 1
        if index < len(spans):  # A consumed phrase follows it.
            while last > first and _is_filler(tokens[last - 1]):
                last -= 1
        kept.extend(tokens[first:last])
        dropped.extend(tokens[:first] + tokens[last:])
        cursor = end
    words = (word for token in dropped for word in re.findall(r"\w+", token.lower()))
    return " ".join(kept), tuple(dict.fromkeys(words))


def understand(query: str, vocabulary: Vocabulary, now: datetime) -> Understanding:
    """Splits a free-text query into filter terms and the free text left over."""
    context = Context(_as_utc(now), _fields(vocabulary))
    working = query
    for token in TOKEN.finditer(query):
        if is_literal_token(token.group()):
            working = _mask(working, token.start(), token.end())
    groups = rule_groups(vocabulary.templates)
    accepted: list[Candidate] = []
    term_texts: dict[Node, str] = {}
    length = -len(" AND ")  # Length of the joined filter so far.
    for rules in groups:
        taken: list[Candidate] = []
        for candidate in _candidates(rules, working, context):
            if any(candidate.start < other.end and other.start < candidate.end for other in taken):
                continue
            new = {term: to_text(term) for term in candidate.terms if term not in term_texts}
            extra = sum(len(text) + len(" AND ") for text in new.values())
            if length + extra > MAX_FILTER_LENGTH:
                continue  # Leave the phrase as free text rather than overflow the filter.
            length += extra
            term_texts.update(new)
            taken.append(candidate)
        for candidate in taken:
            working = _mask(working, candidate.start, candidate.end)
        accepted.extend(taken)
    accepted.sort(key=lambda candidate: candidate.start)
    terms: dict[Node, None] = {}
    interpretations: list[str] = []
    for candidate in accepted:
        terms.update(dict.fromkeys(candidate.terms))
        phrase = " ".join(query[candidate.start : candidate.end].split())
        meaning = " AND ".join(term_texts[term] for term in candidate.terms)
        interpretations.append(f'"{phrase}" -> {meaning}')
    ordered = tuple(terms)
    tree: Node | None = None if not ordered else ordered[0] if len(ordered) == 1 else And(ordered)
    spans = [(candidate.start, candidate.end) for candidate in accepted]
    remaining, dropped = _remaining(query, spans)
    return Understanding(to_text(tree), remaining, tuple(interpretations), dropped)


def combine(user_filter: str, derived: str) -> str:
    """The AND of a user's filter and a derived one; "" when both are empty.

    Both are parsed and reprinted, so each side keeps its own grouping:
    `a OR b` and `c AND d` give `(a OR b) AND (c AND d)`. Raises FilterError
    if either does not parse.
    """
    user, extra = parse_filter(user_filter), parse_filter(derived)
    if user is None or extra is None:
        return to_text(user if extra is None else extra)
    return to_text(And((user, extra)))
