"""Query understanding's rules, by subject (cost, agent count, time, tiers,
success; the templates' forms in phrase_rules_forms.py), and the order their
groups are tried in (see understanding.py for how a group's matches are chosen)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

from memory_service.search.filter import Node, Not
from memory_service.search.phrase_rules_forms import (
    NUMBER_AFTER_RULES,
    NUMBER_BARE_RULES,
    NUMBER_BEFORE_RULES,
    template_mentions,
    value_mentions,
)
from memory_service.search.phrases import (
    AMOUNT,
    CMP,
    COST_WORD,
    DASH,
    DATE,
    MONEY,
    NEGATIVE,
    POSITIVE,
    QTY,
    TIER,
    TIER_NOUN,
    UNIT,
    Candidate,
    Context,
    Finder,
    Rule,
    canon,
    comparator_op,
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
    groups = match.groupdict()
    if groups.get("cmp"):
        op = comparator_op(groups["cmp"])
    elif groups.get("plus"):
        op = ">="
    elif groups.get("orx"):
        op = ">=" if canon(groups["orx"]) in ("more", "greater", "above") else "<="
    else:
        op = "="  # "with 6 agents", "6 agents".
    return whole_match(match, restriction("agent_count", op, count))


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

# Time.


def _timestamp(moment: datetime) -> str:
    # Formatted by hand: strftime drops the zero padding of years before 1000.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def _since(moment: datetime) -> Node:
    return restriction("create_time", ">=", _timestamp(moment))


def _before(moment: datetime) -> Node:
    return restriction("create_time", "<", _timestamp(moment))


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _shift_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later, clamped to the month's length."""
    year, month = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    if not 1 <= year <= 9999:
        raise ValueError("beyond the calendar")
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _back(now: datetime, amount: float, unit: str) -> datetime:
    """`now` minus an amount of a unit; months and years need whole amounts."""
    unit = canon(unit)
    if unit.startswith(("h", "d", "w")):
        key = {"h": "hours", "d": "days", "w": "weeks"}[unit[0]]
        return now - timedelta(**{key: amount})
    if not amount.is_integer():
        raise ValueError("months and years need whole numbers")
    months = int(amount) * (12 if unit.startswith("y") else 1)
    return _shift_months(now, -months)


def _time_window(match: re.Match[str], context: Context) -> Candidate:
    now = context.now.replace(microsecond=0)
    quantity, unit = match.group("n"), canon(match.group("unit"))
    which = canon(match.group("which"))
    if quantity is None and which in ("last", "previous") and unit.startswith(("mo", "y")):
        # "last month" is the calendar month before this one, not the past 30 days.
        if unit.startswith("mo"):
            end = _midnight(now).replace(day=1)
            return whole_match(match, _since(_shift_months(end, -1)), _before(end))
        end = _midnight(now).replace(month=1, day=1)
        return whole_match(match, _since(end.replace(year=end.year - 1)), _before(end))
    amount = 1.0 if quantity is None else number_value(quantity)
    if amount is None:
        raise ValueError("no usable amount")
    return whole_match(match, _since(_back(now, amount, unit)))


def _time_ago(match: re.Match[str], context: Context) -> Candidate | None:
    amount = number_value(match.group("n"))
    if amount is None:
        return None
    return whole_match(
        match, _since(_back(context.now.replace(microsecond=0), amount, match["unit"]))
    )


def _time_day(match: re.Match[str], context: Context) -> Candidate:
    today = _midnight(context.now)
    if canon(match.group("day")) == "today":
        return whole_match(match, _since(today))
    yesterday = today - timedelta(days=1)
    if match.group("since"):
        return whole_match(match, _since(yesterday))
    return whole_match(match, _since(yesterday), _before(today))


def _time_this(match: re.Match[str], context: Context) -> Candidate:
    today = _midnight(context.now)
    unit = canon(match.group("unit"))
    if unit == "week":
        return whole_match(match, _since(today - timedelta(days=today.weekday())))
    if unit == "month":
        return whole_match(match, _since(today.replace(day=1)))
    return whole_match(match, _since(today.replace(month=1, day=1)))


def _parse_date(text: str) -> tuple[datetime, bool]:
    """A UTC moment and whether a time of day was given; ValueError if invalid."""
    parts = re.fullmatch(r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})(?:[tT ](.+))?", text)
    if parts is None:
        raise ValueError(text)
    year, month, day = (int(parts.group(index)) for index in (1, 2, 3))
    if parts.group(4) is None:
        return datetime(year, month, day, tzinfo=UTC), False
    clock = parts.group(4).upper().replace("Z", "+00:00")
    offset = re.search(r"([+-])([0-9]{2}):?([0-9]{2})$", clock)
    zone = UTC
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        minutes = sign * (int(offset.group(2)) * 60 + int(offset.group(3)))
        zone = timezone(timedelta(minutes=minutes))
        clock = clock[: offset.start()]
    moment = datetime.fromisoformat(f"{year:04d}-{month:02d}-{day:02d}T{clock}")
    return moment.replace(tzinfo=zone).astimezone(UTC), True


def _end_of(text: str) -> Node:
    """The exclusive end of a date (its whole day) or the inclusive end of a time."""
    moment, timed = _parse_date(text)
    if timed:
        return restriction("create_time", "<=", _timestamp(moment))
    return _before(moment + timedelta(days=1))


def _time_date(match: re.Match[str], _: Context) -> Candidate:
    keyword = canon(match.group("kw"))
    moment, timed = _parse_date(match.group("date"))
    if keyword in ("since", "from"):
        return whole_match(match, _since(moment))
    if keyword == "before":
        return whole_match(match, _before(moment))
    if keyword in ("until", "till"):
        return whole_match(match, _end_of(match.group("date")))
    if keyword == "after":
        if timed:
            return whole_match(match, restriction("create_time", ">", _timestamp(moment)))
        return whole_match(match, _since(moment + timedelta(days=1)))
    if timed:
        raise ValueError("'on' needs a date without a time")
    return whole_match(match, _since(moment), _before(moment + timedelta(days=1)))


def _time_between(match: re.Match[str], _: Context) -> Candidate:
    texts = sorted((match.group("a"), match.group("b")), key=lambda text: _parse_date(text)[0])
    return whole_match(match, _since(_parse_date(texts[0])[0]), _end_of(texts[1]))


_TIME_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            r"\b(?:(?:in|within|during|over|for|from)\s+)?(?:the\s+)?"
            r"(?P<which>last|past|previous|recent|latest)\s+"
            rf"(?:(?P<n>{QTY})\s+)?{UNIT}\b"
        ),
        _time_window,
    ),
    (rule_regex(rf"(?:\bsince\s+)?(?P<n>{QTY})\s+{UNIT}\s+ago\b"), _time_ago),
    (rule_regex(r"(?P<since>\bsince\s+)?\b(?P<day>today|yesterday)\b"), _time_day),
    (rule_regex(r"\b(?:(?:in|during)\s+)?this\s+(?P<unit>week|month|year)\b"), _time_this),
    (
        rule_regex(
            r"\b(?P<kw>since|from|after|on|before|until|till)\s+(?:the\s+)?"
            rf"(?P<date>{DATE})(?!\w)"
        ),
        _time_date,
    ),
    (
        rule_regex(
            rf"\b(?:between|from)\s+(?P<a>{DATE})\s*(?:\s(?:and|to|until|till)\s|{DASH})\s*"
            rf"(?P<b>{DATE})(?!\w)"
        ),
        _time_between,
    ),
)

# Tiers.


def _tier(match: re.Match[str], _: Context) -> Candidate:
    term: Node = restriction("agents.tier", "=", canon(match.group("tier")))
    return whole_match(match, Not(term) if match.groupdict().get("neg") else term)


_TIER_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            r"\b(?:(?P<neg>without|with\s+no|no|not\s+using|never\s+used)|used|using|uses|with)"
            rf"\s+(?:the\s+|any\s+)?{TIER}(?:[\s-]+{TIER_NOUN})?\b"
        ),
        _tier,
    ),
    (rule_regex(rf"\b{TIER}[\s-]+{TIER_NOUN}\b"), _tier),
)
# Later than the rules above, so "premium tier cheap tier" is not read as "tier cheap".
_TIER_NAMED_RULES: tuple[Rule, ...] = (
    (rule_regex(rf"\btiers?\s*(?:[:=]|\s+is)?\s*{TIER}\b"), _tier),
)

# Success.


def _success(match: re.Match[str], _: Context) -> Candidate:
    positive = re.fullmatch(POSITIVE, match.group("word"), re.IGNORECASE) is not None
    negated = match.group("neg") is not None
    return whole_match(match, restriction("success", "=", positive != negated))


_SUCCESS_RULES: tuple[Rule, ...] = (
    (
        rule_regex(rf"\b(?P<neg>not\s+|non-?\s*|never\s+)?(?P<word>{POSITIVE}|{NEGATIVE})\b"),
        _success,
    ),
)


def rule_groups() -> tuple[Sequence[Rule | Finder], ...]:
    """The groups of rules in the order they are tried: numeric conditions
    first (the most specific), then time, template names, form answers,
    tiers and success."""
    return _GROUPS


_GROUPS: tuple[Sequence[Rule | Finder], ...] = (
    _COST_RULES,
    _AGENT_RULES,
    _AGENT_NAMED_RULES,
    NUMBER_BEFORE_RULES,
    NUMBER_AFTER_RULES,
    NUMBER_BARE_RULES,
    _TIME_RULES,
    (template_mentions,),
    (value_mentions,),
    _TIER_RULES,
    _TIER_NAMED_RULES,
    _SUCCESS_RULES,
)
