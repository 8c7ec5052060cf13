"""Query understanding's rules, by subject (cost, agent count, numeric form
answers, template names here; time, tiers and escalation, success in their
own phrase_rules_* modules), and the order their groups are tried in (see
understanding.py for how a group's matches are chosen)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from memory_service.search.filter import Node
from memory_service.search.phrase_rules_success import SUCCESS_RULES
from memory_service.search.phrase_rules_tiers import TIER_NAMED_RULES, TIER_RULES
from memory_service.search.phrase_rules_time import TIME_RULES
from memory_service.search.phrases import (
    AMOUNT,
    ARTICLES,
    CMP,
    CONNECTORS,
    COST_WORD,
    DASH,
    MONEY,
    NUM,
    PCT,
    QTY,
    WEAK_ID_WORDS,
    Candidate,
    Context,
    Rule,
    canon,
    comparator_op,
    count_op,
    is_money,
    money_value,
    number_value,
    range_terms,
    restriction,
    rule_regex,
    whole_match,
)

# Cost.


def _cost_compare(match: re.Match[str], _: Context) -> Candidate | None:
    value = money_value(match.group("amount"))
    if value is None:
        return None
    return whole_match(
        match, restriction("total_cost_usd", comparator_op(match.group("cmp")), value)
    )


def _cost_relative(match: re.Match[str], _: Context) -> Candidate | None:
    value = money_value(match.group("amount"))
    if value is None:
        return None
    cheaper = canon(match.group("rel")).startswith(("cheaper", "less"))
    return whole_match(match, restriction("total_cost_usd", "<" if cheaper else ">", value))


def _cost_range(match: re.Match[str], _: Context) -> Candidate | None:
    low_text, high_text = match.group("lo"), match.group("hi")
    # Without a cost word only a money sign makes "between 2 and 4" a cost.
    if not match.groupdict().get("costword") and not (is_money(low_text) or is_money(high_text)):
        return None
    low, high = money_value(low_text), money_value(high_text)
    if low is None or high is None:
        return None
    return whole_match(match, *range_terms("total_cost_usd", low, high))


_COST_RULES: tuple[Rule, ...] = (
    (rule_regex(rf"{COST_WORD}\s*(?P<cmp>{CMP})\s*(?P<amount>{AMOUNT})(?!\w)"), _cost_compare),
    (rule_regex(rf"(?P<cmp>{CMP})\s*(?P<amount>{MONEY})(?!\w)"), _cost_compare),
    (
        rule_regex(
            rf"(?:{COST_WORD}\s*)?\b(?P<rel>cheaper|less\s+expensive|more\s+expensive|pricier"
            rf"|costlier)\s+than\s*(?P<amount>{AMOUNT})(?!\w)"
        ),
        _cost_relative,
    ),
    (
        rule_regex(
            rf"(?P<costword>{COST_WORD}\s*)?\b(?:between|from)\s+(?P<lo>{AMOUNT})"
            rf"(?:\s*{DASH}\s*|\s+(?:and|to)\s+)(?P<hi>{AMOUNT})(?!\w)"
        ),
        _cost_range,
    ),
    (
        rule_regex(rf"(?P<lo>{MONEY})(?:\s*{DASH}\s*|\s+to\s+)(?P<hi>{MONEY})(?!\w)"),
        _cost_range,
    ),
)

# Agent count.


def _agents_compare(match: re.Match[str], _: Context) -> Candidate | None:
    count = number_value(match.group("n"))
    if count is None:
        return None
    return whole_match(match, restriction("agent_count", count_op(match), count))


def _agents_range(match: re.Match[str], _: Context) -> Candidate | None:
    low, high = number_value(match.group("lo")), number_value(match.group("hi"))
    if low is None or high is None:
        return None
    return whole_match(match, *range_terms("agent_count", low, high))


_AGENT_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            rf"(?:\b(?:with|using|having|had|has|used)\s+)?(?:(?P<cmp>{CMP})\s*)?(?P<n>{QTY})"
            r"(?P<plus>\+)?(?:\s+or\s+(?P<orx>more|greater|above|fewer|less|below))?\s+agents?\b"
        ),
        _agents_compare,
    ),
    (
        rule_regex(
            rf"(?:\b(?:between|from)\s+)?(?P<lo>{QTY})(?:\s*{DASH}\s*|\s+(?:and|to)\s+)"
            rf"(?P<hi>{QTY})\s+agents?\b"
        ),
        _agents_range,
    ),
)

# Later than the rules above, so "3 agents more than 5 agents" is not read as "agents more than 5".
_AGENT_NAMED_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            r"\b(?:agent[\s_-]?count|number\s+of\s+agents|agents)\s*(?:(?:is|was|of)\s+|:\s*)?"
            rf"(?P<cmp>{CMP})\s*(?P<n>{QTY})(?!\w)"
        ),
        _agents_compare,
    ),
)

# Numeric form answers.


def _same_word(spoken: str, id_word: str) -> bool:
    return spoken in (id_word, id_word + "s") or spoken + "s" == id_word


def _field_for(words: Sequence[str], context: Context) -> str | None:
    """The first question whose id words include every spoken word."""
    if not words or all(word in WEAK_ID_WORDS for word in words):
        return None
    for field_id, id_words in context.fields:
        if all(any(_same_word(word, id_word) for id_word in id_words) for word in words):
            return field_id
    return None


def _word_spans(match: re.Match[str]) -> list[tuple[int, int, str]]:
    base = match.start("words")
    return [
        (base + word.start(), base + word.end(), canon(word.group()))
        for word in re.finditer(r"[A-Za-z]+", match.group("words"), re.IGNORECASE)
    ]


def _form_term(match: re.Match[str], field_id: str) -> Node | None:
    value = number_value(match.group("n"))
    if value is None:
        return None
    return restriction(f"form_responses.{field_id}", comparator_op(match.group("cmp")), value)


def _form_before(match: re.Match[str], context: Context) -> Candidate | None:
    """`test coverage > 80%`: the longest run of words just before the comparison."""
    spans = _word_spans(match)
    while spans and spans[-1][2] in CONNECTORS:  # "coverage is at least 90".
        spans.pop()
    for first in range(len(spans)):
        field_id = _field_for([word for _, _, word in spans[first:]], context)
        if field_id is not None:
            term = _form_term(match, field_id)
            return None if term is None else Candidate(spans[first][0], match.end(), (term,))
    return None


def _form_after(match: re.Match[str], context: Context) -> Candidate | None:
    """`at least 80% coverage`: the longest run of words just after the number."""
    spans = _word_spans(match)
    for last in range(len(spans), 0, -1):
        field_id = _field_for([word for _, _, word in spans[:last]], context)
        if field_id is not None:
            term = _form_term(match, field_id)
            return None if term is None else Candidate(match.start(), spans[last - 1][1], (term,))
    return None


_WORDS = r"(?P<words>[A-Za-z]+(?:[\s_-]+[A-Za-z]+){0,5})"
_FORM_BEFORE_RULES: tuple[Rule, ...] = (
    (
        rule_regex(rf"\b{_WORDS}\s*(?P<cmp>{CMP})\s*(?P<n>{NUM}){PCT}(?!\w)"),
        _form_before,
    ),
)
_FORM_AFTER_RULES: tuple[Rule, ...] = (
    (rule_regex(rf"(?P<cmp>{CMP})\s*(?P<n>{NUM}){PCT}\s+{_WORDS}\b"), _form_after),
)

# Templates.


def _template_rules(templates: Mapping[str, str]) -> tuple[Rule, ...]:
    """Each template's id (any of _, - or space between words) and human name.

    A single-word phrase ("documentation") is too common a word to mean the
    template alone; it needs "template" next to it or a workflow noun after it.
    """
    separator = r"[\s_-]+(?:(?:a|an|the)[\s_-]+)?"  # Articles are optional.
    rules: list[Rule] = []
    for template_id, name in templates.items():
        phrases: dict[tuple[str, ...], None] = {}
        for source in (template_id, name):
            words = tuple(w.lower() for w in re.findall(r"[^\W_]+", source))
            words = tuple(word for word in words if word not in ARTICLES)
            if words:
                phrases[words] = None

        def handler(match: re.Match[str], _: Context, value: str = template_id) -> Candidate:
            return whole_match(match, restriction("template_id", "=", value))

        for words in phrases:
            body = separator.join(re.escape(word) for word in words)
            suffix = r"(?:[\s_-]+templates?\b)?"
            prefix = r"\btemplates?\s*[:=]?\s*"
            if len(words) > 1:
                rules.append((rule_regex(rf"(?:{prefix})?\b{body}\b{suffix}"), handler))
                continue
            rules.append((rule_regex(rf"{prefix}\b{body}\b{suffix}"), handler))
            rules.append(
                (
                    rule_regex(
                        rf"\b{body}(?:[\s_-]+templates?\b|\b(?=[\s_-]+"
                        r"(?:workflows?|runs?|patterns?|jobs?|executions?)\b))"
                    ),
                    handler,
                )
            )
    return tuple(rules)


def rule_groups(templates: Mapping[str, str]) -> tuple[Sequence[Rule], ...]:
    """The groups of rules in the order they are tried: numeric conditions
    first (the most specific), then time, template names, tiers and success."""
    return (
        _COST_RULES,
        _AGENT_RULES,
        _AGENT_NAMED_RULES,
        _FORM_BEFORE_RULES,
        _FORM_AFTER_RULES,
        TIME_RULES,
        _template_rules(templates),
        TIER_RULES,
        TIER_NAMED_RULES,
        SUCCESS_RULES,
    )
