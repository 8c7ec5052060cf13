"""Find credentials anywhere in a pattern, without ever repeating them.

`find_secrets` walks every string of a pattern (map keys included) and
answers one `SecretFinding(kind, field)` per kind and field path, for
example `SecretFinding("aws_access_key", "metadata.db.url")`. A finding never
holds the value nor the text around it. A secret in a map key itself is
reported at `<parent>.<key>`; a map key that is not a plain identifier, or
holds a secret, shows as `*` in the paths below it (`metadata.*.url`).

The detectors and their sources are in secret_detectors.py; the prefilter
that spares most texts most regexes is in secret_screen.py.

Cost: each detector declares what all its matches hold (`needs`, `folded`,
`run`), and runs only on texts that hold it, after one cheap screen of the
whole serialized pattern; see secret_screen.py. This changes no result.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from google.protobuf.message import Message

from attune.memory.v1 import memory_pb2
from memory_service.security.secret_detectors import (
    BENIGN,
    DETECTORS,
    TOKEN,
    URL,
    looks_random,
    secret_params,
)
from memory_service.security.secret_screen import EVERYTHING, Screen, screen_bytes, utf8


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """A secret of `kind` found at `field` (a path such as `tags[2]`)."""

    kind: str
    field: str


# Fields that are identifiers by contract: vendor formats are still looked
# for there, but a random-looking id is what they are for, so no entropy.
_IDENTIFIER_FIELDS = frozenset({"id", "namespace", "template_id", "run_id", "runner", "owner"})
# Wrappers whose own field names stay out of paths: `metadata.db.url`, not
# `metadata.fields.db.struct_value.fields.url.string_value`.
_TRANSPARENT = frozenset(
    {
        "attune.common.v1.FormValue",
        "attune.common.v1.StringList",
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
    }
)
_ROLE_PATH = re.compile(r"agents\[\d+\]\.role")  # lower snake case by contract
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY_ITSELF = "<key>"  # a finding in a map key itself: `metadata.<key>`
_HIDDEN_KEY = "*"  # a value under a key not shown: `metadata.*.url`


class _Claims:
    """Disjoint spans already accounted for, sorted, for quick overlap tests."""

    def __init__(self, spans: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for span in spans:
            self.add(span)

    def overlaps(self, span: tuple[int, int]) -> bool:
        # Disjoint and sorted: the last span starting before our end reaches
        # furthest of all those that could overlap.
        index = bisect.bisect_left(self._starts, span[1]) - 1
        return index >= 0 and self._ends[index] > span[0]

    def add(self, span: tuple[int, int]) -> None:
        index = bisect.bisect_left(self._starts, span[0])
        self._starts.insert(index, span[0])
        self._ends.insert(index, span[1])


def _entropy_spans(text: str, claimed: _Claims) -> Iterator[tuple[int, int]]:
    """Random-looking tokens outside URLs, and credential parameters inside."""
    urls = _Claims(m.span() for m in URL.finditer(text))
    for url in URL.finditer(text):
        for start, end in secret_params(url.group()):
            if looks_random(url.group()[start:end], min_length=16):
                yield url.start() + start, url.start() + end
    for token in TOKEN.finditer(text):
        span = token.span()
        if not (urls.overlaps(span) or claimed.overlaps(span)) and looks_random(token.group()):
            yield span


# The generic rule's kind, beside the detectors' own.
HIGH_ENTROPY = "high_entropy_string"
# Every kind a finding may name (the metrics' label values).
SECRET_KINDS = (*dict.fromkeys(detector.kind for detector in DETECTORS), HIGH_ENTROPY)


def _scan(text: str, key: str, entropy: bool, screen: Screen) -> list[str]:
    claimed = _Claims(m.span() for m in BENIGN.finditer(text)) if screen.benign else _Claims()
    kinds: list[str] = []
    for detector in screen.detectors:
        for match in detector.regex.finditer(text):
            span = match.span(detector.group)
            if claimed.overlaps(span) or (detector.check and not detector.check(match, key)):
                continue
            claimed.add(span)
            if detector.kind not in kinds:
                kinds.append(detector.kind)
    if entropy and screen.entropy and any(True for _ in _entropy_spans(text, claimed)):
        kinds.append(HIGH_ENTROPY)
    return kinds


def scan_text(text: str, key: str = "", *, entropy: bool = True) -> list[str]:
    """The kinds of secret in one string, once each, in detection order.

    `key` is the map or metadata key (dotted, when nested) the string is
    stored under: context for detectors that need it, such as an AWS secret
    key under `aws.secret_access_key`.
    `entropy=False` skips the generic high-entropy rule, for identifiers.
    """
    screen = screen_bytes(utf8(text), utf8(key))
    return [] if screen is None else _scan(text, key, entropy, screen)


def _scan_text_reference(text: str, key: str = "", *, entropy: bool = True) -> list[str]:
    """`scan_text` without the prefilter: every regex on every text."""
    return _scan(text, key, entropy, EVERYTHING)


# (text, keys above it, entropy rule on?) -> kinds
_Scanner = Callable[[str, str, bool], list[str]]


def _render_key(key: object, scan: _Scanner) -> str:
    """A map key as a path segment: shown only if plain and harmless."""
    text = str(key)
    if _PLAIN_KEY.fullmatch(text) and not scan(text, "", True):
        return text
    return _HIDDEN_KEY


def _strings(value: object, path: str, key: str, scan: _Scanner) -> Iterator[tuple[str, str, str]]:
    """Every (path, string, keys) under a value; map keys are strings too.

    `keys` are the raw map keys above the string, joined by dots: context
    for detectors, never shown.
    """
    if isinstance(value, str):
        yield path, value, key
    elif isinstance(value, Message):
        yield from _message_strings(value, path, key, scan)


def _message_strings(
    message: Message, path: str, key: str, scan: _Scanner
) -> Iterator[tuple[str, str, str]]:
    transparent = message.DESCRIPTOR.full_name in _TRANSPARENT
    key = key if transparent else ""  # a Value or FormValue keeps its map keys
    for field, value in message.ListFields():
        child = path if transparent else (f"{path}.{field.name}" if path else field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for item_key, item in value.items():
                if isinstance(item_key, str):
                    yield f"{child}.{_KEY_ITSELF}", item_key, ""
                chain = f"{key}.{item_key}" if key else str(item_key)  # `aws.secret_key`
                yield from _strings(item, f"{child}.{_render_key(item_key, scan)}", chain, scan)
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from _strings(item, f"{child}[{index}]", key, scan)
        else:
            yield from _strings(value, child, key, scan)


def _findings(pattern: memory_pb2.Pattern, scan: _Scanner) -> list[SecretFinding]:
    findings: list[SecretFinding] = []
    for path, text, key in _strings(pattern, "", "", scan):
        entropy = path not in _IDENTIFIER_FIELDS and not _ROLE_PATH.fullmatch(path)
        for kind in scan(text, key, entropy):
            finding = SecretFinding(kind, path)
            if finding not in findings:
                findings.append(finding)
    return findings


def find_secrets(pattern: memory_pb2.Pattern) -> list[SecretFinding]:
    """Every kind of secret in the pattern, once per field path.

    Empty means the pattern may be stored. Map keys are scanned too and
    reported as `<parent>.<key>`; a key that is not a plain identifier, or
    holds a secret, shows as `*` in the paths below it.
    """
    within = screen_bytes(pattern.SerializeToString())
    if within is None:
        return []  # no string of the pattern can hold a secret
    seen: dict[tuple[str, str, bool], list[str]] = {}

    def scan(text: str, key: str, entropy: bool) -> list[str]:
        # Map keys are scanned twice, and strings repeat: once per call.
        kinds = seen.get((text, key, entropy))
        if kinds is None:
            screen = screen_bytes(utf8(text), utf8(key), within)
            kinds = [] if screen is None else _scan(text, key, entropy, screen)
            seen[text, key, entropy] = kinds
        return kinds

    return _findings(pattern, scan)


def _find_secrets_reference(pattern: memory_pb2.Pattern) -> list[SecretFinding]:
    """`find_secrets` without the prefilter nor the cache."""
    return _findings(
        pattern, lambda text, key, entropy: _scan_text_reference(text, key, entropy=entropy)
    )
