"""The secret rules: each kind's regex, what every match of it holds (for the
prefilter, secret_screen.py), the check that a match is really a secret, and
the blobs never reported. The scanner is secrets.py.

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
value looks random; see `looks_random` for the generic rule.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterator
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

_ENTROPY = Base64HighEntropyString()
# Edges: a secret never continues an identifier on either side.
_L = r"(?<![A-Za-z0-9_-])"
_R = r"(?![A-Za-z0-9_-])"

# "One of these byte strings", for the prefilter (see `screen_bytes`): regexes
# that each search for the literals sharing a first byte, since `re` finds a
# literal prefix (factored out of an alternation) faster than `in` does.
_Need = tuple[re.Pattern[bytes], ...]


def _any_of(*literals: bytes) -> _Need:
    by_first: dict[int, list[bytes]] = {}
    for literal in literals:
        by_first.setdefault(literal[0], []).append(re.escape(literal))
    return tuple(re.compile(b"|".join(group)) for group in by_first.values())


_SK = _any_of(b"sk-")
URL_MARK = _any_of(b"://")

# (match, dotted map keys above the string) -> is it really a secret?
_Check = Callable[[re.Match[str], str], bool]


@dataclass(frozen=True, slots=True)
class Detector:
    kind: str
    regex: re.Pattern[str]
    check: _Check | None = None
    group: int = 0  # the group that is the secret, for claiming its span
    # The prefilter (see `screen_bytes`): what every match of `regex` holds, so
    # that a text without it skips the regex. Each of `needs` must be found
    # in the UTF-8 text as it is; `folded` in the ASCII-lowercased text or
    # key; and `run` is the least length of a run of `TOKEN` characters.
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


def looks_random(token: str, min_length: int = 24) -> bool:
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
    # Context is strong here, so the bar is lower than `looks_random`'s.
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


DETECTORS: tuple[Detector, ...] = (
    Detector(
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
    Detector(
        "jwt",
        re.compile(f"{_L}eyJ[A-Za-z0-9_-]{{4,}}\\.[A-Za-z0-9_-]{{2,}}\\.[A-Za-z0-9_-]*{_R}"),
        _jwt,
        needs=(_any_of(b"eyJ"),),
    ),
    Detector(
        "anthropic_api_key",
        re.compile(f"{_L}sk-ant-[A-Za-z0-9_-]{{20,}}"),
        _body_after(r"sk-ant-(?:[a-z]+\d*-)?"),
        needs=(_SK, _any_of(b"sk-ant-")),
    ),
    Detector(
        "openai_api_key", _bounded(OpenAIDetector.denylist[0]), needs=(_SK, _any_of(b"T3BlbkFJ"))
    ),
    Detector(
        "openai_api_key",
        re.compile(f"{_L}sk-(?!ant-)(?:(?:proj|svcacct|admin|None)-)?[A-Za-z0-9_-]{{20,}}"),
        _body_after(r"sk-(?:(?:proj|svcacct|admin|None)-)?"),
        needs=(_SK,),
    ),
    Detector(
        "github_token",
        _bounded(GitHubTokenDetector.denylist[0]),
        _body_after(r"gh._"),
        needs=(_any_of(b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"),),
    ),
    Detector(
        "github_token",
        re.compile(f"{_L}github_pat_[A-Za-z0-9]{{20,30}}_[A-Za-z0-9]{{50,70}}{_R}"),
        _body_after("github_pat_"),
        needs=(_any_of(b"github_pat_"),),
    ),
    # Both Slack regexes ignore case.
    Detector(
        "slack_webhook",
        SlackDetector.denylist[1],
        needs=(URL_MARK,),
        folded=_any_of(b"hooks.slack.com"),
    ),
    Detector("slack_token", _bounded(SlackDetector.denylist[0]), folded=_any_of(b"xox")),
    Detector(
        "stripe_key",
        _bounded(StripeDetector.denylist[0]),
        _body_after(r"[rs]k_live_"),
        needs=(_any_of(b"k_live_"),),
    ),
    Detector(
        "stripe_key",
        re.compile(f"{_L}[rs]k_test_[0-9a-zA-Z]{{24,}}{_R}"),
        _body_after(r"[rs]k_test_"),
        needs=(_any_of(b"k_test_"),),
    ),
    Detector(
        "aws_access_key",
        _bounded(AWSKeyDetector.denylist[0]),
        needs=(_any_of(b"A3T", b"ABIA", b"ACCA", b"AKIA", b"ASIA"),),
    ),
    Detector(
        "aws_secret_key",
        re.compile(r"(?<![A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),
        _aws_secret,
        group=1,
        folded=_any_of(b"aws", b"amazon"),  # `_aws_secret` wants one of them near or in the key
        run=40,
    ),
    Detector(
        "password_in_url",
        re.compile(f"://[^{_URL_RESERVED}\\s]*:(?P<v>[^{_URL_RESERVED}\\s]+)@"),
        _real_password,
        group=1,
        needs=(URL_MARK, _any_of(b"@")),
    ),
    Detector(
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
    Detector(
        "bearer_token",
        re.compile(r"(?i)(?<![\w-])bearer\s+([A-Za-z0-9._~+/-]+=*)"),
        _bearer,
        group=1,
        folded=_any_of(b"bearer"),
    ),
)

# Public or harmless blobs that look random: never reported.
BENIGN = re.compile(
    r"-----BEGIN (?:CERTIFICATE|PUBLIC KEY|RSA PUBLIC KEY|X509 CRL)-----[A-Za-z0-9+/=\s]*"
    r"-----END (?:CERTIFICATE|PUBLIC KEY|RSA PUBLIC KEY|X509 CRL)-----"
    r"|(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-ssh-ed25519@openssh\.com)"
    r" AAAA[A-Za-z0-9+/]+=*"
    r"|sha(?:256|384|512)-[A-Za-z0-9+/]+=*"  # subresource integrity digests
    r"|data:[\w/+.-]+;base64,[A-Za-z0-9+/]+=*"
)
URL = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s\"'<>]+")
# Query parameters that carry credentials: `?access_token=...`, `&sig=...`.
# As one regex, `[?&#;][\w.-]*(?:token|...)[\w.-]*=([^&#\s]+)`, this took
# quadratic time on a long name (`?keykeykey...`): the name is instead read
# whole, then searched for a word, then its value read (see `secret_params`).
_PARAM_NAME = re.compile(r"[?&#;]([\w.-]*)=")
_PARAM_WORD = re.compile(r"(?i)token|key|secret|sig|signature|password|auth")
_PARAM_VALUE = re.compile(r"[^&#\s]+")
TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


def secret_params(url: str) -> Iterator[tuple[int, int]]:
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
