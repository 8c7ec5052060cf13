"""From a search request to what the index runs: terms, filter, and notes.

The memory service and the executor's local fallback both plan searches
here, so query understanding, the filter and the free text mean the same
wherever a search is answered. The filter (the request's and the one
understood from the query) is hard; the free text left over ranks, read as
reading.py says: stop words dropped, a minimum of ranked words to match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from memory_service.search.filter import MAX_FILTER_LENGTH, FilterError, Node, compile_filter
from memory_service.search.query import MAX_QUERY_LENGTH, Occur, QueryError, Term, format_query
from memory_service.search.reading import TextReading, read_text
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.search.understanding import Vocabulary, combine, understand


@dataclass(frozen=True)
class SearchPlan:
    """What to search for, and what was actually applied."""

    terms: list[Term]
    condition: Node | None
    applied_filter: str
    applied_query: str  # The terms as query text; parses back to the same terms.
    interpretations: tuple[str, ...] = ()
    # Words of the query that do not rank (stop words), in the order met.
    dropped_words: tuple[str, ...] = ()
    min_should_match: int = 1  # Of the SHOULD terms; 0 when there is none.

    @property
    def ranked_text(self) -> str:
        """The words that rank or are required, for what compares text by meaning."""
        return " ".join(
            " ".join(term.words) for term in self.terms if term.occur is not Occur.MUST_NOT
        )


@dataclass
class PlanError(Exception):
    """The request cannot be searched; (field, problem) pairs say why."""

    violations: list[tuple[str, str]] = field(default_factory=list)


# Query understanding builds rules from the namespace's vocabulary, so its
# cost grows with it: only entries the query can name are kept, at most
# this many of each kind (in the vocabulary's order), whatever the data holds.
MAX_UNDERSTOOD_TEMPLATES = 32
MAX_UNDERSTOOD_FIELDS = 32
_ID_WORD = re.compile(r"[^\W_]+")
_SPOKEN_WORD = re.compile(r"[A-Za-z]+", re.IGNORECASE)  # What understanding reads as words.
_ARTICLES = frozenset({"a", "an", "the"})  # Optional in a template's name.
# Ignoring case, `re` matches these to ASCII letters; casefold() does not.
_FOLDS_TO_ASCII = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def size_violations(query: str, filter_text: str) -> list[tuple[str, str]]:
    """The request's texts over their limits: checked before anything reads them."""
    found = []
    if len(query) > MAX_QUERY_LENGTH:
        found.append(("query", f"longer than {MAX_QUERY_LENGTH} characters"))
    if len(filter_text) > MAX_FILTER_LENGTH:
        found.append(("filter", f"longer than {MAX_FILTER_LENGTH} characters"))
    return found


def _fold(text: str) -> str:
    return text.translate(_FOLDS_TO_ASCII).casefold()


def _nameable(
    query: str, templates: Sequence[str], numeric: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The templates and question ids the query may name, each list capped.

    A template rule needs every word of the id as a whole word of the query;
    a question needs one of its id words (or its plural or singular) among
    the query's words. Anything else can never match, so dropping it changes
    no understanding; the caps bound what a huge vocabulary costs.
    """
    runs = {_fold(word) for word in _ID_WORD.findall(query)}
    named = [
        template
        for template in templates
        if all(
            _fold(word) in runs
            for word in _ID_WORD.findall(template)
            if word.lower() not in _ARTICLES
        )
    ][:MAX_UNDERSTOOD_TEMPLATES]
    spoken = {_fold(word) for word in _SPOKEN_WORD.findall(query)}
    spoken |= {word + "s" for word in spoken} | {word[:-1] for word in spoken if word[-1:] == "s"}
    fields = [
        field_id
        for field_id in numeric
        if any(_fold(word) in spoken for word in re.split(r"[_-]+", field_id) if word)
    ][:MAX_UNDERSTOOD_FIELDS]
    return named, fields


def plan_search(
    query: str,
    filter_text: str,
    understand_query: bool,
    vocabulary: tuple[list[str], list[str]],
    now: datetime,
) -> SearchPlan:
    """Plans a search; raises PlanError listing every problem at once."""
    violations = size_violations(query, filter_text)
    if violations:
        raise PlanError(violations)  # Before any parsing, so what each costs is bounded.
    try:
        compile_filter(filter_text, PATTERN_SCHEMA)
    except FilterError as error:
        violations.append(("filter", str(error)))
    applied_filter, remaining = filter_text, query
    notes: tuple[str, ...] = ()
    filler: tuple[str, ...] = ()
    if understand_query and query.strip() and not violations:
        templates, numeric = _nameable(query, *vocabulary)
        words = Vocabulary(
            templates={template: template.replace("_", " ") for template in templates},
            numeric_fields=numeric,
        )
        understood = understand(query, words, now)
        applied_filter = combine(filter_text, understood.filter_text)
        remaining, notes = understood.remaining_query, understood.interpretations
        filler = understood.dropped_words
    reading = TextReading([], (), 0)
    if remaining.strip():
        try:
            reading = read_text(remaining, has_filter=bool(applied_filter.strip()))
        except QueryError as error:
            if not applied_filter:
                violations.append(("query", str(error)))
    terms = reading.terms
    if not terms and not applied_filter.strip() and not violations:
        violations.append(("query", "required: give words to search for, or a filter"))
    if violations:
        raise PlanError(violations)
    return SearchPlan(
        terms=terms,
        condition=compile_filter(applied_filter, PATTERN_SCHEMA),
        applied_filter=applied_filter,
        applied_query=format_query(terms),
        interpretations=notes,
        dropped_words=tuple(dict.fromkeys((*filler, *reading.dropped_words))),
        min_should_match=reading.min_should_match,
    )
