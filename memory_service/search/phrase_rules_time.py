"""Query understanding's rules for time: windows ("last week", "past 3
days", "yesterday", "this month"), points ("since 2026-01-01", "3 days ago")
and ages ("older than two weeks", "before yesterday").

Every moment is computed from `now` in UTC (see understanding.py for the
meaning of each window). A phrase that puts runs before a window ("before
yesterday", "earlier than last month", "older than a week") keeps runs
created before the window starts: `create_time < start`. One that puts them
after a bounded window ("after yesterday", "after last month") keeps runs
from its end on: `create_time >= end`; a rolling window ending now ("after
last week") has nothing after it, so stays free text. An age ("more than 3
days ago", "at least a week old") bounds `create_time` from above, a youth
("less than 2 hours ago", "newer than a day") from below. "a"/"an" count as
one ("a week ago").
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone

from memory_service.search.filter import Node
from memory_service.search.phrases import (
    DASH,
    DATE,
    QTY,
    UNIT,
    Candidate,
    Context,
    Rule,
    canon,
    number_value,
    restriction,
    rule_regex,
    whole_match,
)


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


# A window of time: its start, and its end (None: it runs up to now).
Span = tuple[datetime, datetime | None]


def _amount(text: str) -> float:
    """A number, a number word, or "a"/"an" (one); ValueError if unusable."""
    if canon(text) in ("a", "an"):
        return 1.0
    amount = number_value(text)
    if amount is None:
        raise ValueError("no usable amount")
    return amount


def _rolling_span(match: re.Match[str], now: datetime) -> Span:
    """ "last/past [N] unit": the calendar month or year before this one for
    "last month"/"last year" (not the past 30 days), else N units up to now."""
    quantity, unit = match.group("n"), canon(match.group("unit"))
    which = canon(match.group("which"))
    if quantity is None and which in ("last", "previous") and unit.startswith(("mo", "y")):
        if unit.startswith("mo"):
            end = _midnight(now).replace(day=1)
            return _shift_months(end, -1), end
        end = _midnight(now).replace(month=1, day=1)
        return end.replace(year=end.year - 1), end
    return _back(now, 1.0 if quantity is None else _amount(quantity), unit), None


def _day_span(day: str, now: datetime) -> Span:
    today = _midnight(now)
    if canon(day) == "today":
        return today, None
    if canon(day) == "yesterday":
        return today - timedelta(days=1), today
    return today - timedelta(days=2), today - timedelta(days=1)  # The day before yesterday.


def _this_span(unit: str, now: datetime) -> Span:
    today = _midnight(now)
    unit = canon(unit)
    if unit == "week":
        return today - timedelta(days=today.weekday()), None
    if unit == "month":
        return today.replace(day=1), None
    return today.replace(month=1, day=1), None


def _span_terms(span: Span) -> tuple[Node, ...]:
    start, end = span
    return (_since(start),) if end is None else (_since(start), _before(end))


def _now(context: Context) -> datetime:
    return context.now.replace(microsecond=0)


def _time_window(match: re.Match[str], context: Context) -> Candidate:
    return whole_match(match, *_span_terms(_rolling_span(match, _now(context))))


def _time_ago(match: re.Match[str], context: Context) -> Candidate:
    return whole_match(match, _since(_back(_now(context), _amount(match["n"]), match["unit"])))


def _time_day(match: re.Match[str], context: Context) -> Candidate:
    start, end = _day_span(match.group("day"), context.now)
    if match.groupdict().get("since"):
        return whole_match(match, _since(start))
    return whole_match(match, *_span_terms((start, end)))


def _time_this(match: re.Match[str], context: Context) -> Candidate:
    return whole_match(match, *_span_terms(_this_span(match.group("unit"), context.now)))


def _time_around_window(match: re.Match[str], context: Context) -> Candidate | None:
    """ "before yesterday", "earlier than last month", "after last year"."""
    now = _now(context)
    groups = match.groupdict()
    if groups.get("which"):
        span = _rolling_span(match, now)
    elif groups.get("day"):
        span = _day_span(groups["day"], context.now)
    else:
        span = _this_span(groups["thisunit"], context.now)
    start, end = span
    if canon(match.group("kw")).startswith(("after", "later")):
        return None if end is None else whole_match(match, _since(end))
    return whole_match(match, _before(start))


# How an age compares: the operator on create_time (against now minus the age), and
# whether the phrase needs "ago" or "old" after it to be an age at all.
_AGES: dict[str, tuple[str, bool]] = {
    "older than": ("<", False),
    "more than": ("<", True),
    "over": ("<", True),
    "at least": ("<=", True),
    "younger than": (">", False),
    "newer than": (">", False),
    "less than": (">", True),
    "under": (">", True),
    "at most": (">=", True),
    "no more than": (">=", True),
    "within": (">=", True),
}


def _time_age(match: re.Match[str], context: Context) -> Candidate | None:
    """ "older than two weeks", "more than 3 days ago", "less than an hour old"."""
    op, needs_tail = _AGES[canon(match.group("age"))]
    if needs_tail and not match.group("tail"):
        return None  # "more than 3 days" alone may be a duration, not an age.
    moment = _back(_now(context), _amount(match.group("n")), match.group("unit"))
    return whole_match(match, restriction("create_time", op, _timestamp(moment)))


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


_QTY_A = rf"(?:{QTY}|\ban?\b)"  # "a week ago".
_AGE_WORDS = "|".join(word.replace(" ", r"\s+") for word in sorted(_AGES, key=len, reverse=True))
_WINDOW = (
    r"(?:(?P<which>last|past|previous)\s+(?:(?P<n>" + QTY + r")\s+)?" + UNIT + r"\b"
    r"|(?P<day>today|yesterday)\b|this\s+(?P<thisunit>week|month|year)\b)"
)

TIME_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            r"\b(?:(?:in|within|during|over|for|from)\s+)?(?:the\s+|this\s+)?"
            r"(?P<which>last|past|previous|recent|latest)\s+"
            rf"(?:(?P<n>{QTY})\s+)?{UNIT}\b"
        ),
        _time_window,
    ),
    (rule_regex(rf"(?:\bsince\s+)?(?P<n>{_QTY_A})\s+{UNIT}\s+ago\b"), _time_ago),
    (rule_regex(r"(?P<since>\bsince\s+)?\b(?P<day>today|yesterday)\b"), _time_day),
    (
        rule_regex(r"\b(?:on\s+)?the\s+(?P<day>day\s+before\s+yesterday)\b"),
        _time_day,
    ),
    (rule_regex(r"\b(?:(?:in|during)\s+)?this\s+(?P<unit>week|month|year)\b"), _time_this),
    (
        rule_regex(
            r"\b(?P<kw>before|earlier\s+than|prior\s+to|older\s+than|after|later\s+than)\s+"
            rf"(?:the\s+)?{_WINDOW}"
        ),
        _time_around_window,
    ),
    (
        rule_regex(
            rf"\b(?P<age>{_AGE_WORDS})\s+(?P<n>{_QTY_A})\s+{UNIT}(?:\s+(?P<tail>ago|old))?\b"
        ),
        _time_age,
    ),
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
