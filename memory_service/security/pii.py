"""Scrub personal data from a pattern's free text, and nothing else.

`scrub_pattern` answers a scrubbed copy and how many of each kind it
replaced. Free text is `content`, every `string_value` form answer and every
string in `metadata`; ids, tags, agent roles, multi-select options (chosen
from a fixed list) and typed numbers are never touched.

Kinds and their replacement tokens, applied in this order:

==============  ====================  =====================================
Kind            Token                 Rule
==============  ====================  =====================================
email           [EMAIL]               local@domain.tld; not `git@host:path`
ip_address      [IP_ADDRESS]          IPv4 / IPv6 that `ipaddress` accepts;
                                      not loopback or unspecified, not
                                      after `v` / `version`
credit_card     [CREDIT_CARD]         13-19 digits with a card network's
                                      prefix and length, Luhn valid; grouped
                                      (4111 1111 ...), or after a word like
                                      "card" or "visa"
ssn             [SSN]                 ###-##-####, no 000 / 666 / 9xx area
phone           [PHONE]               phonenumbers' PhoneNumberMatcher,
                                      leniency VALID, region US; written
                                      as a phone number (`+1`, `(650)`,
                                      groups), or after a word like
                                      "phone" or "call"
street_address  [STREET_ADDRESS]      number, capitalized name, suffix
                                      (Street, St, Ave, Rd, Blvd, ...)
==============  ====================  =====================================

Every match must stand alone: a match glued to letters, digits or joiners
such as `-`, `_`, `.`, `/` is part of an identifier (a run id, a timestamp,
a version, a digest) and stays as it is. Tokens hold no digits, so a
scrubbed text scrubs to itself.

Each finder runs only on texts that pass its gate, a cheap test of
something all its matches hold (see "prefilter" below); the gates never
change what is found.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator

import phonenumbers
from google.protobuf import struct_pb2

from attune.memory.v1 import memory_pb2

Span = tuple[int, int]
Finder = Callable[[str, str], Iterator[Span]]  # (text, key of the text) -> spans

# What glues a match into a larger token: then it is part of an identifier.
_GLUE = frozenset("_-./\\@#$%&+~^|")


def _stands_alone(text: str, start: int, end: int) -> bool:
    """No letter, digit or joiner touches the span (`.` or `,` then space is fine)."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    beyond = text[end + 1] if end + 1 < len(text) else " "
    if before.isalnum() or before in _GLUE:
        return False
    if after in ".,:;" and beyond.isalnum():
        return False
    return not (after.isalnum() or (after in _GLUE and after != "."))


_CUE_WINDOW = 64


def _cue(words: str) -> re.Pattern[str]:
    """A cue word just before a match: `call me at`, `card number:`.

    At most three short words between, so a match is at most 40 characters
    and is found or not whatever precedes the window (scrubbing stays
    idempotent); never inside a token such as `[PHONE]`.
    """
    filler = r"(?:\W{1,3}(?:[a-z]{1,3}|number|num)){0,3}"
    return re.compile(rf"(?i)(?<![\[\w])(?:{words})\b{filler}\W{{0,3}}$")


def _cued(cue: re.Pattern[str], text: str, start: int) -> bool:
    return bool(cue.search(text[max(0, start - _CUE_WINDOW) : start]))


_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
    r"(?![\w-]|\.[A-Za-z0-9]|:[^\s])"  # `git@github.com:org/repo` is a remote
)


def _emails(text: str, _key: str) -> Iterator[Span]:
    for match in _EMAIL.finditer(text):
        yield match.span()


_IPV4 = re.compile(r"(?<![\w.@-])(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.%-])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})"
    r"(?:%[\w.]+)?(?![\w:-]|\.\w)"
)
# Three groups, or a full first group (`fe80::1`): `a[1::2]` is a slice.
_IPV6_SHAPE = re.compile(r"[0-9A-Fa-f]{4}:|(?:[^:]*[0-9A-Fa-f]:+){2}[0-9A-Fa-f]")
# `version 1.2.3.4`, `v1.2.3.4`: four-part versions look like addresses.
_VERSION_CONTEXT = re.compile(r"(?i)(?:\b(?:version|release|build|ver)\b|\bv)\s?[:=]?\s?$")
_VERSION_KEY = re.compile(r"(?i)version|release|build")


def _ip_addresses(text: str, key: str) -> Iterator[Span]:
    if _VERSION_KEY.search(key):
        return
    for regex in (_IPV4, _IPV6):
        for match in regex.finditer(text):
            try:
                address = ipaddress.ip_address(match.group())
            except ValueError:
                continue
            if address.is_loopback or address.is_unspecified:
                continue  # `127.0.0.1:50052`, `0.0.0.0`: nobody's address
            if address.version == 6 and not _IPV6_SHAPE.match(match.group()):
                continue
            if _VERSION_CONTEXT.search(text[max(0, match.start() - 16) : match.start()]):
                continue
            yield match.span()


_CARD_CANDIDATE = re.compile(
    r"(?<![\w.+-])(?:(?P<run>\d{13,19})|\d{4}([ -])\d{3,6}(?:\2\d{3,6}){1,3})"
)
# Issuer prefixes and lengths: Visa, Mastercard, Amex, Discover, Diners,
# JCB, UnionPay, Maestro. Long digit runs without one (epoch millis, ids)
# are not cards even when Luhn happens to hold, as it does for one in ten.
_CARD_NUMBER = re.compile(
    r"4\d{15}(?:\d{3})?"
    r"|(?:5[1-5]\d\d|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)\d{12}"
    r"|3[47]\d{13}"
    r"|(?:6011|65\d\d|64[4-9]\d)\d{12,15}"
    r"|3(?:0[0-5]|[689]\d)\d{11,16}"
    r"|35(?:2[89]|[3-8]\d)\d{12,15}"
    r"|62\d{14,17}"
    r"|(?:5018|5020|5038|5893|6304|6759|676[1-3])\d{9,15}"
)
# An ungrouped run of digits is as likely an id: a card only when the text
# says so. Grouped as cards are printed (4111 1111 ...), it needs no cue.
_CARD_CUE = _cue("card|credit|debit|visa|mastercard|amex|discover|cc|pan|payment|paid|pay")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _credit_cards(text: str, _key: str) -> Iterator[Span]:
    for match in _CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if not (_CARD_NUMBER.fullmatch(digits) and _luhn(digits)):
            continue
        if not _stands_alone(text, *match.span()):
            continue
        if match.group("run") and not _cued(_CARD_CUE, text, match.start()):
            continue
        yield match.span()


_SSN = re.compile(r"(?<![\w.-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}")


def _ssns(text: str, _key: str) -> Iterator[Span]:
    for match in _SSN.finditer(text):
        if _stands_alone(text, *match.span()):
            yield match.span()


# A bare run of digits is a phone number only when the text says so.
_PHONE_CUE = _cue("phone|tel|telephone|mobile|cell|fax|call|text|sms|whatsapp|contact")


# Written as a phone number: `+1 ...`, `(650) ...`, digits in groups; read
# after NFKC, so that full-width forms such as `\uff08650\uff09` count too.
_PHONE_FORMATTED = re.compile(r"^\+|\(\d+\)|\d[\s.-]+\d")


# phonenumbers checks each candidate (a run of digits and punctuation, and
# pieces of it) at about 0.1 ms, and numeric text has about one per 6 to 10
# characters, so this is what scrubbing costs. It silently stops looking
# after `max_tries` failed candidates (65535 by default), which left the rest
# of a long text unscrubbed. Here one budget of that size is shared by every
# text of a write, and running out refuses the write (`ScrubBudgetExceededError`)
# rather than storing text no one looked at: bounded CPU, and nothing missed.
PHONE_CANDIDATE_BUDGET = 65535


class ScrubBudgetExceededError(Exception):
    """The text holds more phone-number candidates than the budget lets us check."""


class PhoneBudget:
    """Phone-number candidates that may still be checked; shared by the texts of one write."""

    def __init__(self, candidates: int = PHONE_CANDIDATE_BUDGET) -> None:
        self.left = candidates


def _phones(text: str, _key: str, budget: PhoneBudget | None = None) -> Iterator[Span]:
    budget = budget or PhoneBudget()
    if budget.left <= 0:
        raise ScrubBudgetExceededError
    # A candidate shorter than a phone number's fewest digits holds none:
    # skipped, it costs nothing and spends no try.
    matcher = phonenumbers.PhoneNumberMatcher(
        text,
        "US",
        leniency=phonenumbers.Leniency.VALID,
        max_tries=budget.left,
        min_candidate_length=_PHONE_MIN_DIGITS,
    )
    for match in matcher:
        budget.left = matcher._max_tries  # The count it keeps (not exposed).
        if not _stands_alone(text, match.start, match.end):
            continue
        written = unicodedata.normalize("NFKC", match.raw_string)
        if _PHONE_FORMATTED.search(written) or _cued(_PHONE_CUE, text, match.start):
            yield match.start, match.end
    budget.left = matcher._max_tries
    if budget.left <= 0:
        raise ScrubBudgetExceededError  # It stopped looking: the rest of the text is unchecked.


_SUFFIXES = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way"
    "|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq"
)
_STREET = re.compile(
    r"(?<![\w.,$/#-])\d{1,6}[A-Za-z]?\s+"  # 1600, 221B
    r"(?:(?:[A-Z][A-Za-z0-9'.-]*|\d+(?:st|nd|rd|th))\s+){1,3}"  # Baker, 5th, O'Farrell
    f"(?:{_SUFFIXES}|{_SUFFIXES.upper()})\\b"
)
# Title-case prose that ends in a suffix word without being an address.
_NOT_STREET = re.compile(r"(?:Google|Hard|Flash|USB|Network|Shared|Team|Thumb|One)\s+Drive\b")


def _street_addresses(text: str, _key: str) -> Iterator[Span]:
    for match in _STREET.finditer(text):
        if not _NOT_STREET.search(match.group()):
            yield match.span()


# --- prefilter ----------------------------------------------------------------
#
# Running every finder over every text was what scrubbing cost, and most
# texts hold none of it. Each finder has a gate: a cheap test of something
# every match it yields contains, so a text that fails the gate would have
# yielded nothing and skips the finder. A gate never decides that something
# is personal data; `_scrub_text_reference` scrubs without them, for tests to
# compare with. Gates read the text, or its `_shape`: the same text with
# every digit (of any script, as `\d` matches them) written `0`, where
# digit patterns become literal searches.
_ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_DIGIT = re.compile(r"\d")
# `a.b.c.d`: its middle octets.
_IPV4_GATE = re.compile(r"\.0{1,3}\.")
# The two groups `_IPV6` starts with.
_IPV6_GATE = re.compile(r":[0-9A-Fa-f]{0,4}:")
# 13 digits, or four, a space or dash, and three.
_CARD_GATE = re.compile(r"0000[ -]?000")
# A valid number, given with its country code or as a US one, has 6 digits
# or more (two for the code and four for the shortest national numbers, as
# Austria's; a transform rule that adds digits when parsing still leaves 7),
# and phonenumbers' matcher only joins digit blocks apart by at most four
# punctuation characters (its `_PUNCTUATION_LIMIT`).
# tests/unit/memory/test_scanner_gates.py checks both against the installed
# phonenumbers.
_PHONE_MIN_DIGITS = 6
_PHONE_MAX_GAP = 4
_PHONE_GATE = re.compile(rf"0(?:[^0]{{0,{_PHONE_MAX_GAP}}}0){{{_PHONE_MIN_DIGITS - 1}}}")
# A number, maybe a letter, space, then a capital or a number: `221B Baker`.
_STREET_GATE = re.compile(r"0[A-Za-z]?\s+[A-Z0]")

Gate = Callable[[str, str], bool]  # (text, its shape) -> may the finder find anything?


def _shape(text: str) -> str:
    """The text with every digit written `0`; same length and positions."""
    if text.isascii():
        return text.encode("ascii").translate(_ZERO_DIGITS).decode("ascii")
    return _DIGIT.sub("0", text)


def _may_hold_email(text: str, _shape: str) -> bool:
    return "@" in text


def _may_hold_ip(text: str, shape: str) -> bool:
    return _IPV4_GATE.search(shape) is not None or (
        ":" in text and _IPV6_GATE.search(text) is not None
    )


def _may_hold_card(_text: str, shape: str) -> bool:
    return _CARD_GATE.search(shape) is not None


def _may_hold_ssn(_text: str, shape: str) -> bool:
    return "000-00-0000" in shape


def _may_hold_phone(_text: str, shape: str) -> bool:
    return _PHONE_GATE.search(shape) is not None


def _may_hold_street(_text: str, shape: str) -> bool:
    return _STREET_GATE.search(shape) is not None


_SCRUBBERS: tuple[tuple[str, str, Finder, Gate], ...] = (
    ("email", "[EMAIL]", _emails, _may_hold_email),
    ("ip_address", "[IP_ADDRESS]", _ip_addresses, _may_hold_ip),
    ("credit_card", "[CREDIT_CARD]", _credit_cards, _may_hold_card),
    ("ssn", "[SSN]", _ssns, _may_hold_ssn),
    ("phone", "[PHONE]", _phones, _may_hold_phone),
    ("street_address", "[STREET_ADDRESS]", _street_addresses, _may_hold_street),
)
# Every kind scrubbing counts (the metrics' label values).
PII_KINDS = tuple(kind for kind, *_ in _SCRUBBERS)


def _scrub(
    text: str, key: str, prefilter: bool, budget: PhoneBudget | None = None
) -> tuple[str, Counter[str]]:
    counts: Counter[str] = Counter()
    shape = ""  # computed when first needed, again after each replacement
    for kind, token, finder, gate in _SCRUBBERS:
        if prefilter:
            if not shape:
                shape = _shape(text)
                if "0" not in shape and "@" not in text and ":" not in text:
                    break  # only email and IPv6 do without digits
            if not gate(text, shape):
                continue
        spans: list[Span] = []
        found = _phones(text, key, budget) if finder is _phones else finder(text, key)
        for span in sorted(found):
            if not spans or span[0] >= spans[-1][1]:  # IPv4 and IPv6 may overlap
                spans.append(span)
        for start, end in reversed(spans):
            text = text[:start] + token + text[end:]
        if spans:
            counts[kind] += len(spans)
            shape = ""
    return text, counts


def scrub_text(text: str, key: str = "") -> tuple[str, Counter[str]]:
    """The text with personal data replaced, and how many of each kind.

    `key` is the form or metadata key the text is stored under, a hint: a
    value under a `version` key is never taken for an IP address.
    """
    return _scrub(text, key, prefilter=True)


def _scrub_text_reference(text: str, key: str = "") -> tuple[str, Counter[str]]:
    """`scrub_text` without the prefilter: every finder on every text."""
    return _scrub(text, key, prefilter=False)


class _Scrubber:
    """Scrubs the free text of one pattern in place, counting by kind."""

    def __init__(self, prefilter: bool, budget: PhoneBudget | None) -> None:
        self.prefilter = prefilter
        self.budget = budget or PhoneBudget()  # One for the whole pattern.
        self.counts: Counter[str] = Counter()

    def text(self, text: str, key: str) -> str | None:
        """The scrubbed text, or None if it stays as it is."""
        if not text:
            return None
        scrubbed, found = _scrub(text, key, self.prefilter, self.budget)
        if not found:
            return None
        self.counts.update(found)
        return scrubbed

    def struct(self, struct: struct_pb2.Struct) -> None:
        for key, value in struct.fields.items():
            self.value(value, key)

    def value(self, value: struct_pb2.Value, key: str) -> None:
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            scrubbed = self.text(value.string_value, key)
            if scrubbed is not None:
                value.string_value = scrubbed
        elif kind == "struct_value":
            self.struct(value.struct_value)
        elif kind == "list_value":
            for item in value.list_value.values:
                self.value(item, key)


def _scrub_pattern(
    pattern: memory_pb2.Pattern, prefilter: bool, budget: PhoneBudget | None = None
) -> tuple[memory_pb2.Pattern, dict[str, int]]:
    scrubbed = memory_pb2.Pattern()
    scrubbed.CopyFrom(pattern)  # the caller's pattern stays as it is
    scrubber = _Scrubber(prefilter, budget)
    content = scrubber.text(scrubbed.content, "")
    if content is not None:
        scrubbed.content = content
    for key, answer in scrubbed.form_responses.items():
        if answer.WhichOneof("kind") == "string_value":
            text = scrubber.text(answer.string_value, key)
            if text is not None:
                answer.string_value = text
    if scrubbed.HasField("metadata"):
        scrubber.struct(scrubbed.metadata)
    return scrubbed, dict(scrubber.counts)


def scrub_pattern(
    pattern: memory_pb2.Pattern, budget: PhoneBudget | None = None
) -> tuple[memory_pb2.Pattern, dict[str, int]]:
    """A scrubbed copy of the pattern, and the count of replacements by kind.

    The input is left as it is. Kinds with no replacement are left out of
    the counts, so an empty dict means the copy equals the input. Raises
    ScrubBudgetExceededError when the pattern holds more phone-number candidates
    than `budget` (shared by several patterns, or a fresh one) lets it check.
    """
    return _scrub_pattern(pattern, prefilter=True, budget=budget)


def _scrub_pattern_reference(
    pattern: memory_pb2.Pattern,
) -> tuple[memory_pb2.Pattern, dict[str, int]]:
    """`scrub_pattern` without the prefilter."""
    return _scrub_pattern(pattern, prefilter=False)
