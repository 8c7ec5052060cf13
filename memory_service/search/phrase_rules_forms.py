"""Query understanding's rules over the templates' forms (see form_lexicon.py):
template names, option values and yes/no questions (number questions are in
phrase_rules_numbers.py).

Which question a phrase means, when several could:
1. the templates named in the same query (or in the caller's filter) decide
   among questions they ask, if any does;
2. then closeness: the questions with most of their words (id and label)
   within three words of the phrase;
3. what is left becomes an OR over the questions, shown in the filter.

A value's span grows over its question's words next to it ("test framework:
jest", "hipaa compliance", "a service that handles personal data"), so they
are not left to the free text.

An option value spelled like an everyday word ("go", "major") is read only
with context: its question's words within three words, a named template
offering it, or "in X" / "using X" before it; a value like "none" or
"other" only with its question's words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from memory_service.search.english import COMMON_WORDS
from memory_service.search.filter import Node, Or
from memory_service.search.form_lexicon import (
    ARTICLES,
    Found,
    Guard,
    Kind,
    Token,
    stem,
    tokens_of,
)
from memory_service.search.phrases import (
    CONNECTORS,
    FILLER,
    Candidate,
    Context,
    restriction,
)

_WINDOW = 3  # How many words either side of a value count as its context.
_TEMPLATE = stem("template")
_WORKFLOW_NOUNS = frozenset(
    stem(w) for w in ("workflows", "runs", "patterns", "jobs", "executions")
)
_NEGATORS = frozenset({"no", "not", "without", "never", "non"})
_CONTRACTED = frozenset({"doesn", "don", "didn", "isn", "wasn", "aren", "weren", "hasn", "haven"})
_SKIPPABLE = ARTICLES | {"any"}
_FRAMES = frozenset({"in", "using", "uses", "used"})  # "written in go", "using rust".
_LINKS = frozenset({*CONNECTORS, "to", "on", "in", "at", "for", "with", "by", "as", "set"})
_YES = frozenset({"yes", "true", "on"})
_NO = frozenset({"no", "false", "off"})
_ATTACHED = re.compile(r"[\s_-]*[:=]?[\s_-]*")
_FILLER_KEYS = frozenset(stem(word) for word in FILLER)
# Crossed only on the way to a word of the question ("service that handles personal data").
_BRIDGES = _LINKS | _FILLER_KEYS
COMMON_KEYS = frozenset(stem(word) for word in COMMON_WORDS)


def _attached(token: Token) -> bool:
    """Only separators, maybe one : or =, between the token and the one before."""
    return bool(token.gap) and _ATTACHED.fullmatch(token.gap) is not None


def any_of(
    prefix: str, op: str, value: str | float | bool, targets: Iterable[str], path: str = ""
) -> Node:
    """`prefix.target op value` for each target, ORed; with `path`, `path op
    target` for each target instead."""
    terms = tuple(
        restriction(path, op, target) if path else restriction(f"{prefix}.{target}", op, value)
        for target in targets
    )
    return terms[0] if len(terms) == 1 else Or(terms)


def _in_context(
    targets: Sequence[str], offers: Mapping[str, frozenset[str]], named: frozenset[str]
) -> list[str]:
    """The targets a named template offers, if any does; else all of them."""
    kept = [target for target in targets if offers[target] & named]
    return kept or list(targets)


# Templates.


def _template_span(
    tokens: Sequence[Token], found: Found, loose: bool = False
) -> tuple[int, int] | None:
    """A template phrase's span with "template" before or after it; a
    one-word name needs "template" or a workflow noun ("runs") after it,
    unless `loose`."""
    first, last = found.first, found.last
    before = tokens[first - 1] if first > 0 else None
    after = tokens[last + 1] if last + 1 < len(tokens) else None
    prefixed = before is not None and before.key == _TEMPLATE and _attached(tokens[first])
    suffixed = after is not None and after.key == _TEMPLATE and after.joined
    noun_after = after is not None and after.joined and after.key in _WORKFLOW_NOUNS
    if len(found.phrase.keys) == 1 and not (prefixed or suffixed or noun_after or loose):
        return None
    start = before.start if prefixed and before is not None else tokens[first].start
    end = after.end if suffixed and after is not None else tokens[last].end
    return start, end


def _templates_found(
    text: str, context: Context, loose: bool = False
) -> list[tuple[int, int, tuple[str, ...]]]:
    tokens = tokens_of(text)
    found: list[tuple[int, int, tuple[str, ...]]] = []
    for match in context.forms.find(tokens):
        meaning = match.phrase.meaning
        span = _template_span(tokens, match, loose) if meaning.kind is Kind.TEMPLATE else None
        if span is not None:
            found.append((*span, tuple(target for target, _ in meaning.targets)))
    return found


def template_mentions(text: str, context: Context) -> list[Candidate]:
    """Template names in the text, as filters on the template id."""
    return [
        Candidate(start, end, (any_of("", "=", "", ids, path="template_id"),))
        for start, end, ids in _templates_found(text, context)
    ]


def named_templates(
    text: str, context: Context
) -> tuple[frozenset[str], tuple[tuple[int, int], ...]]:
    """The templates the text names, and where their names are. For this, a
    one-word name needs no "runs" after it: "documentation with coverage over
    90" asks about documentation's coverage question, though the word alone
    is too common to filter on."""
    found = _templates_found(text, context, loose=True)
    named = frozenset(template for _, _, ids in found for template in ids)
    return named, tuple((start, end) for start, end, _ in found)


# Option values and yes/no questions.


def _near_keys(tokens: Sequence[Token], first: int, last: int) -> set[str]:
    """The words within _WINDOW words either side, stop words not counted."""
    before = [t.key for t in reversed(tokens[:first]) if t.key not in _FILLER_KEYS][:_WINDOW]
    after = [t.key for t in tokens[last + 1 :] if t.key not in _FILLER_KEYS][:_WINDOW]
    return {*before, *after}


def _extend(
    tokens: Sequence[Token], first: int, last: int, words: frozenset[str], taken: set[int]
) -> tuple[int, int]:
    """The span grown over the question's own words next to it ("test
    framework: jest", "hipaa compliance"), through linking words, but not
    into another value's words (`taken`)."""
    at = first
    while at > 0 and _attached(tokens[at]) and at - 1 not in taken:
        key = tokens[at - 1].key
        if key not in words and key not in _BRIDGES:
            break
        at -= 1
        if key in words:
            first = at
    at = last
    while at + 1 < len(tokens) and _attached(tokens[at + 1]) and at + 1 not in taken:
        key = tokens[at + 1].key
        if key not in words and key not in _BRIDGES:
            break
        at += 1
        if key in words:
            last = at
    return first, last


def _frame(tokens: Sequence[Token], first: int) -> int | None:
    """The index "in" / "using" / "written in" starts at, just before first."""
    at = first - 1
    if at >= 0 and tokens[at].key in ARTICLES:
        at -= 1
    if at < 0 or tokens[at].word not in _FRAMES:
        return None
    if tokens[at].word == "in" and at > 0 and tokens[at - 1].word == "written":
        return at - 1
    return at


def _option_questions(
    tokens: Sequence[Token], found: Found, context: Context
) -> tuple[list[str], int | None] | None:
    """The questions an option value answers here, and where an "in X" frame
    that licensed it starts; None if it needs context it does not have."""
    meaning = found.phrase.meaning
    offers = dict(meaning.targets)
    questions = _in_context(list(offers), offers, context.templates)
    near = _near_keys(tokens, found.first, found.last)
    scores = {qid: len(near & context.forms.questions[qid].words) for qid in questions}
    best = max(scores.values())
    if best:
        questions = [qid for qid in questions if scores[qid] == best]
    if meaning.guard is Guard.NONE:
        return questions, None
    if found.fuzzy:
        return None  # A misspelt everyday word is just that.
    # Everyday words nearby ("tests", "version") say too little to tie an
    # everyday value ("integration", "minor") to a question.
    telling = {token_key for token_key in near if token_key not in COMMON_KEYS}
    said = any(telling & context.forms.questions[qid].words for qid in questions)
    if meaning.guard is Guard.FUNCTION:
        return (questions, None) if said else None
    templated = any(offers[qid] & context.templates for qid in questions)
    frame = _frame(tokens, found.first)
    return (questions, frame) if said or templated or frame is not None else None


def _option(
    tokens: Sequence[Token],
    found: Found,
    read: tuple[list[str], int | None],
    context: Context,
    taken: set[int],
) -> Candidate:
    questions, frame = read
    words = frozenset().union(*(context.forms.questions[qid].words for qid in questions))
    first, last = _extend(tokens, found.first, found.last, words, taken)
    if frame is not None and first == found.first:
        first = frame
    term = any_of("form_responses", "=", found.phrase.meaning.value, questions)
    return Candidate(tokens[first].start, tokens[last].end, (term,))


def _negated(tokens: Sequence[Token], first: int) -> int | None:
    """Where a negation just before tokens[first] starts ("without",
    "does not", "doesn't", "no"), if there is one."""
    at = first - 1
    if at >= 0 and tokens[at].word in _SKIPPABLE:
        at -= 1
    if at < 0:
        return None
    if tokens[at].word in _NEGATORS:
        return at
    if tokens[at].word == "t" and at > 0 and tokens[at - 1].word in _CONTRACTED:
        return at - 1
    return None


def _boolean(tokens: Sequence[Token], found: Found, context: Context, taken: set[int]) -> Candidate:
    offers = dict(found.phrase.meaning.targets)
    questions = _in_context(list(offers), offers, context.templates)
    negation = _negated(tokens, found.first)
    value = negation is None
    last = found.last
    answer = tokens[last + 1] if last + 1 < len(tokens) else None
    if answer is not None and _attached(answer) and answer.word in _YES | _NO:
        value, last = (answer.word in _YES) == value, last + 1  # "internet facing: no".
    first = found.first if negation is None else negation
    words = frozenset().union(*(context.forms.questions[qid].words for qid in questions))
    first, last = _extend(tokens, first, last, words, taken)
    term = any_of("form_responses", "=", value, questions)
    return Candidate(tokens[first].start, tokens[last].end, (term,))


def _said_as_yes_no(tokens: Sequence[Token], found: Found) -> bool:
    """A guarded yes/no phrase ("tests" of has_tests) needs "with", "without",
    "no" or "not" right before it."""
    if found.phrase.meaning.guard is Guard.NONE:
        return True
    return _negated(tokens, found.first) is not None or _with(tokens, found.first)


def _with(tokens: Sequence[Token], first: int) -> bool:
    at = first - 1
    if at >= 0 and tokens[at].word in _SKIPPABLE:
        at -= 1
    return at >= 0 and tokens[at].word == "with"


def _no_option(tokens: Sequence[Token], found: Found, context: Context) -> Candidate | None:
    """ "no publish target": the question's option "none"."""
    negation = _negated(tokens, found.first)
    if negation is None:
        return None
    offers = dict(found.phrase.meaning.targets)
    questions = _in_context(list(offers), offers, context.templates)
    term = any_of("form_responses", "=", found.phrase.meaning.value, questions)
    return Candidate(tokens[negation].start, tokens[found.last].end, (term,))


def value_mentions(text: str, context: Context) -> list[Candidate]:
    """Option values and yes/no questions, as filters on their questions."""
    tokens = tokens_of(text)
    options: list[tuple[Found, tuple[list[str], int | None]]] = []
    booleans: list[Found] = []
    found: list[Candidate | None] = []
    for match in context.forms.find(tokens):
        kind = match.phrase.meaning.kind
        if kind is Kind.BOOLEAN and _said_as_yes_no(tokens, match):
            booleans.append(match)
        elif kind is Kind.OPTION and (read := _option_questions(tokens, match, context)):
            options.append((match, read))
        elif kind is Kind.NO_OPTION:
            found.append(_no_option(tokens, match, context))
    # A value's span grows over its question's words, never over another value.
    taken = {i for m in [*booleans, *(m for m, _ in options)] for i in range(m.first, m.last + 1)}
    found += [_option(tokens, match, read, context, taken) for match, read in options]
    found += [_boolean(tokens, match, context, taken) for match in booleans]
    return [candidate for candidate in found if candidate is not None]
