"""Query understanding: common phrasings in free text become filter terms.

"failed publish runs last week that used premium agents" becomes the filter
`success = false AND create_time >= "..." AND agents.tier = "premium"` and the
free text "publish". Rules are regular expressions, or phrase finders over
the templates' forms (phrase_rules_forms.py), tried in groups, in a fixed
order: numeric conditions (cost, agent count, number questions) first because
they are the most specific, then time, template names, option values and
yes/no questions, tiers and success words. The templates a query names (and
those the caller's filter selects) are found first: they settle which
question an ambiguous word means.
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

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from memory_service.search.filter import (
    MAX_FILTER_LENGTH,
    And,
    FilterError,
    Node,
    Or,
    Restriction,
    Star,
    check_filter,
    parse_filter,
    to_text,
)
from memory_service.search.form_compile import compile_lexicon
from memory_service.search.form_lexicon import Lexicon
from memory_service.search.forms import EMPTY_FORMS, FormCatalog
from memory_service.search.phrase_rules import rule_groups
from memory_service.search.phrase_rules_forms import named_templates
from memory_service.search.phrases import FILLER, MASK, TOKEN, Candidate, Context, Finder, Rule
from memory_service.search.query import is_literal_token
from memory_service.search.schema import PATTERN_SCHEMA


@dataclass(frozen=True)
class Vocabulary:
    """What the rules may name besides the fixed pattern fields: the forms'
    catalog, and the ids the data holds that it may not know."""

    templates: Mapping[str, str]  # Template id -> human name ("Publish a Python package").
    numeric_fields: Sequence[str]  # Form question ids with number answers.
    forms: FormCatalog = EMPTY_FORMS

    def lexicon(self) -> Lexicon:
        """The compiled vocabulary (cached per catalog and data ids)."""
        return compile_lexicon(
            self.forms, tuple(self.templates.items()), tuple(self.numeric_fields)
        )


@dataclass(frozen=True)
class Understanding:
    """A query split into filter terms and the free text left over."""

    filter_text: str  # AIP-160 text of the derived terms ANDed; "" if none.
    remaining_query: str  # The free text left after removing consumed phrases; may be "".
    interpretations: tuple[str, ...]  # '"cost under $0.50" -> total_cost_usd < 0.5', ...
    dropped_words: tuple[str, ...] = ()  # Filler dropped next to consumed phrases.
    tree: Node | None = None  # filter_text as a checked tree.


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_KEYWORDS = frozenset({"AND", "OR", "NOT", "true", "false"})


def _is_valid(term: Node) -> bool:
    """Whether the term prints, parses back to itself and fits the pattern schema."""
    if _prints_back(term):  # Most terms: no parser needed (a relative time is new each second).
        try:
            return check_filter(term, PATTERN_SCHEMA) is not None
        except FilterError:
            return False
    return _parses_back(term)


def _prints_back(term: Node) -> bool:
    """A restriction on grammar names with a quoted, numeric or boolean value:
    what the parser would give back for it, without running the parser."""
    if not isinstance(term, Restriction) or term.bare or isinstance(term.value, Star):
        return False
    if not all(_NAME.fullmatch(name) and name not in _KEYWORDS for name in term.path):
        return False
    if isinstance(term.value, str):
        try:
            term.value.encode()  # A lone surrogate never parses back.
        except UnicodeEncodeError:
            return False
    return not isinstance(term.value, float) or math.isfinite(term.value)


@functools.lru_cache(maxsize=4096)
def _parses_back(term: Node) -> bool:
    try:
        return (
            parse_filter(to_text(term)) == term and check_filter(term, PATTERN_SCHEMA) is not None
        )
    except FilterError:
        return False


def _as_utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


_WHITESPACE_OR_NOT = re.compile(r"\s+|\S+")


def _collapsed(text: str) -> tuple[str, list[int]]:
    """The text with each whitespace run as one space, and for each of its
    characters (and its end) the position in `text` it came from."""
    pieces: list[str] = []
    origin: list[int] = []
    for piece in _WHITESPACE_OR_NOT.finditer(text):
        if piece.group().isspace():
            pieces.append(" ")
            origin.append(piece.start())
        else:
            pieces.append(piece.group())
            origin.extend(range(piece.start(), piece.end()))
    origin.append(len(text))
    return "".join(pieces), origin


def _in_query(origin: list[int], candidate: Candidate) -> tuple[int, int]:
    """A candidate's span in the query it was read from (see `_collapsed`)."""
    return origin[candidate.start], origin[candidate.end - 1] + 1


def _mask(text: str, start: int, end: int) -> str:
    return text[:start] + MASK * (end - start) + text[end:]


def _matches(rule: Rule | Finder, working: str, context: Context) -> list[Candidate]:
    if not isinstance(rule, tuple):
        return rule(working, context)
    pattern, handler = rule
    found: list[Candidate] = []
    for match in pattern.finditer(working):
        try:
            candidate = handler(match, context)
        except (ValueError, OverflowError):
            continue  # An impossible date or a window beyond the calendar: not a term.
        if candidate is not None:
            found.append(candidate)
    return found


def _candidates(rules: Sequence[Rule | Finder], working: str, context: Context) -> list[Candidate]:
    found = [
        candidate
        for rule in rules
        for candidate in _matches(rule, working, context)
        if candidate.end > candidate.start and all(_is_valid(term) for term in candidate.terms)
    ]
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


def understand(
    query: str,
    vocabulary: Vocabulary,
    now: datetime,
    filter_templates: frozenset[str] = frozenset(),
) -> Understanding:
    """Splits a free-text query into filter terms and the free text left over.

    filter_templates: the templates the caller's own filter selects, which
    settle ambiguous questions as a template named in the query does.
    """
    # Rules read the query with each run of whitespace as one space (tabs,
    # newlines, doubled spaces are no different words); `origin` maps back.
    working, origin = _collapsed(query)
    for token in TOKEN.finditer(working):
        if is_literal_token(token.group()):
            working = _mask(working, token.start(), token.end())
    lexicon = vocabulary.lexicon()
    named, spans = named_templates(working, Context(_as_utc(now), lexicon))
    context = Context(_as_utc(now), lexicon, named | filter_templates, spans)
    groups = rule_groups()
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
    consumed = [_in_query(origin, candidate) for candidate in accepted]
    for candidate, (start, end) in zip(accepted, consumed, strict=True):
        terms.update(dict.fromkeys(candidate.terms))
        phrase = " ".join(query[start:end].split())
        meaning = " AND ".join(
            f"({term_texts[term]})" if isinstance(term, Or) else term_texts[term]
            for term in candidate.terms
        )
        interpretations.append(f'"{phrase}" -> {meaning}')
    ordered = tuple(terms)
    tree: Node | None = None if not ordered else ordered[0] if len(ordered) == 1 else And(ordered)
    remaining, dropped = _remaining(query, consumed)
    return Understanding(to_text(tree), remaining, tuple(interpretations), dropped, tree)


def combine(user_filter: str, derived: str) -> str:
    """The AND of a user's filter and a derived one; "" when both are empty.

    Both are parsed and reprinted, so each side keeps its own grouping:
    `a OR b` and `c AND d` give `(a OR b) AND (c AND d)`. Raises FilterError
    if either does not parse.
    """
    return to_text(conjoin(parse_filter(user_filter), parse_filter(derived)))


def conjoin(user: Node | None, derived: Node | None) -> Node | None:
    """The tree `combine` prints: both ANDed, or whichever there is."""
    if user is None or derived is None:
        return user if derived is None else derived
    return And((user, derived))
