"""Query understanding's rules for number questions (see form_lexicon.py):
"test coverage > 80%", "at least 90 percent coverage", "coverage 80%",
"cvss 9 or more", "coverage between 70 and 90", "downtime over 30 minutes".

The words next to the number name the questions: every word (stop words
aside, and not only generic ones like "max" or "required") must be in a
question's id or label. Among the questions named, the templates named in
the query (or the caller's filter) decide first; then the unit ("%" prefers
a question asking for a percentage) and the range (a value the question
cannot hold drops it); then closeness: how many of the words are in the id,
then whether the label uses any. What is left is ORed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from memory_service.search.filter import And, Node, Or, Restriction
from memory_service.search.form_lexicon import Question, stem
from memory_service.search.phrases import (
    CMP,
    CONNECTORS,
    DASH,
    FILLER,
    NUM,
    PCT,
    WEAK_ID_WORDS,
    Candidate,
    Context,
    Rule,
    canon,
    comparator_op,
    number_value,
    restriction,
    rule_regex,
)

_FILLER_KEYS = frozenset(stem(word) for word in FILLER)
_WEAK_KEYS = frozenset(stem(word) for word in WEAK_ID_WORDS)


def _closeness(question: Question, keys: Sequence[str]) -> tuple[int, bool]:
    """How many words are in the question's id, then whether its label uses any."""
    return sum(key in question.id_keys for key in keys), any(k in question.label_keys for k in keys)


def number_questions(
    keys: Sequence[str], values: Sequence[float], percent: bool, context: Context, by_id: bool
) -> list[str]:
    """The number questions the words name (by_id: their ids alone),
    narrowed by the named templates, the unit and range, then closeness."""
    content = [key for key in keys if key not in _FILLER_KEYS]
    if not content or all(key in _WEAK_KEYS for key in content):
        return []
    questions = context.forms.number_questions(content)
    if by_id:
        questions = [q for q in questions if q.id_keys.issuperset(content)]
    if not questions:
        return []
    named = [q for q in questions if q.templates & context.templates]
    questions = named or questions
    if percent:
        questions = [q for q in questions if q.unit == "percent"] or questions
    fits = [
        q
        for q in questions
        if all(
            (q.minimum is None or value >= q.minimum) and (q.maximum is None or value <= q.maximum)
            for value in values
        )
    ]
    questions = fits or questions
    best = max(_closeness(q, content) for q in questions)
    return sorted(q.id for q in questions if _closeness(q, content) == best)


def _word_spans(match: re.Match[str], context: Context) -> list[tuple[int, int, str]]:
    base = match.start("words")
    spans = [
        (base + word.start(), base + word.end(), canon(word.group()))
        for word in re.finditer(r"[A-Za-z]+", match.group("words"), re.IGNORECASE)
    ]
    # Words of a template's name belong to it, not to a question.
    return [
        span for span in spans if not any(s < span[1] and span[0] < e for s, e in context.spans)
    ]


def _nearest_run(
    spans: list[tuple[int, int, str]], context: Context, before: bool
) -> list[tuple[int, int, str]]:
    """The words next to the number, up to a template's name."""
    cut = [
        index for index in range(1, len(spans)) if _broken(spans[index - 1], spans[index], context)
    ]
    if not cut:
        return spans
    return spans[cut[-1] :] if before else spans[: cut[0]]


def _broken(left: tuple[int, int, str], right: tuple[int, int, str], context: Context) -> bool:
    return any(left[1] <= s and e <= right[0] for s, e in context.spans)


def _number_terms(
    match: re.Match[str],
    keys: Sequence[str],
    bounds: Sequence[tuple[str, str]],
    context: Context,
    linked: bool = False,
) -> tuple[Node, ...]:
    """The terms `question op value` for each (op, number text) of bounds,
    on the questions the words name (an OR of each question's terms). A
    bare number, with no comparison, unit, range or link ("is", "of", ":"),
    needs words of the question's id ("cvss 7", not "release 2")."""
    values = [number_value(text) for _, text in bounds]
    if any(value is None for value in values):
        return ()
    groups = match.groupdict()
    percent = any((groups.get(name) or "").strip() for name in ("pct", "pct2"))
    compared = groups.get("cmp") or groups.get("orx") or groups.get("plus")
    by_id = not (compared or linked or percent or len(bounds) > 1)
    checked = [value for value in values if value is not None]
    questions = number_questions(keys, checked, percent, context, by_id)
    per_question = [
        tuple(
            restriction(f"form_responses.{qid}", op, value)
            for (op, _), value in zip(bounds, checked, strict=True)
        )
        for qid in questions
    ]
    if len(per_question) <= 1:
        return per_question[0] if per_question else ()
    return (Or(tuple(terms[0] if len(terms) == 1 else And(terms) for terms in per_question)),)


def _keys(spans: Sequence[tuple[int, int, str]]) -> list[str]:
    return [stem(word) for _, _, word in spans]


def _number_before(match: re.Match[str], context: Context) -> Candidate | None:
    """`test coverage > 80%`, `coverage of 80%`: the longest run of words
    just before the number that names number questions."""
    spans = _nearest_run(_word_spans(match, context), context, before=True)
    linked = bool(match.groupdict().get("link"))
    while spans and spans[-1][2] in CONNECTORS | {"at", "to"}:  # "coverage is at least 90".
        spans.pop()
        linked = True
    for first in range(len(spans)):
        if spans[first][2] in FILLER:
            continue
        terms = _number_terms(match, _keys(spans[first:]), _bounds(match), context, linked)
        if terms:
            said = _keys(spans[first:])
            return Candidate(spans[first][0], _unit_end(match, terms, said, context), terms)
    return None


_NEXT_WORD = re.compile(r"\s+([A-Za-z]+)\b")


def _unit_end(
    match: re.Match[str], terms: Sequence[Node], said: Sequence[str], context: Context
) -> int:
    """The end of the match, or of the word after it when that is the last
    word of the id of a question the terms name, as a unit often is, and was
    not said before the number ("downtime over 30 minutes")."""
    following = _NEXT_WORD.match(match.string, match.end())
    if following is None:
        return match.end()
    named: set[str] = set()
    stack = list(terms)
    while stack:
        node = stack.pop()
        if isinstance(node, Restriction):
            named.add(node.path[-1])
        elif isinstance(node, And | Or):
            stack.extend(node.children)
    units = {stem(canon(re.split(r"[_-]", qid)[-1])) for qid in named} - set(said)
    return following.end() if stem(canon(following.group(1))) in units else match.end()


def _bounds(match: re.Match[str]) -> list[tuple[str, str]]:
    """(op, number text) of the match: a comparison, a range, or equality."""
    groups = match.groupdict()
    if groups.get("hi"):
        low, high = sorted((groups["n"], groups["hi"]), key=lambda text: number_value(text) or 0)
        return [(">=", low), ("<=", high)]
    if groups.get("cmp"):
        return [(comparator_op(groups["cmp"]), groups["n"])]
    if groups.get("plus"):
        return [(">=", groups["n"])]
    if groups.get("orx"):
        return [("<=" if canon(groups["orx"]) in _OR_LESS else ">=", groups["n"])]
    return [("=", groups["n"])]


_OR_LESS = frozenset({"less", "fewer", "lower", "below", "under", "smaller"})


def _number_after(match: re.Match[str], context: Context) -> Candidate | None:
    """`at least 80% coverage`, `90 percent coverage`: the longest run of
    words just after the number that names number questions."""
    spans = _nearest_run(_word_spans(match, context), context, before=False)
    groups = match.groupdict()
    if not groups.get("cmp") and not (groups.get("pct") or "").strip():
        return None  # "3 green runs": without a comparison, only "80% coverage".
    for last in range(len(spans), 0, -1):
        if spans[last - 1][2] in FILLER:
            continue
        terms = _number_terms(match, _keys(spans[:last]), _bounds(match), context)
        if terms:
            return Candidate(match.start(), spans[last - 1][1], terms)
    return None


_WORDS = r"(?P<words>[A-Za-z]+(?:[\s_-]+[A-Za-z]+){0,5})"
_PCT = rf"(?P<pct>{PCT})"
# A bare number (no comparison, no ":" or "=") that agents follow counts them:
# "failed 2 premium agents" (or "premium tier agents", "premium models") is no
# answer of 2 to "fail on CVSS".
_UNLESS_COUNTING_AGENTS = (
    r"(?(link)|(?!\+?(?:\s+or\s+[A-Za-z]+)?\s+"
    r"(?:(?:cheap|capable|premium)[\s-]+(?:tiers?[\s-]+)?(?:agents?|models?|llms?)|agents?)\b))"
)
NUMBER_BEFORE_RULES: tuple[Rule, ...] = (
    (rule_regex(rf"\b{_WORDS}\s*(?P<cmp>{CMP})\s*(?P<n>{NUM}){_PCT}(?!\w)"), _number_before),
)
NUMBER_AFTER_RULES: tuple[Rule, ...] = (
    (rule_regex(rf"(?P<cmp>{CMP})\s*(?P<n>{NUM}){_PCT}\s+{_WORDS}\b"), _number_after),
)
# Without a comparison: "coverage between 70 and 90", "coverage of 80%",
# "coverage: 80", "cvss 7" (a bare number only after words of a question's id),
# "80% coverage".
NUMBER_BARE_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            rf"\b{_WORDS}\s*(?:(?P<link>[:=])\s*)?(?P<n>{NUM}){_PCT}\s*(?:(?P<plus>\+)"
            r"|\s+or\s+(?P<orx>more|greater|higher|above|over|less|fewer|lower|below|under"
            rf"|smaller)\b){_UNLESS_COUNTING_AGENTS}"
        ),
        _number_before,
    ),
    (
        rule_regex(
            rf"\b{_WORDS}\s+(?:between|from)\s+(?P<n>{NUM}){_PCT}\s*(?:{DASH}|\s(?:and|to)\s)"
            rf"\s*(?P<hi>{NUM})(?P<pct2>{PCT})(?!\w)"
        ),
        _number_before,
    ),
    (
        rule_regex(
            rf"\b{_WORDS}\s+(?P<n>{NUM}){_PCT}\s*{DASH}\s*(?P<hi>{NUM})(?P<pct2>{PCT})(?!\w)"
        ),
        _number_before,
    ),
    (
        rule_regex(
            rf"\b{_WORDS}\s*(?:(?P<link>[:=])\s*)?(?P<n>{NUM}){_PCT}(?!\w)"
            rf"{_UNLESS_COUNTING_AGENTS}"
        ),
        _number_before,
    ),
    (rule_regex(rf"(?P<n>{NUM}){_PCT}\s+{_WORDS}\b"), _number_after),
)
