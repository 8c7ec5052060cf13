"""Query understanding: common phrasings in free text become filter terms.

"failed publish runs last week that used premium agents" becomes the filter
`success = false AND create_time >= "..." AND agents.tier = "premium"` and the
free text "publish". Rules are regular expressions tried in groups, in a fixed
order: numeric conditions (cost, agent count, form answers) first because they
are the most specific, then time, template names, tiers and success words.
Text a group consumes is hidden from later groups; within a group the longest
match wins (ties: the leftmost). Matching is case-insensitive and bounded by
word boundaries. Words inside "quoted phrases" are never consumed: quoting is
how a user asks for the literal words.

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
"that", ...; see _FILLER) and stray punctuation next to a consumed phrase,
directly or through other filler, are dropped: they only tied the phrase to
the sentence, and the free-text search ANDs its words. Filler elsewhere is the
user's own wording and stays; so text left with nothing but filler becomes "".
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from memory_service.search.filter import (
    MAX_FILTER_LENGTH,
    And,
    FilterError,
    Node,
    Not,
    Restriction,
    check_filter,
    parse_filter,
    to_text,
)
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


# --- building blocks ------------------------------------------------------------

# A decimal, maybe with thousands separators; not part of a longer word or number.
_NUM = (
    r"(?<![\w.])(?:[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
    r"(?![0-9]|[.,][0-9])"
)
_WORD_NUMBERS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
_QTY = rf"(?:{_NUM}|\b(?:{'|'.join(_WORD_NUMBERS)})\b)"
_PCT = r"(?:\s*(?:%|percent\b|per\s+cent\b|pct\b))?"

# Longer spellings come first so that "no more than" is not read as "more than".
_COMPARATORS: tuple[tuple[str, str], ...] = (
    (r">=|=>|≥", ">="),
    (r"<=|=<|≤", "<="),
    (r"==?", "="),
    (r">", ">"),
    (r"<", "<"),
    (r"\b(?:at\s+least|no\s+less\s+than|not\s+less\s+than|no\s+fewer\s+than)\b", ">="),
    (r"\b(?:at\s+most|no\s+more\s+than|not\s+more\s+than|up\s+to)\b", "<="),
    (r"\b(?:more\s+than|greater\s+than|higher\s+than|over|above|exceeding)\b", ">"),
    (r"\b(?:less\s+than|fewer\s+than|lower\s+than|under|below)\b", "<"),
    (r"\b(?:exactly|equal\s+to|equals)\b", "="),
)
_CMP = "(?:" + "|".join(pattern for pattern, _ in _COMPARATORS) + ")"

_COST_WORD = (
    r"\b(?:(?:total|overall)\s+)?(?:cost(?:s|ing)?|price[ds]?|pricing|spen[dt]|spending)\b"
    r"(?:\s*:|\s+(?:of|was|is|were))?"
)
_MONEY = (
    rf"(?:\$\s*{_NUM}|\busd\s*{_NUM}"
    rf"|{_NUM}\s*(?:\$|usd\b|dollars?\b|bucks?\b|cents?\b|¢))"
)
_AMOUNT = rf"(?:{_MONEY}|{_NUM})"  # After a cost word a bare number is a cost.

_DATE = (
    r"[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2}"
    r"(?:[tT ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:[zZ]|[+-][0-9]{2}:?[0-9]{2})?)?"
)
_UNIT = r"(?P<unit>hours?|hrs?|days?|weeks?|wks?|months?|years?|yrs?)"

_DASH = r"[-\u2013]"  # A hyphen or an en dash, as in "$0.10-$0.50".
_TIER = r"(?P<tier>cheap|capable|premium)"
_TIER_NOUN = r"(?:tiers?|agents?|models?|llms?)"

_POSITIVE = r"successful(?:ly)?|succeeded|succeeding|succeeds|success(?:es)?|passing|passed|passes"
_NEGATIVE = r"unsuccessful(?:ly)?|failed|failing|fails|failures?|errored"

_FILLER = frozenset(
    (
        *("with", "that", "runs", "run", "workflows", "workflow", "show", "me", "find", "the"),
        *("and", "in", "of", "for", "where", "whose", "which", "had", "have", "has", "were"),
        *("was", "are", "is", "a", "an", "patterns", "pattern", "executions", "execution"),
        *("did", "to", "on", "at", "from", "by", "all", "any", "please"),
    )
)
# Id words too generic to pick a question on their own ("required > 3").
_WEAK_ID_WORDS = _FILLER | {"required", "target", "max", "min", "new", "test", "tests", "count"}
_CONNECTORS = frozenset({"is", "was", "were", "are", "of", "be"})
_ARTICLES = frozenset({"a", "an", "the"})

# Mirrors query.py's tokens: a "quoted phrase" starts where a token starts.
_TOKEN = re.compile(r'"[^"]*"?|\S+')
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_MASK = "\x00"  # Hides consumed or quoted text; no rule matches it.


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _canon(text: str) -> str:
    """Lower case, folded as IGNORECASE folds (the long s U+017F matches "s")."""
    return " ".join(text.upper().lower().split())


def _op(text: str) -> str:
    spoken = _canon(text)
    for pattern, op in _COMPARATORS:
        if re.fullmatch(pattern, spoken, re.IGNORECASE):
            return op
    raise AssertionError(f"not a comparator: {text!r}")  # _CMP admits nothing else.


def _number(text: str) -> float | None:
    """A finite number from digits or a number word; None if it overflows."""
    spoken = _canon(text)
    if spoken in _WORD_NUMBERS:
        return float(_WORD_NUMBERS[spoken])
    value = float(spoken.replace(",", ""))
    return value if math.isfinite(value) else None


def _money(text: str) -> float | None:
    digits = re.search(r"[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+", text)
    value = _number(digits.group()) if digits else None
    if value is not None and re.search(r"cent|¢", text, re.IGNORECASE):
        value /= 100
    return value


def _is_money(text: str) -> bool:
    return re.search(r"\$|usd|dollar|buck|cent|¢", text, re.IGNORECASE) is not None


def _term(path: str, op: str, value: str | float | bool) -> Restriction:
    return Restriction(tuple(path.split(".")), op, value)


def _range(path: str, low: float, high: float) -> tuple[Node, ...]:
    low, high = min(low, high), max(low, high)
    return (_term(path, ">=", low), _term(path, "<=", high))


# --- rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    terms: tuple[Node, ...]


@dataclass(frozen=True)
class _Context:
    now: datetime  # UTC-aware.
    fields: tuple[tuple[str, tuple[str, ...]], ...]  # Question id and its words.


_Handler = Callable[[re.Match[str], _Context], _Candidate | None]
_Rule = tuple[re.Pattern[str], _Handler]


def _whole(match: re.Match[str], *terms: Node) -> _Candidate:
    return _Candidate(match.start(), match.end(), terms)


# Cost.


def _cost_compare(match: re.Match[str], _: _Context) -> _Candidate | None:
    value = _money(match.group("amount"))
    if value is None:
        return None
    return _whole(match, _term("total_cost_usd", _op(match.group("cmp")), value))


def _cost_relative(match: re.Match[str], _: _Context) -> _Candidate | None:
    value = _money(match.group("amount"))
    if value is None:
        return None
    cheaper = _canon(match.group("rel")).startswith(("cheaper", "less"))
    return _whole(match, _term("total_cost_usd", "<" if cheaper else ">", value))


def _cost_range(match: re.Match[str], _: _Context) -> _Candidate | None:
    low_text, high_text = match.group("lo"), match.group("hi")
    # Without a cost word only a money sign makes "between 2 and 4" a cost.
    if not match.groupdict().get("costword") and not (_is_money(low_text) or _is_money(high_text)):
        return None
    low, high = _money(low_text), _money(high_text)
    if low is None or high is None:
        return None
    return _whole(match, *_range("total_cost_usd", low, high))


_COST_RULES: tuple[_Rule, ...] = (
    (_compile(rf"{_COST_WORD}\s*(?P<cmp>{_CMP})\s*(?P<amount>{_AMOUNT})(?!\w)"), _cost_compare),
    (_compile(rf"(?P<cmp>{_CMP})\s*(?P<amount>{_MONEY})(?!\w)"), _cost_compare),
    (
        _compile(
            rf"(?:{_COST_WORD}\s*)?\b(?P<rel>cheaper|less\s+expensive|more\s+expensive|pricier"
            rf"|costlier)\s+than\s*(?P<amount>{_AMOUNT})(?!\w)"
        ),
        _cost_relative,
    ),
    (
        _compile(
            rf"(?P<costword>{_COST_WORD}\s*)?\b(?:between|from)\s+(?P<lo>{_AMOUNT})"
            rf"(?:\s*{_DASH}\s*|\s+(?:and|to)\s+)(?P<hi>{_AMOUNT})(?!\w)"
        ),
        _cost_range,
    ),
    (
        _compile(rf"(?P<lo>{_MONEY})(?:\s*{_DASH}\s*|\s+to\s+)(?P<hi>{_MONEY})(?!\w)"),
        _cost_range,
    ),
)

# Agent count.


def _agents_compare(match: re.Match[str], _: _Context) -> _Candidate | None:
    count = _number(match.group("n"))
    if count is None:
        return None
    groups = match.groupdict()
    if groups.get("cmp"):
        op = _op(groups["cmp"])
    elif groups.get("plus"):
        op = ">="
    elif groups.get("orx"):
        op = ">=" if _canon(groups["orx"]) in ("more", "greater", "above") else "<="
    else:
        op = "="  # "with 6 agents", "6 agents".
    return _whole(match, _term("agent_count", op, count))


def _agents_range(match: re.Match[str], _: _Context) -> _Candidate | None:
    low, high = _number(match.group("lo")), _number(match.group("hi"))
    if low is None or high is None:
        return None
    return _whole(match, *_range("agent_count", low, high))


_AGENT_RULES: tuple[_Rule, ...] = (
    (
        _compile(
            rf"(?:\b(?:with|using|having|had|has|used)\s+)?(?:(?P<cmp>{_CMP})\s*)?(?P<n>{_QTY})"
            r"(?P<plus>\+)?(?:\s+or\s+(?P<orx>more|greater|above|fewer|less|below))?\s+agents?\b"
        ),
        _agents_compare,
    ),
    (
        _compile(
            rf"(?:\b(?:between|from)\s+)?(?P<lo>{_QTY})(?:\s*{_DASH}\s*|\s+(?:and|to)\s+)"
            rf"(?P<hi>{_QTY})\s+agents?\b"
        ),
        _agents_range,
    ),
)

# Later than the rules above, so "3 agents more than 5 agents" is not read as "agents more than 5".
_AGENT_NAMED_RULES: tuple[_Rule, ...] = (
    (
        _compile(
            r"\b(?:agent[\s_-]?count|number\s+of\s+agents|agents)\s*(?:(?:is|was|of)\s+|:\s*)?"
            rf"(?P<cmp>{_CMP})\s*(?P<n>{_QTY})(?!\w)"
        ),
        _agents_compare,
    ),
)

# Numeric form answers.


def _same_word(spoken: str, id_word: str) -> bool:
    return spoken in (id_word, id_word + "s") or spoken + "s" == id_word


def _field_for(words: Sequence[str], context: _Context) -> str | None:
    """The first question whose id words include every spoken word."""
    if not words or all(word in _WEAK_ID_WORDS for word in words):
        return None
    for field_id, id_words in context.fields:
        if all(any(_same_word(word, id_word) for id_word in id_words) for word in words):
            return field_id
    return None


def _word_spans(match: re.Match[str]) -> list[tuple[int, int, str]]:
    base = match.start("words")
    return [
        (base + word.start(), base + word.end(), _canon(word.group()))
        for word in re.finditer(r"[A-Za-z]+", match.group("words"), re.IGNORECASE)
    ]


def _form_term(match: re.Match[str], field_id: str) -> Node | None:
    value = _number(match.group("n"))
    if value is None:
        return None
    return _term(f"form_responses.{field_id}", _op(match.group("cmp")), value)


def _form_before(match: re.Match[str], context: _Context) -> _Candidate | None:
    """`test coverage > 80%`: the longest run of words just before the comparison."""
    spans = _word_spans(match)
    while spans and spans[-1][2] in _CONNECTORS:  # "coverage is at least 90".
        spans.pop()
    for first in range(len(spans)):
        field_id = _field_for([word for _, _, word in spans[first:]], context)
        if field_id is not None:
            term = _form_term(match, field_id)
            return None if term is None else _Candidate(spans[first][0], match.end(), (term,))
    return None


def _form_after(match: re.Match[str], context: _Context) -> _Candidate | None:
    """`at least 80% coverage`: the longest run of words just after the number."""
    spans = _word_spans(match)
    for last in range(len(spans), 0, -1):
        field_id = _field_for([word for _, _, word in spans[:last]], context)
        if field_id is not None:
            term = _form_term(match, field_id)
            return None if term is None else _Candidate(match.start(), spans[last - 1][1], (term,))
    return None


_WORDS = r"(?P<words>[A-Za-z]+(?:[\s_-]+[A-Za-z]+){0,5})"
_FORM_BEFORE_RULES: tuple[_Rule, ...] = (
    (
        _compile(rf"\b{_WORDS}\s*(?P<cmp>{_CMP})\s*(?P<n>{_NUM}){_PCT}(?!\w)"),
        _form_before,
    ),
)
_FORM_AFTER_RULES: tuple[_Rule, ...] = (
    (_compile(rf"(?P<cmp>{_CMP})\s*(?P<n>{_NUM}){_PCT}\s+{_WORDS}\b"), _form_after),
)

# Time.


def _timestamp(moment: datetime) -> str:
    # Formatted by hand: strftime drops the zero padding of years before 1000.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def _since(moment: datetime) -> Node:
    return _term("create_time", ">=", _timestamp(moment))


def _before(moment: datetime) -> Node:
    return _term("create_time", "<", _timestamp(moment))


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
    unit = _canon(unit)
    if unit.startswith(("h", "d", "w")):
        key = {"h": "hours", "d": "days", "w": "weeks"}[unit[0]]
        return now - timedelta(**{key: amount})
    if not amount.is_integer():
        raise ValueError("months and years need whole numbers")
    months = int(amount) * (12 if unit.startswith("y") else 1)
    return _shift_months(now, -months)


def _time_window(match: re.Match[str], context: _Context) -> _Candidate:
    now = context.now.replace(microsecond=0)
    quantity, unit = match.group("n"), _canon(match.group("unit"))
    which = _canon(match.group("which"))
    if quantity is None and which in ("last", "previous") and unit.startswith(("mo", "y")):
        # "last month" is the calendar month before this one, not the past 30 days.
        if unit.startswith("mo"):
            end = _midnight(now).replace(day=1)
            return _whole(match, _since(_shift_months(end, -1)), _before(end))
        end = _midnight(now).replace(month=1, day=1)
        return _whole(match, _since(end.replace(year=end.year - 1)), _before(end))
    amount = 1.0 if quantity is None else _number(quantity)
    if amount is None:
        raise ValueError("no usable amount")
    return _whole(match, _since(_back(now, amount, unit)))


def _time_ago(match: re.Match[str], context: _Context) -> _Candidate | None:
    amount = _number(match.group("n"))
    if amount is None:
        return None
    return _whole(match, _since(_back(context.now.replace(microsecond=0), amount, match["unit"])))


def _time_day(match: re.Match[str], context: _Context) -> _Candidate:
    today = _midnight(context.now)
    if _canon(match.group("day")) == "today":
        return _whole(match, _since(today))
    yesterday = today - timedelta(days=1)
    if match.group("since"):
        return _whole(match, _since(yesterday))
    return _whole(match, _since(yesterday), _before(today))


def _time_this(match: re.Match[str], context: _Context) -> _Candidate:
    today = _midnight(context.now)
    unit = _canon(match.group("unit"))
    if unit == "week":
        return _whole(match, _since(today - timedelta(days=today.weekday())))
    if unit == "month":
        return _whole(match, _since(today.replace(day=1)))
    return _whole(match, _since(today.replace(month=1, day=1)))


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
        return _term("create_time", "<=", _timestamp(moment))
    return _before(moment + timedelta(days=1))


def _time_date(match: re.Match[str], _: _Context) -> _Candidate:
    keyword = _canon(match.group("kw"))
    moment, timed = _parse_date(match.group("date"))
    if keyword in ("since", "from"):
        return _whole(match, _since(moment))
    if keyword == "before":
        return _whole(match, _before(moment))
    if keyword in ("until", "till"):
        return _whole(match, _end_of(match.group("date")))
    if keyword == "after":
        if timed:
            return _whole(match, _term("create_time", ">", _timestamp(moment)))
        return _whole(match, _since(moment + timedelta(days=1)))
    if timed:
        raise ValueError("'on' needs a date without a time")
    return _whole(match, _since(moment), _before(moment + timedelta(days=1)))


def _time_between(match: re.Match[str], _: _Context) -> _Candidate:
    texts = sorted((match.group("a"), match.group("b")), key=lambda text: _parse_date(text)[0])
    return _whole(match, _since(_parse_date(texts[0])[0]), _end_of(texts[1]))


_TIME_RULES: tuple[_Rule, ...] = (
    (
        _compile(
            r"\b(?:(?:in|within|during|over|for|from)\s+)?(?:the\s+)?"
            r"(?P<which>last|past|previous|recent|latest)\s+"
            rf"(?:(?P<n>{_QTY})\s+)?{_UNIT}\b"
        ),
        _time_window,
    ),
    (_compile(rf"(?:\bsince\s+)?(?P<n>{_QTY})\s+{_UNIT}\s+ago\b"), _time_ago),
    (_compile(r"(?P<since>\bsince\s+)?\b(?P<day>today|yesterday)\b"), _time_day),
    (_compile(r"\b(?:(?:in|during)\s+)?this\s+(?P<unit>week|month|year)\b"), _time_this),
    (
        _compile(
            r"\b(?P<kw>since|from|after|on|before|until|till)\s+(?:the\s+)?"
            rf"(?P<date>{_DATE})(?!\w)"
        ),
        _time_date,
    ),
    (
        _compile(
            rf"\b(?:between|from)\s+(?P<a>{_DATE})\s*(?:\s(?:and|to|until|till)\s|{_DASH})\s*"
            rf"(?P<b>{_DATE})(?!\w)"
        ),
        _time_between,
    ),
)

# Tiers.


def _tier(match: re.Match[str], _: _Context) -> _Candidate:
    term: Node = _term("agents.tier", "=", _canon(match.group("tier")))
    return _whole(match, Not(term) if match.groupdict().get("neg") else term)


_TIER_RULES: tuple[_Rule, ...] = (
    (
        _compile(
            r"\b(?:(?P<neg>without|with\s+no|no|not\s+using|never\s+used)|used|using|uses|with)"
            rf"\s+(?:the\s+|any\s+)?{_TIER}(?:[\s-]+{_TIER_NOUN})?\b"
        ),
        _tier,
    ),
    (_compile(rf"\b{_TIER}[\s-]+{_TIER_NOUN}\b"), _tier),
)
# Later than the rules above, so "premium tier cheap tier" is not read as "tier cheap".
_TIER_NAMED_RULES: tuple[_Rule, ...] = (
    (_compile(rf"\btiers?\s*(?:[:=]|\s+is)?\s*{_TIER}\b"), _tier),
)

# Success.


def _success(match: re.Match[str], _: _Context) -> _Candidate:
    positive = re.fullmatch(_POSITIVE, match.group("word"), re.IGNORECASE) is not None
    negated = match.group("neg") is not None
    return _whole(match, _term("success", "=", positive != negated))


_SUCCESS_RULES: tuple[_Rule, ...] = (
    (
        _compile(rf"\b(?P<neg>not\s+|non-?\s*|never\s+)?(?P<word>{_POSITIVE}|{_NEGATIVE})\b"),
        _success,
    ),
)

# Templates.


def _template_rules(templates: Mapping[str, str]) -> tuple[_Rule, ...]:
    """Each template's id (any of _, - or space between words) and human name.

    A single-word phrase ("documentation") is too common a word to mean the
    template alone; it needs "template" next to it or a workflow noun after it.
    """
    separator = r"[\s_-]+(?:(?:a|an|the)[\s_-]+)?"  # Articles are optional.
    rules: list[_Rule] = []
    for template_id, name in templates.items():
        phrases: dict[tuple[str, ...], None] = {}
        for source in (template_id, name):
            words = tuple(w.lower() for w in re.findall(r"[^\W_]+", source))
            words = tuple(word for word in words if word not in _ARTICLES)
            if words:
                phrases[words] = None

        def handler(match: re.Match[str], _: _Context, value: str = template_id) -> _Candidate:
            return _whole(match, _term("template_id", "=", value))

        for words in phrases:
            body = separator.join(re.escape(word) for word in words)
            suffix = r"(?:[\s_-]+templates?\b)?"
            prefix = r"\btemplates?\s*[:=]?\s*"
            if len(words) > 1:
                rules.append((_compile(rf"(?:{prefix})?\b{body}\b{suffix}"), handler))
                continue
            rules.append((_compile(rf"{prefix}\b{body}\b{suffix}"), handler))
            rules.append(
                (
                    _compile(
                        rf"\b{body}(?:[\s_-]+templates?\b|\b(?=[\s_-]+"
                        r"(?:workflows?|runs?|patterns?|jobs?|executions?)\b))"
                    ),
                    handler,
                )
            )
    return tuple(rules)


# --- the engine -----------------------------------------------------------------


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
        if _FIELD_NAME.fullmatch(field_id):  # Others cannot be named in a filter.
            words = tuple(word.lower() for word in re.split(r"[_-]+", field_id) if word)
            if words:
                fields.append((field_id, words))
    return tuple(fields)


def _mask(text: str, start: int, end: int) -> str:
    return text[:start] + _MASK * (end - start) + text[end:]


def _candidates(rules: Sequence[_Rule], working: str, context: _Context) -> list[_Candidate]:
    found: list[_Candidate] = []
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
    if token.startswith('"'):
        return False  # Quoted text is the user's literal phrase.
    return all(word in _FILLER for word in re.findall(r"\w+", token.lower()))


def _remaining(query: str, spans: Sequence[tuple[int, int]]) -> str:
    """The unconsumed text, minus filler left dangling next to a consumed phrase."""
    kept: list[str] = []
    cursor = 0
    bounds = [*spans, (len(query), len(query))]
    for index, (start, end) in enumerate(bounds):
        tokens = [token.group() for token in _TOKEN.finditer(query[cursor:start])]
        if index > 0:  # A consumed phrase precedes this piece.
            while tokens and _is_filler(tokens[0]):
                tokens.pop(0)
        if index < len(spans):  # A consumed phrase follows it.
            while tokens and _is_filler(tokens[-1]):
                tokens.pop()
        kept.extend(tokens)
        cursor = end
    return " ".join(kept)


def understand(query: str, vocabulary: Vocabulary, now: datetime) -> Understanding:
    """Splits a free-text query into filter terms and the free text left over."""
    context = _Context(_as_utc(now), _fields(vocabulary))
    working = query
    for token in _TOKEN.finditer(query):
        if token.group().startswith('"'):
            working = _mask(working, token.start(), token.end())
    groups: tuple[Sequence[_Rule], ...] = (
        _COST_RULES,
        _AGENT_RULES,
        _AGENT_NAMED_RULES,
        _FORM_BEFORE_RULES,
        _FORM_AFTER_RULES,
        _TIME_RULES,
        _template_rules(vocabulary.templates),
        _TIER_RULES,
        _TIER_NAMED_RULES,
        _SUCCESS_RULES,
    )
    accepted: list[_Candidate] = []
    term_texts: dict[Node, str] = {}
    length = -len(" AND ")  # Length of the joined filter so far.
    for rules in groups:
        taken: list[_Candidate] = []
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
    return Understanding(to_text(tree), _remaining(query, spans), tuple(interpretations))


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
