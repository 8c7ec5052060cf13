"""Query understanding's rules, by subject (cost and agent count here; time,
tiers and escalation, success, and the templates' forms in their own
phrase_rules_* modules), and the order their groups are tried in (see
understanding.py for how a group's matches are chosen)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from memory_service.search.phrase_rules_classification import CLASSIFICATION_RULES
from memory_service.search.phrase_rules_forms import template_mentions, value_mentions
from memory_service.search.phrase_rules_numbers import (
    NUMBER_AFTER_RULES,
    NUMBER_BARE_RULES,
    NUMBER_BEFORE_RULES,
)
from memory_service.search.phrase_rules_success import SUCCESS_RULES
from memory_service.search.phrase_rules_tiers import TIER_NAMED_RULES, TIER_RULES
from memory_service.search.phrase_rules_time import TIME_RULES
from memory_service.search.phrases import (
    AMOUNT,
    CMP,
    COST_WORD,
    DASH,
    MONEY,
    QTY,
    Candidate,
    Context,
    Finder,
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
            # Not "not one agent that ...": a negation, the escalation rules' to read.
            rf"(?:\b(?:with|using|having|had|has|used)\s+)?(?:(?P<cmp>{CMP})\s*)?(?<!\bnot )"
            rf"(?P<n>{QTY})(?P<plus>\+)?(?:\s+or\s+(?P<orx>more|greater|above|fewer|less|below))?"
            r"\s+agents?\b"
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


def rule_groups() -> tuple[Sequence[Rule | Finder], ...]:
    """The groups of rules in the order they are tried: numeric conditions
    first (the most specific), then time, template names, form answers,
    tiers, success and classification."""
    return _GROUPS


_GROUPS: tuple[Sequence[Rule | Finder], ...] = (
    _COST_RULES,
    _AGENT_RULES,
    _AGENT_NAMED_RULES,
    NUMBER_BEFORE_RULES,
    NUMBER_AFTER_RULES,
    NUMBER_BARE_RULES,
    TIME_RULES,
    (template_mentions,),
    (value_mentions,),
    TIER_RULES,
    TIER_NAMED_RULES,
    SUCCESS_RULES,
    CLASSIFICATION_RULES,
)
