"""From a search request to what the index runs: terms, filter, and notes.

The memory service and the executor's local fallback both plan searches
here, so query understanding, the filter and the free text mean the same
wherever a search is answered. The filter (the request's and the one
understood from the query) is hard; the free text left over ranks, read as
reading.py says: stop words dropped, a minimum of ranked words to match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from memory_service.search.filter import (
    MAX_FILTER_LENGTH,
    And,
    FilterError,
    Node,
    Restriction,
    compile_filter,
    to_text,
)
from memory_service.search.form_compile import compile_lexicon
from memory_service.search.form_lexicon import ARTICLES, Question, keys_of
from memory_service.search.forms import EMPTY_FORMS, FormCatalog, QuestionKind
from memory_service.search.query import MAX_QUERY_LENGTH, Occur, QueryError, Term, format_query
from memory_service.search.reading import TextReading, read_text
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.search.understanding import Vocabulary, conjoin, understand


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


# Query understanding compiles the data's ids the catalog does not know into
# its vocabulary, so its cost grows with them: only ids the query can name
# are kept, at most this many of each kind (in the vocabulary's order),
# whatever the data holds.
MAX_UNDERSTOOD_TEMPLATES = 32
MAX_UNDERSTOOD_FIELDS = 32


def size_violations(query: str, filter_text: str) -> list[tuple[str, str]]:
    """The request's texts over their limits: checked before anything reads them."""
    found = []
    if len(query) > MAX_QUERY_LENGTH:
        found.append(("query", f"longer than {MAX_QUERY_LENGTH} characters"))
    if len(filter_text) > MAX_FILTER_LENGTH:
        found.append(("filter", f"longer than {MAX_FILTER_LENGTH} characters"))
    return found


def _nameable(
    query: str,
    templates: Sequence[str],
    numeric: Sequence[str],
    forms: FormCatalog = EMPTY_FORMS,
) -> tuple[list[str], list[str]]:
    """The data's template and number question ids the catalog does not know
    and the query may name, each list capped.

    A template needs every word of its id (articles aside) among the query's
    words, a question one of its id words, both compared by stem as
    understanding compares them (see form_lexicon.py). Anything else can
    never match, so dropping it changes no understanding; the caps bound
    what a huge vocabulary costs.
    """
    spoken = set(keys_of(query))
    known = compile_lexicon(forms, (), ())  # Cached per catalog.
    named = [
        template
        for template in templates
        if template not in known.templates
        and all(key in spoken for key in keys_of(template) if key not in ARTICLES)
    ][:MAX_UNDERSTOOD_TEMPLATES]
    fields = [
        field_id
        for field_id in numeric
        if not _catalog_number(known.questions.get(field_id))
        and any(key in spoken for key in keys_of(field_id))
    ][:MAX_UNDERSTOOD_FIELDS]
    return named, fields


def _catalog_number(question: Question | None) -> bool:
    return question is not None and question.kind is QuestionKind.NUMBER


def _selected_templates(condition: Node | None) -> frozenset[str]:
    """The template ids a filter requires (`template_id = "x"` ANDed at its top)."""
    terms = condition.children if isinstance(condition, And) else (condition,)
    return frozenset(
        str(term.value)
        for term in terms
        if isinstance(term, Restriction)
        and term.path == ("template_id",)
        and term.op == "="
        and isinstance(term.value, str)
    )


def plan_search(
    query: str,
    filter_text: str,
    understand_query: bool,
    vocabulary: tuple[list[str], list[str]],
    now: datetime,
    forms: FormCatalog = EMPTY_FORMS,
) -> SearchPlan:
    """Plans a search; raises PlanError listing every problem at once.

    vocabulary: the template ids and number question ids the data holds;
    forms: the templates' forms, whatever the data holds.
    """
    violations = size_violations(query, filter_text)
    if violations:
        raise PlanError(violations)  # Before any parsing, so what each costs is bounded.
    user_condition: Node | None = None
    try:
        user_condition = compile_filter(filter_text, PATTERN_SCHEMA)
    except FilterError as error:
        violations.append(("filter", str(error)))
    applied_filter, remaining, condition = filter_text, query, user_condition
    notes: tuple[str, ...] = ()
    filler: tuple[str, ...] = ()
    if understand_query and query.strip() and not violations:
        templates, numeric = _nameable(query, *vocabulary, forms)
        words = Vocabulary(
            templates={template: template.replace("_", " ") for template in templates},
            numeric_fields=numeric,
            forms=forms,
        )
        understood = understand(query, words, now, _selected_templates(user_condition))
        # The trees, not their texts: no filter is parsed twice.
        condition = conjoin(user_condition, understood.tree)
        applied_filter = to_text(condition)
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
        condition=condition,
        applied_filter=applied_filter,
        applied_query=format_query(terms),
        interpretations=notes,
        dropped_words=tuple(dict.fromkeys((*filler, *reading.dropped_words))),
        min_should_match=reading.min_should_match,
    )
