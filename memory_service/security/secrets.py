"""Find credentials anywhere in a pattern, without ever repeating them.

`find_secrets` walks every string of a pattern (map keys included) and
answers one `SecretFinding(kind, field)` per kind and field path, for
example `SecretFinding("aws_access_key", "metadata.db.url")`. A finding never
holds the value nor the text around it. A secret in a map key itself is
reported at `<parent>.<key>`; a map key that is not a plain identifier, or
holds a secret, shows as `*` in the paths below it (`metadata.*.url`).

Where the detectors come from:

=============================  =================================================
Kind                           Source
=============================  =================================================
aws_access_key                 detect-secrets AWSKeyDetector regex, bounded
github_token                   detect-secrets GitHubTokenDetector regex, bounded;
                               own regex for fine-grained `github_pat_` tokens
slack_token, slack_webhook     detect-secrets SlackDetector regexes
stripe_key                     detect-secrets StripeDetector regex (live keys);
                               own regex for `sk_test_` / `rk_test_`
openai_api_key                 detect-secrets OpenAIDetector regex (legacy);
                               own regex for `sk-...`, `sk-proj-...`
jwt                            own regex, checked with detect-secrets
                               JwtTokenDetector.is_formally_valid, plus `alg`
password_in_url                detect-secrets BasicAuthDetector character
                               classes; user may be empty (`redis://:pw@h`)
high_entropy_string            detect-secrets Base64HighEntropyString entropy
                               and is_sequential_string, own tokenizer and
                               thresholds (below)
anthropic_api_key, aws_secret_key, private_key, bearer_token,
connection_string_password     own regexes (detect-secrets has none, or only
                               a looser one)
=============================  =================================================

detect-secrets is used for its patterns and pure functions only, never
through `scan_line`/`SecretsCollection`: those read process-wide settings
and can verify a candidate by sending it to the vendor's API.

Patterns hold many random-looking identifiers (run ids, ULIDs, UUIDs,
digests), so every detector is bounded by token edges and checks that the
value looks random; see `_looks_random` for the generic rule.

Cost: each detector declares what all its matches hold (`needs`, `folded`,
`run`), and runs only on texts that hold it, after one cheap screen of the
whole serialized pattern; see "prefilter" below. This changes no result.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from detect_secrets.filters.heuristic import is_sequential_string
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.basic_auth import RESERVED_CHARACTERS, SUB_DELIMITER_CHARACTERS
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.stripe import StripeDetector
from google.protobuf.message import Message

from attune.memory.v1 import memory_pb2


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

_ENTROPY = Base64HighEntropyString()
# Edges: a secret never continues an identifier on either side.
_L = r"(?<![A-Za-z0-9_-])"
_R = r"(?![A-Za-z0-9_-])"

# "One of these byte strings", for the prefilter (see `_screen`): regexes
# that each search for the literals sharing a first byte, since `re` finds a
# literal prefix (factored out of an alternation) faster than `in` does.
_Need = tuple[re.Pattern[bytes], ...]


def _any_of(*literals: bytes) -> _Need:
    by_first: dict[int, list[bytes]] = {}
    for literal in literals:
        by_first.setdefault(literal[0], []).append(re.escape(literal))
    return tuple(re.compile(b"|".join(group)) for group in by_first.values())


_SK = _any_of(b"sk-")
_URL_MARK = _any_of(b"://")

# (match, dotted map keys above the string) -> is it really a secret?
_Check = Callable[[re.Match[str], str], bool]


@dataclass(frozen=True, slots=True)
class _Detector:
    kind: str
    regex: re.Pattern[str]
    check: _Check | None = None
    group: int = 0  # the group that is the secret, for claiming its span
    # The prefilter (see `_screen`): what every match of `regex` holds, so
    # that a text without it skips the regex. Each of `needs` must be found
    # in the UTF-8 text as it is; `folded` in the ASCII-lowercased text or
    # key; and `run` is the least length of a run of `_TOKEN` characters.
    needs: tuple[_Need, ...] = ()
    folded: _Need = ()
    run: int = 0


def _entropy(text: str) -> float:
    return float(_ENTROPY.calculate_shannon_entropy(text))


def _classes(text: str) -> int:
    """How many of upper case, lower case and digits the text has."""
    return sum(any(test(c) for c in text) for test in (str.isupper, str.islower, str.isdigit))


def _random_body(body: str) -> bool:
    """A vendor prefix is followed by random text, not a placeholder.

    Two character classes of upper case, lower case and digits, not a digit
    required: about 1 in 600 random 36-character GitHub tokens has no digit.
    """
    return _classes(body) >= 2 and _entropy(body) >= 3.0 and not is_sequential_string(body)


def _body_after(prefix: str) -> _Check:
    pattern = re.compile(prefix)

    def check(match: re.Match[str], _key: str) -> bool:
        head = pattern.match(match.group())
        return _random_body(match.group()[head.end() if head else 0 :])

    return check


# Camel-case words: an identifier is mostly made of them, random text isn't.
_WORD = re.compile(r"[A-Z]?[a-z]{3,}")
_WORDY_SEGMENT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+|[a-z0-9]+|[A-Z0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


def _wordiness(token: str) -> float:
    """The share of the token made of camel-case words."""
    return sum(len(m.group()) for m in _WORD.finditer(token)) / len(token)


def _looks_random(token: str, min_length: int = 24) -> bool:
    """A generic secret: long, mixed-case base64-ish text of high entropy.

    Thresholds, calibrated on random base62 strings and real identifiers:
    entropy at least 0.85 * log2(length), capped at detect-secrets' default
    4.5 (about 98% of random 24 to 64 character tokens pass); upper case,
    lower case and digits all present (ULIDs, run ids and hex digests are
    single-case); less than 45% of it camel-case words (`GetRecommendations
    V2Handler` is 93%, random text averages 16%); and not only word-like
    segments between `-`, `_` and `/` (paths, snake-case ids).
    """
    token = token.strip("=-_/+")
    if len(token) < min_length or _HEX.fullmatch(token) or _classes(token) < 3:
        return False
    segments = [s for s in re.split(r"[-_/+]", token) if s]
    if all(_WORDY_SEGMENT.fullmatch(s) for s in segments):
        return False
    limit = min(4.5, 0.85 * math.log2(len(token)))
    return _wordiness(token) < 0.45 and _entropy(token) >= limit and not is_sequential_string(token)


def _jwt(match: re.Match[str], _key: str) -> bool:
    token = match.group()
    if not JwtTokenDetector.is_formally_valid(token):
        return False
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict) and "alg" in header


_AWS_CONTEXT = re.compile(r"(?i)aws|amazon")
_SECRET_WORD = re.compile(r"(?i)secret|key|token|pass|pwd|credential")


def _aws_secret(match: re.Match[str], key: str) -> bool:
    value = match.group(1)
    # Context is strong here, so the bar is lower than `_looks_random`'s.
    if _HEX.fullmatch(value) or _classes(value) < 2 or _wordiness(value) >= 0.45:
        return False
    if _entropy(value) < 4.0:
        return False
    # The words may sit before the value or in its metadata / form key.
    near = match.string[max(0, match.start(1) - 80) : match.start(1)] + " " + key
    return bool(_AWS_CONTEXT.search(near) and _SECRET_WORD.search(near))


# Not secrets: masked, templated, variables, or the word itself.
_PLACEHOLDER = re.compile(
    r"(?i)[*x.\u2022#-]+|[<{\[$%].*|.*[>}\]]|[/~].*"
    r"|.*(?:password|passwd|passw|pwd|secret|redacted|placeholder).*|pass|null|none"
)
_CODE_REFERENCE = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+")


def _real_password(match: re.Match[str], _key: str) -> bool:
    value = match.group("v")
    if _PLACEHOLDER.fullmatch(value) or _CODE_REFERENCE.fullmatch(value):
        return False
    after = match.string[match.end("v") : match.end("v") + 1]
    return after != "("  # `password=get_password()` is code


def _bearer(match: re.Match[str], _key: str) -> bool:
    token = match.group(1).rstrip("=")
    if len(token) < 16 or _PLACEHOLDER.fullmatch(token) or _classes(token) < 2:
        return False
    segments = [s for s in re.split(r"[-._~+/]", token) if s]
    wordy = all(_WORDY_SEGMENT.fullmatch(s) for s in segments)
    return not wordy and _entropy(token) >= 3.5


_URL_RESERVED = re.escape(RESERVED_CHARACTERS + SUB_DELIMITER_CHARACTERS)


def _bounded(regex: re.Pattern[str]) -> re.Pattern[str]:
    """A detect-secrets regex that may not start or end inside a longer token."""
    return re.compile(f"{_L}(?:{regex.pattern}){_R}", regex.flags)


_DETECTORS: tuple[_Detector, ...] = (
    _Detector(
        "private_key",
        re.compile(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
            # The body too, to its END within 16 KiB (RSA 4096 is about 3 KiB),
            # or as far as it looks like base64 if cut off.
            r"(?:(?:[\sA-Za-z0-9+/=:,]|-(?!----BEGIN)){0,16384}?"
            r"-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[\sA-Za-z0-9+/=]{0,16384})"
            r"|PuTTY-User-Key-File-\d+:"
        ),
        needs=(_any_of(b"-----BEGIN", b"PuTTY-User-Key-File-"),),
    ),
    _Detector(
        "jwt",
        re.compile(f"{_L}eyJ[A-Za-z0-9_-]{{4,}}\\.[A-Za-z0-9_-]{{2,}}\\.[A-Za-z0-9_-]*{_R}"),
        _jwt,
        needs=(_any_of(b"eyJ"),),
    ),
    _Detector(
        "anthropic_api_key",
        re.compile(f"{_L}sk-ant-[A-Za-z0-9_-]{{20,}}"),
        _body_after(r"sk-ant-(?:[a-z]+\d*-)?"),
        needs=(_SK, _any_of(b"sk-ant-")),
    ),
    _Detector(
        "openai_api_key", _bounded(OpenAIDetector.denylist[0]), needs=(_SK, _any_of(b"T3BlbkFJ"))
    ),
    _Detector(
        "openai_api_key",
        re.compile(f"{_L}sk-(?!ant-)(?:(?:proj|svcacct|admin|None)-)?[A-Za-z0-9_-]{{20,}}"),
        _body_after(r"sk-(?:(?:proj|svcacct|admin|None)-)?"),
        needs=(_SK,),
    ),
    _Detector(
        "github_token",
        _bounded(GitHubTokenDetector.denylist[0]),
        _body_after(r"gh._"),
        needs=(_any_of(b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"),),
    ),
    _Detector(
        "github_token",
        re.compile(f"{_L}github_pat_[A-Za-z0-9]{{20,30}}_[A-Za-z0-9]{{50,70}}{_R}"),
        _body_after("github_pat_"),
        needs=(_any_of(b"github_pat_"),),
    ),
    # Both Slack regexes ignore case.
    _Detector(
        "slack_webhook",
        SlackDetector.denylist[1],
        needs=(_URL_MARK,),
        folded=_any_of(b"hooks.slack.com"),
    ),
    _Detector("slack_token", _bounded(SlackDetector.denylist[0]), folded=_any_of(b"xox")),
    _Detector(
        "stripe_key",
        _bounded(StripeDetector.denylist[0]),
        _body_after(r"[rs]k_live_"),
        needs=(_any_of(b"k_live_"),),
    ),
    _Detector(
        "stripe_key",
        re.compile(f"{_L}[rs]k_test_[0-9a-zA-Z]{{24,}}{_R}"),
        _body_after(r"[rs]k_test_"),
        needs=(_any_of(b"k_test_"),),
    ),
    _Detector(
        "aws_access_key",
        _bounded(AWSKeyDetector.denylist[0]),
        needs=(_any_of(b"A3T", b"ABIA", b"ACCA", b"AKIA", b"ASIA"),),
    ),
    _Detector(
        "aws_secret_key",
        re.compile(r"(?<![A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),
        _aws_secret,
        group=1,
        folded=_any_of(b"aws", b"amazon"),  # `_aws_secret` wants one of them near or in the key
        run=40,
    ),
    _Detector(
        "password_in_url",
        re.compile(f"://[^{_URL_RESERVED}\\s]*:(?P<v>[^{_URL_RESERVED}\\s]+)@"),
        _real_password,
        group=1,
        needs=(_URL_MARK, _any_of(b"@")),
    ),
    _Detector(
        "connection_string_password",
        re.compile(
            # `Password=`, `--password=`, `POSTGRES_PASSWORD=`; the prefix bounded
            # so that long dashed runs cost linear time.
            r"(?i)(?<![\w.])(?:[a-z0-9]{1,32}[_-]){0,4}(?:password|passwd|pwd)\s*=\s*['\"]?"
            r"(?P<v>[^\s;&,'\"()\[\]{}<>=][^\s;&,'\"()\[\]{}<>]*)"
        ),
        _real_password,
        group=1,
        needs=(_any_of(b"="),),
        folded=_any_of(b"passw", b"pwd"),
    ),
    _Detector(
        "bearer_token",
        re.compile(r"(?i)(?<![\w-])bearer\s+([A-Za-z0-9._~+/-]+=*)"),
        _bearer,
        group=1,
        folded=_any_of(b"bearer"),
    ),
)

# Public or harmless blobs that look random: never reported.
_BENIGN = re.compile(
    r"-----BEGIN (?:CERTIFICATE|PUBLIC KEY|RSA PUBLIC KEY|X509 CRL)-----[A-Za-z0-9+/=\s]*"
    r"-----END (?:CERTIFICATE|PUBLIC KEY|RSA PUBLIC KEY|X509 CRL)-----"
    r"|(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-ssh-ed25519@openssh\.com)"
    r" AAAA[A-Za-z0-9+/]+=*"
    r"|sha(?:256|384|512)-[A-Za-z0-9+/]+=*"  # subresource integrity digests
    r"|data:[\w/+.-]+;base64,[A-Za-z0-9+/]+=*"
)
_URL = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s\"'<>]+")
# Query parameters that carry credentials: `?access_token=...`, `&sig=...`.
# As one regex, `[?&#;][\w.-]*(?:token|...)[\w.-]*=([^&#\s]+)`, this took
# quadratic time on a long name (`?keykeykey...`): the name is instead read
# whole, then searched for a word, then its value read (see `_secret_params`).
_PARAM_NAME = re.compile(r"[?&#;]([\w.-]*)=")
_PARAM_WORD = re.compile(r"(?i)token|key|secret|sig|signature|password|auth")
_PARAM_VALUE = re.compile(r"[^&#\s]+")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


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


def _secret_params(url: str) -> Iterator[tuple[int, int]]:
    """The value spans of credential parameters, in linear time.

    The same matches, in order, as `finditer` of the one regex in the
    comment above: a name runs from its separator to the `=` (neither is a
    name character), so where a match starts its name is fixed; a match
    resumes the search at its end, a miss at the next character.
    """
    at = 0
    while (name := _PARAM_NAME.search(url, at)) is not None:
        # The word first: reading a value that is then not taken would read
        # the rest of the URL again at every following separator.
        value = _PARAM_WORD.search(name.group(1)) and _PARAM_VALUE.match(url, name.end())
        if not value:
            at = name.start() + 1
            continue
        yield value.span()
        at = value.end()


def _entropy_spans(text: str, claimed: _Claims) -> Iterator[tuple[int, int]]:
    """Random-looking tokens outside URLs, and credential parameters inside."""
    urls = _Claims(m.span() for m in _URL.finditer(text))
    for url in _URL.finditer(text):
        for start, end in _secret_params(url.group()):
            if _looks_random(url.group()[start:end], min_length=16):
                yield url.start() + start, url.start() + end
    for token in _TOKEN.finditer(text):
        span = token.span()
        if not (urls.overlaps(span) or claimed.overlaps(span)) and _looks_random(token.group()):
            yield span


# --- prefilter ----------------------------------------------------------------
#
# Most strings hold no secret, and running every regex over each of them was
# what a scan cost. `_screen` looks at a text's UTF-8 bytes with substring
# tests only and answers which detectors can match at all: a detector whose
# `needs`, `folded` or `run` fails cannot, since every match of its regex
# holds them. It never decides that something is a secret: a text that
# passes gets the full scan (with the detectors that can match; the others
# would have matched nothing, so claims and order are unchanged), and a text
# that fails would have had no finding. `_scan_text_reference` scans without
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
# `_TOKEN` characters to `a`, every other byte (non-ASCII ones too) to a space.
_RUN_SHAPE = bytes(0x61 if byte in _TOKEN_BYTES else 0x20 for byte in range(256))
_RUN_MIN = b"a" * 24  # `_TOKEN`'s minimum
_DIGIT_BYTES = b"0123456789"
_BENIGN_NEEDS = (b"-----BEGIN ", b" AAAA", b"sha", b"data:")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _three_classes(run: bytes) -> bool:
    """Upper case, lower case and digits: what `_looks_random` demands first."""
    return (
        run.lower() != run
        and run.upper() != run
        and len(run.translate(None, _DIGIT_BYTES)) < len(run)
    )


@dataclass(frozen=True, slots=True)
class _Screen:
    """What a text may hold: everything else it certainly does not."""

    detectors: tuple[_Detector, ...]  # in `_DETECTORS` order
    entropy: bool  # the high-entropy rule may fire
    benign: bool  # `_BENIGN` may match


_EVERYTHING = _Screen(_DETECTORS, entropy=True, benign=True)


def _fold(data: bytes) -> bytes:
    """ASCII-lowercased, after replacing those four characters by their letters."""
    if b"\xc4" in data:  # a lead byte first: memchr is nearly free
        data = data.replace(b"\xc4\xb0", b"i").replace(b"\xc4\xb1", b"i")
    if b"\xc5" in data:
        data = data.replace(b"\xc5\xbf", b"s")
    if b"\xe2" in data:
        data = data.replace(b"\xe2\x84\xaa", b"k")
    return data.lower()


def _screen(data: bytes, key: bytes = b"", within: _Screen = _EVERYTHING) -> _Screen | None:
    """What UTF-8 `data`, a text or a whole serialized pattern, may hold.

    None if no secret at all. `key` is the text's map key chain (context
    for `folded`); `within` an earlier screen of what holds the text.
    """
    runs: list[bytes] = []  # `_TOKEN` runs of 24 or more
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
    detectors: list[_Detector] = []
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
        _URL_MARK[0].search(data) is not None or any(_three_classes(run) for run in runs)
    )
    if not detectors and not entropy:
        return None
    benign = any(part in data for part in _BENIGN_NEEDS)
    return _Screen(tuple(detectors), entropy, benign)


def _scan(text: str, key: str, entropy: bool, screen: _Screen) -> list[str]:
    claimed = _Claims(m.span() for m in _BENIGN.finditer(text)) if screen.benign else _Claims()
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
        kinds.append("high_entropy_string")
    return kinds


def scan_text(text: str, key: str = "", *, entropy: bool = True) -> list[str]:
    """The kinds of secret in one string, once each, in detection order.

    `key` is the map or metadata key (dotted, when nested) the string is
    stored under: context for detectors that need it, such as an AWS secret
    key under `aws.secret_access_key`.
    `entropy=False` skips the generic high-entropy rule, for identifiers.
    """
    screen = _screen(_utf8(text), _utf8(key))
    return [] if screen is None else _scan(text, key, entropy, screen)


def _scan_text_reference(text: str, key: str = "", *, entropy: bool = True) -> list[str]:
    """`scan_text` without the prefilter: every regex on every text."""
    return _scan(text, key, entropy, _EVERYTHING)


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
    within = _screen(pattern.SerializeToString())
    if within is None:
        return []  # no string of the pattern can hold a secret
    seen: dict[tuple[str, str, bool], list[str]] = {}

    def scan(text: str, key: str, entropy: bool) -> list[str]:
        # Map keys are scanned twice, and strings repeat: once per call.
        kinds = seen.get((text, key, entropy))
        if kinds is None:
            screen = _screen(_utf8(text), _utf8(key), within)
            kinds = [] if screen is None else _scan(text, key, entropy, screen)
            seen[text, key, entropy] = kinds
        return kinds

    return _findings(pattern, scan)


def _find_secrets_reference(pattern: memory_pb2.Pattern) -> list[SecretFinding]:
    """`find_secrets` without the prefilter nor the cache."""
    return _findings(
        pattern, lambda text, key, entropy: _scan_text_reference(text, key, entropy=entropy)
    )
