"""From a search request to what the index runs: terms, filter, and notes.

The memory service and the executor's local fallback both plan searches
here, so query understanding, the filter and the free text mean the same
wherever a search is answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from memory_service.search.filter import FilterError, Node, compile_filter
from memory_service.search.query import QueryError, Term, parse_query
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.search.understanding import Vocabulary, combine, understand


@dataclass(frozen=True)
class SearchPlan:
    """What to search for, and what was actually applied."""

    terms: list[Term]
    condition: Node | None
    applied_filter: str
    applied_query: str
    interpretations: tuple[str, ...] = ()


@dataclass
class PlanError(Exception):
    """The request cannot be searched; (field, problem) pairs say why."""

    violations: list[tuple[str, str]] = field(default_factory=list)


def plan_search(
    query: str,
    filter_text: str,
    understand_query: bool,
    vocabulary: tuple[list[str], list[str]],
    now: datetime,
) -> SearchPlan:
    """Plans a search; raises PlanError listing every problem at once."""
    violations: list[tuple[str, str]] = []
    try:
        compile_filter(filter_text, PATTERN_SCHEMA)
    except FilterError as error:
        violations.append(("filter", str(error)))
    applied_filter, remaining = filter_text, query
    notes: tuple[str, ...] = ()
    if understand_query and query.strip() and not violations:
        templates, numeric = vocabulary
        words = Vocabulary(
            templates={template: template.replace("_", " ") for template in templates},
            numeric_fields=numeric,
        )
        understood = understand(query, words, now)
        applied_filter = combine(filter_text, understood.filter_text)
        remaining, notes = understood.remaining_query, understood.interpretations
    terms: list[Term] = []
    if remaining.strip():
        try:
            terms = parse_query(remaining)
        except QueryError as error:
            if not applied_filter:
                violations.append(("query", str(error)))
    if not terms and not applied_filter.strip() and not violations:
        violations.append(("query", "required: give words to search for, or a filter"))
    if violations:
        raise PlanError(violations)
    return SearchPlan(
        terms=terms,
        condition=compile_filter(applied_filter, PATTERN_SCHEMA),
        applied_filter=applied_filter,
        applied_query=" ".join(" ".join(t.words) + ("*" if t.prefix else "") for t in terms),
        interpretations=notes,
    )
