"""The scan's prefilter: which detectors a text can match at all, from cheap
byte tests, so most texts skip most regexes (and a clean pattern skips them
all). It changes no result; secrets.py scans what it lets through."""

from __future__ import annotations

import re
from dataclasses import dataclass

from memory_service.security.secret_detectors import DETECTORS, URL_MARK, Detector

# Most strings hold no secret, and running every regex over each of them was
# what a scan cost. `screen_bytes` looks at a text's UTF-8 bytes with substring
# tests only and answers which detectors can match at all: a detector whose
# `needs`, `folded` or `run` fails cannot, since every match of its regex
# holds them. It never decides that something is a secret: a text that
# passes gets the full scan (with the detectors that can match; the others
# would have matched nothing, so claims and order are unchanged), and a text
# that fails would have had no finding. `secrets._scan_text_reference` scans without
# it, so tests can compare the two on any input.
#
# Bytes, not str: in UTF-8 an ASCII byte only ever stands for that ASCII
# character, so an ASCII literal is in the bytes exactly when it is in the
# text. A serialized pattern holds each of its strings (map keys included)
# verbatim, so one screen of `SerializeToString()` clears a clean pattern
# without walking it; anything it lets through is walked and screened string
# by string.
#
# Case: regexes that ignore case also match four non-ASCII characters to
# ASCII letters (U+0130 and U+0131 to i, U+017F to s, U+212A to k), which
# bytes.lower() does not fold: `_fold` replaces them first.
_TOKEN_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-"
# `TOKEN` characters to `a`, every other byte (non-ASCII ones too) to a space.
_RUN_SHAPE = bytes(0x61 if byte in _TOKEN_BYTES else 0x20 for byte in range(256))
_RUN_MIN = b"a" * 24  # `TOKEN`'s minimum
_DIGIT_BYTES = b"0123456789"
_BENIGN_NEEDS = (b"-----BEGIN ", b" AAAA", b"sha", b"data:")


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _three_classes(run: bytes) -> bool:
    """Upper case, lower case and digits: what `looks_random` demands first."""
    return (
        run.lower() != run
        and run.upper() != run
        and len(run.translate(None, _DIGIT_BYTES)) < len(run)
    )


@dataclass(frozen=True, slots=True)
class Screen:
    """What a text may hold: everything else it certainly does not."""

    detectors: tuple[Detector, ...]  # in `DETECTORS` order
    entropy: bool  # the high-entropy rule may fire
    benign: bool  # `BENIGN` may match


EVERYTHING = Screen(DETECTORS, entropy=True, benign=True)


def _fold(data: bytes) -> bytes:
    """ASCII-lowercased, after replacing those four characters by their letters."""
    if b"\xc4" in data:  # a lead byte first: memchr is nearly free
        data = data.replace(b"\xc4\xb0", b"i").replace(b"\xc4\xb1", b"i")
    if b"\xc5" in data:
        data = data.replace(b"\xc5\xbf", b"s")
    if b"\xe2" in data:
        data = data.replace(b"\xe2\x84\xaa", b"k")
    return data.lower()


def screen_bytes(data: bytes, key: bytes = b"", within: Screen = EVERYTHING) -> Screen | None:
    """What UTF-8 `data`, a text or a whole serialized pattern, may hold.

    None if no secret at all. `key` is the text's map key chain (context
    for `folded`); `within` an earlier screen of what holds the text.
    """
    runs: list[bytes] = []  # `TOKEN` runs of 24 or more
    shape = data.translate(_RUN_SHAPE)
    start = shape.find(_RUN_MIN)
    while start >= 0:
        end = shape.find(b" ", start)
        end = len(shape) if end < 0 else end
        runs.append(data[start:end])
        start = shape.find(_RUN_MIN, end)
    longest = max(map(len, runs), default=0)
    found: dict[re.Pattern[bytes], bool] = {}  # `sk-` serves three detectors
    folded = b""
    detectors: list[Detector] = []
    for detector in within.detectors:
        if detector.run > longest:
            continue
        for need in detector.needs:
            for regex in need:
                hit = found.get(regex)
                if hit is None:
                    hit = found[regex] = regex.search(data) is not None
                if hit:
                    break
            else:
                break  # nothing of this need: the detector cannot match
        else:
            if detector.folded:
                folded = folded or _fold(data) + b"\n" + _fold(key)
                if not any(regex.search(folded) for regex in detector.folded):
                    continue
            detectors.append(detector)
    entropy = within.entropy and (
        URL_MARK[0].search(data) is not None or any(_three_classes(run) for run in runs)
    )
    if not detectors and not entropy:
        return None
    benign = any(part in data for part in _BENIGN_NEEDS)
    return Screen(tuple(detectors), entropy, benign)
