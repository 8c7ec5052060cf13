"""The pieces query understanding's rules are made of: regex fragments for
numbers, money, comparators, dates, tiers and success words; the filler
words; and the helpers that turn a matched phrase into filter terms. The
rules are in phrase_rules.py, the engine that applies them in
understanding.py."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from memory_service.search.filter import Node, Restriction
from memory_service.search.query import TOKEN as QUERY_TOKEN
from memory_service.search.stopwords import STOP_WORDS

# A decimal, maybe with thousands separators; not part of a longer word or number.
NUM = (
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
QTY = rf"(?:{NUM}|\b(?:{'|'.join(_WORD_NUMBERS)})\b)"
PCT = r"(?:\s*(?:%|percent\b|per\s+cent\b|pct\b))?"

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
CMP = "(?:" + "|".join(pattern for pattern, _ in _COMPARATORS) + ")"

COST_WORD = (
    r"\b(?:(?:total|overall)\s+)?(?:cost(?:s|ing)?|price[ds]?|pricing|spen[dt]|spending)\b"
    r"(?:\s*:|\s+(?:of|was|is|were))?"
)
MONEY = (
    rf"(?:\$\s*{NUM}|\busd\s*{NUM}"
    rf"|{NUM}\s*(?:\$|usd\b|dollars?\b|bucks?\b|cents?\b|¢))"
)
AMOUNT = rf"(?:{MONEY}|{NUM})"  # After a cost word a bare number is a cost.

DATE = (
    r"[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2}"
    r"(?:[tT ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:[zZ]|[+-][0-9]{2}:?[0-9]{2})?)?"
)
UNIT = r"(?P<unit>hours?|hrs?|days?|weeks?|wks?|months?|years?|yrs?)"

DASH = r"[-\u2013]"  # A hyphen or an en dash, as in "$0.10-$0.50".
TIER = r"(?P<tier>cheap|capable|premium)"
TIER_NOUN = r"(?:tiers?|agents?|models?|llms?)"

POSITIVE = r"successful(?:ly)?|succeeded|succeeding|succeeds|success(?:es)?|passing|passed|passes"
NEGATIVE = r"unsuccessful(?:ly)?|failed|failing|fails|failures?|errored"

# Words that only tie an understood phrase to the sentence: the query
# language's stop words, one list (stopwords.py).
FILLER = STOP_WORDS
# Id words too generic to pick a question on their own ("required > 3").
WEAK_ID_WORDS = FILLER | {"required", "target", "max", "min", "new", "test", "tests", "count"}
CONNECTORS = frozenset({"is", "was", "were", "are", "of", "be"})
ARTICLES = frozenset({"a", "an", "the"})

# query.py's tokens: a "quoted phrase" (maybe +/- marked) starts where a token starts.
TOKEN = QUERY_TOKEN
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
MASK = "\x00"  # Hides consumed or quoted text; no rule matches it.


def rule_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def canon(text: str) -> str:
    """Lower case, folded as IGNORECASE folds (the long s U+017F matches "s")."""
    return " ".join(text.upper().lower().split())


def comparator_op(text: str) -> str:
    spoken = canon(text)
    for pattern, op in _COMPARATORS:
        if re.fullmatch(pattern, spoken, re.IGNORECASE):
            return op
    raise AssertionError(f"not a comparator: {text!r}")  # CMP admits nothing else.


def number_value(text: str) -> float | None:
    """A finite number from digits or a number word; None if it overflows."""
    spoken = canon(text)
    if spoken in _WORD_NUMBERS:
        return float(_WORD_NUMBERS[spoken])
    value = float(spoken.replace(",", ""))
    return value if math.isfinite(value) else None


def money_value(text: str) -> float | None:
    digits = re.search(r"[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+", text)
    value = number_value(digits.group()) if digits else None
    if value is not None and re.search(r"cent|¢", text, re.IGNORECASE):
        value /= 100
    return value


def is_money(text: str) -> bool:
    return re.search(r"\$|usd|dollar|buck|cent|¢", text, re.IGNORECASE) is not None


def restriction(path: str, op: str, value: str | float | bool) -> Restriction:
    return Restriction(tuple(path.split(".")), op, value)


def range_terms(path: str, low: float, high: float) -> tuple[Node, ...]:
    low, high = min(low, high), max(low, high)
    return (restriction(path, ">=", low), restriction(path, "<=", high))


@dataclass(frozen=True)
class Candidate:
    """A matched phrase (its span in the query) and the filter terms it means."""

    start: int
    end: int
    terms: tuple[Node, ...]


@dataclass(frozen=True)
class Context:
    """What a rule may consult besides its match."""

    now: datetime  # UTC-aware.
    fields: tuple[tuple[str, tuple[str, ...]], ...]  # Question id and its words.


_Handler = Callable[[re.Match[str], Context], Candidate | None]
Rule = tuple[re.Pattern[str], _Handler]


def whole_match(match: re.Match[str], *terms: Node) -> Candidate:
    return Candidate(match.start(), match.end(), terms)


def count_op(match: re.Match[str]) -> str:
    """The comparison a counted phrase asks for: its comparator (group `cmp`),
    "N+" (`plus`: >=), "N or more"/"N or fewer" (`orx`), else equality."""
    groups = match.groupdict()
    if groups.get("cmp"):
        return comparator_op(groups["cmp"])
    if groups.get("plus"):
        return ">="
    if groups.get("orx"):
        return ">=" if canon(groups["orx"]) in ("more", "greater", "above") else "<="
    return "="  # "with 6 agents", "2 premium agents".
