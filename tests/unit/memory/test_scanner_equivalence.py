"""The scanners' prefilters are lossless: fast and full paths agree exactly.

`find_secrets`, `scrub_pattern` and `classify` skip the expensive detectors
on texts that cannot match them. Each module keeps its full path callable
(`_find_secrets_reference`, `_scrub_pattern_reference`,
`_classify_reference`, and the per-text ones), and here random texts built
from fragments of every kind (secrets, personal data, sensitive terms, their
near misses, identifiers, filler, characters that fold to ASCII letters when
case is ignored, digits of other scripts) must get the same answer from
both. The assumptions the prefilters rest on, about detect-secrets,
phonenumbers and `re`, are checked against the installed libraries.
"""

from __future__ import annotations

import base64
import json
import re
import string
import sys

import phonenumbers
import pytest
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.stripe import StripeDetector
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import phonemetadata, phonenumbermatcher, phonenumberutil

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.security import classify, pii, secret_detectors, secret_screen, secrets
from tests.corpus.generate import corpus

B62 = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits


def _chars(alphabet: str, low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=low, max_size=high)


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


_JWTS = st.builds(
    lambda header, body, sig: f"{_b64url(header)}.{_b64url(body)}.{sig}",
    st.sampled_from([{"alg": "HS256", "typ": "JWT"}, {"alg": "none"}, {"typ": "x"}]),
    st.dictionaries(st.sampled_from(["sub", "iat", "aud"]), st.integers(0, 10**10)),
    _chars(B62 + "-_", 0, 43),
)
_PRIVATE_KEYS = st.builds(
    lambda kind, body, end: (
        f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n"
        + (f"-----END {kind}PRIVATE KEY-----" if end else "")
    ),
    st.sampled_from(["", "RSA ", "EC ", "OPENSSH "]),
    _chars(B62 + "+/=\n", 0, 200),
    st.booleans(),
)

# Secrets of every kind, and what only looks like one.
SECRETS = st.one_of(
    _chars(B62 + "-_", 20, 100).map(lambda s: "sk-ant-api03-" + s),
    _chars(B62, 20, 60).map(lambda s: "sk-proj-" + s),
    _chars(B62 + "-_", 15, 60).map(lambda s: "sk-" + s),
    st.tuples(_chars(B62, 20, 20), _chars(B62, 20, 20)).map(lambda t: f"sk-{t[0]}T3BlbkFJ{t[1]}"),
    st.tuples(
        st.sampled_from(["A3TX", "ABIA", "ACCA", "AKIA", "ASIA"]), _chars(UPPER_DIGITS, 14, 17)
    ).map("".join),
    _chars(B62 + "/+", 38, 42),
    st.tuples(st.sampled_from("pousr"), _chars(B62, 34, 37)).map(lambda t: f"gh{t[0]}_{t[1]}"),
    st.tuples(_chars(B62, 22, 22), _chars(B62, 59, 59)).map(lambda t: f"github_pat_{t[0]}_{t[1]}"),
    st.tuples(st.sampled_from("abposr"), _chars(string.digits, 1, 13), _chars(B62, 1, 24)).map(
        lambda t: f"xox{t[0]}-{t[1]}-{t[2]}"
    ),
    st.tuples(_chars(UPPER_DIGITS, 8, 8), _chars(UPPER_DIGITS, 10, 10), _chars(B62, 24, 24)).map(
        lambda t: f"https://hooks.slack.com/services/T{t[0]}/B{t[1]}/{t[2]}"
    ),
    st.tuples(
        st.sampled_from(["sk_live_", "rk_live_", "sk_test_", "rk_test_"]), _chars(B62, 22, 30)
    ).map("".join),
    _PRIVATE_KEYS,
    st.just("PuTTY-User-Key-File-3: ssh-ed25519"),
    _JWTS,
    _chars(B62 + "._~+/-", 10, 40).map(lambda s: "Authorization: Bearer " + s),
    st.tuples(
        st.sampled_from(["postgres", "redis", "https"]), _chars(B62, 0, 8), _chars(B62, 1, 16)
    ).map(lambda t: f"{t[0]}://{t[1]}:{t[2]}@db.internal:5432/app"),
    st.tuples(
        st.sampled_from(["Password=", "--password=", "POSTGRES_PASSWORD=", "pwd = "]),
        _chars(B62 + "!", 1, 16),
    ).map("".join),
    _chars(B62, 16, 64),  # high entropy, or not
    _chars(B62, 20, 40).map(lambda s: "https://x.example/cb?access_token=" + s),
    _chars(B62 + "+/", 40, 80).map(lambda s: "ssh-ed25519 AAAA" + s),
    _chars(B62 + "+/", 40, 80).map(lambda s: "integrity sha512-" + s),
)
# Every prefilter literal on its own, and the characters that ignore-case
# regexes take for ASCII letters: `pa\u017f\u017fword`, `BEARER`.
NEAR_MISSES = st.sampled_from(
    [
        "sk-",
        "sk-ant-",
        "T3BlbkFJ",
        "eyJ",
        "AKIA",
        "A3T",
        "ghp_",
        "github_pat_",
        "xoxb-",
        "XOXB-1-",
        "xoxp-12-ab",
        "://",
        "@",
        "=",
        "k_live_",
        "k_test_",
        "-----BEGIN",
        "-----END",
        "PuTTY-User-Key-File-",
        "hooks.slack.com",
        "HOOKS.SLACK.COM/services/",
        "Bearer",
        "BEARER",
        "bearer",
        "password",
        "PASSWORD=",
        "passwd=",
        "pwd=",
        "pa\u017f\u017fword=",
        "Beare\u0280",
        "bearer\u00a0",
        "pa\u017f\u017fword",
        "\u212aey",
        "\u0130",
        "\u0131",
        "\u017f",
        "\u212a",
        "aws",
        "AWS_SECRET",
        "amazon",
        "Amazon",
        "aws_secret_access_key =",
        "\u00e9",
        "\u2014",
        "sha256-",
        " AAAA",
        "data:",
        "data:image/png;base64,",
        "https://",
        "?token=",
        "&sig=",
    ]
)
IDENTIFIERS = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex.upper()),
    st.binary(min_size=16, max_size=32).map(lambda b: b.hex()),
    st.integers(0, 10**12).map(lambda n: f"python_package_publish-{n:014d}"),
    st.just("20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e"),
    st.just("01KF2C3R8T4X5Y6Z7A8B9C0D1E"),
    st.just("handles_personal_data=true"),
    st.just("GetRecommendationsV2Handler"),
)
WORDS = st.one_of(
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=10),
    st.text(min_size=1, max_size=6),  # anything at all
)
SEPARATORS = st.sampled_from(
    ["", " ", " ", "\n", ", ", ": ", "=", "/", "-", "_", ".", "'", '"', "\u00a0", "\t", "; "]
)


def _texts(*fragments: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Fragments joined by separators, maybe glued, maybe in another case."""
    piece = st.one_of(*fragments).flatmap(
        lambda text: st.sampled_from(
            [text, text, text, text.upper(), text.lower(), text.swapcase()]
        )
    )
    return st.lists(st.tuples(piece, SEPARATORS), min_size=1, max_size=8).map(
        lambda parts: "".join(text + sep for text, sep in parts)
    )


SECRET_TEXTS = _texts(SECRETS, NEAR_MISSES, IDENTIFIERS, WORDS)
KEYS = st.sampled_from(
    ["", "notes", "aws", "aws.secret_access_key", "AMAZON_KEY", "db.\u017fecret"]
)


@settings(max_examples=800, deadline=None)
@given(SECRET_TEXTS, KEYS, st.booleans())
def test_scan_text_finds_what_the_full_scan_finds(text: str, key: str, entropy: bool) -> None:
    assert secrets.scan_text(text, key, entropy=entropy) == secrets._scan_text_reference(
        text, key, entropy=entropy
    )


def _pattern(texts: list[str], keys: list[str]) -> memory_pb2.Pattern:
    """Texts in every kind of field, map keys included."""
    pattern = memory_pb2.Pattern(
        id=texts[0], template_id=texts[-1], run_id="20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e"
    )
    pattern.content = "\n".join(texts)
    pattern.tags.extend(texts[:3])
    pattern.agents.add(role=texts[-1], cost_usd=0.0123)
    for index, (key, text) in enumerate(zip(keys, texts, strict=False)):
        pattern.form_responses[key or "q"].string_value = text
        pattern.form_responses[f"{key}_list"].string_list_value.values.extend([text, "x"])
        pattern.metadata.update({key or f"k{index}": {"value": text, "list": [text, 1.5]}})
    pattern.total_cost_usd = 0.0594
    return pattern


@settings(max_examples=300, deadline=None)
@given(
    st.lists(SECRET_TEXTS, min_size=1, max_size=4),
    st.lists(st.one_of(KEYS, SECRET_TEXTS), max_size=3),
)
def test_find_secrets_finds_what_the_full_scan_finds(texts: list[str], keys: list[str]) -> None:
    pattern = _pattern(texts, keys)
    assert secrets.find_secrets(pattern) == secrets._find_secrets_reference(pattern)


# --- personal data ------------------------------------------------------------

_DIGITS = st.text(alphabet=string.digits, min_size=1, max_size=5)
_SCRIPTS = st.sampled_from(["0", "\u0660", "\u06f0", "\u0966", "\uff10"])  # zero of five scripts


def _in_script(text: str, zero: str) -> str:
    return "".join(chr(ord(zero) + int(c)) if c.isascii() and c.isdigit() else c for c in text)


PERSONAL = st.one_of(
    st.sampled_from(
        [
            "bob.smith+ci@example.co.uk",
            "ALICE@Example.COM",
            "git@github.com:org/repo",
            "(650) 253-0000",
            "+1 202-456-1111",
            "202.456.1111",
            "+44 20 7946 0958",
            "6502530000",
            "+43 1 58858",
            "+49 30 901820",
            "+290 22222",
            "+683 4002",
            "1-800-555-0199 ext. 1234",
            "(555) 555-5555",
            "123-45-6789",
            "666-12-3456",
            "4111 1111 1111 1111",
            "3782-822463-10005",
            "5555555555554444",
            "4111111111111111",
            "203.0.113.42",
            "10.2.0.1",
            "127.0.0.1",
            "2001:db8::8a2e:370:7334",
            "fe80::1%eth0",
            "dead:beef::cafe",
            "[::1]:50051",
            "1600 Pennsylvania Avenue",
            "221B Baker Street",
            "350 5th Ave",
            "42 Old Mill Rd.",
            "10 DOWNING ST",
            "12 Google Drive",
            "v1.2.3.4",
            "version 1.2.3.4",
        ]
    ),
    # Digit groups apart by anything short: what phone numbers are made of.
    st.lists(
        st.tuples(
            _DIGITS, st.sampled_from(["", " ", "-", ".", "  ", " - ", ")", "(", "/", "x", "~"])
        ),
        min_size=1,
        max_size=6,
    ).map(lambda parts: "".join(d + sep for d, sep in parts)),
    st.tuples(st.sampled_from(["", "+", "+1 ", "(", "011 "]), _DIGITS, _DIGITS, _DIGITS).map(
        lambda t: f"{t[0]}{t[1]} {t[2]}-{t[3]}"
    ),
    st.tuples(*[st.integers(0, 300)] * 4).map(lambda t: "{}.{}.{}.{}".format(*t)),
    st.text(alphabet=string.digits, min_size=12, max_size=20),
)
CUES = st.sampled_from(
    [
        "call",
        "phone:",
        "Card",
        "visa",
        "paid with card",
        "SSN",
        "IP",
        "v",
        "version",
        "at",
        "Ship to",
    ]
)
PII_TEXTS = st.tuples(_texts(PERSONAL, CUES, IDENTIFIERS, WORDS), _SCRIPTS).map(
    lambda t: _in_script(*t)
)
PII_KEYS = st.sampled_from(["", "notes", "release_version", "client_ip"])


@settings(max_examples=800, deadline=None)
@given(PII_TEXTS, PII_KEYS)
def test_scrub_text_scrubs_what_the_full_scrub_scrubs(text: str, key: str) -> None:
    assert pii.scrub_text(text, key) == pii._scrub_text_reference(text, key)


@settings(max_examples=200, deadline=None)
@given(st.lists(PII_TEXTS, min_size=1, max_size=4), st.lists(PII_KEYS, max_size=3))
def test_scrub_pattern_scrubs_what_the_full_scrub_scrubs(texts: list[str], keys: list[str]) -> None:
    pattern = _pattern(texts, keys)
    before = pattern.SerializeToString(deterministic=True)
    fast, fast_counts = pii.scrub_pattern(pattern)
    full, full_counts = pii._scrub_pattern_reference(pattern)
    assert fast == full
    assert fast_counts == full_counts
    assert fast is not pattern
    assert pattern.SerializeToString(deterministic=True) == before


# --- classification -----------------------------------------------------------

TERMS = st.sampled_from(
    [
        "confidential",
        "Confidentiality",
        "secret",
        "SECRETS",
        "password",
        "passwords",
        "credential",
        "private key",
        "private_keys",
        "PRIVATE-KEY",
        "personal  data",
        "personal_data",
        "pii",
        "PII",
        "customer data",
        "customer-data",
        "medical",
        "salary",
        "salaries",
        "ssn",
        "SSNs",
        "gdpr",
        "\u017fecret",
        "\u017f\u017fn",
        "PR\u0130VATE KEY",
        "pr\u0131vate key",
        "secretary",
        "passwordless",
        "ssnumber",
        "[public]",
        "[ Open Source ]",
        "classification: public",
        "visibility = open-source",
        "class\u0131fication: public",
        "public",
        "open source",
    ]
)
CLASSIFY_TEXTS = _texts(TERMS, WORDS, IDENTIFIERS)


@settings(max_examples=500, deadline=None)
@given(
    CLASSIFY_TEXTS,
    st.lists(st.one_of(TERMS, CLASSIFY_TEXTS), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "notes"]), CLASSIFY_TEXTS, max_size=2),
    st.lists(CLASSIFY_TEXTS, max_size=2),
)
def test_classify_answers_what_the_full_classify_answers(
    content: str, tags: list[str], answers: dict[str, str], options: list[str]
) -> None:
    pattern = memory_pb2.Pattern(id="p1", content=content, tags=tags)
    for key, text in answers.items():
        pattern.form_responses[key].string_value = text
    pattern.form_responses["options"].string_list_value.values.extend(options)
    # The reason lists every term found and where: equal reasons, equal terms.
    assert classify.classify(pattern) == classify._classify_reference(pattern)


# --- each gate follows from the regex it guards --------------------------------
#
# The strongest form of "lossless": any text that a detector's regex matches
# (drawn by hypothesis from the regex itself, other scripts' digits and
# spaces and any case included) passes that detector's gate.


@pytest.mark.parametrize("detector", secret_detectors.DETECTORS, ids=lambda d: d.kind)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_text_a_detector_matches_passes_its_screen(
    detector: secret_detectors.Detector, data: st.DataObject
) -> None:
    text = data.draw(st.from_regex(detector.regex))
    # `_aws_secret` also wants an AWS word near the value or in its key.
    key = "aws" if detector.kind == "aws_secret_key" else ""
    screen = secret_screen.screen_bytes(secret_screen.utf8(text), secret_screen.utf8(key))
    assert screen is not None
    assert detector in screen.detectors


@settings(max_examples=300, deadline=None)
@given(st.from_regex(secret_detectors.TOKEN), st.text(max_size=5), st.text(max_size=5))
def test_a_random_token_passes_the_entropy_screen(token: str, before: str, after: str) -> None:
    text = before + token + after
    if any(True for _ in secrets._entropy_spans(text, secrets._Claims())):
        screen = secret_screen.screen_bytes(secret_screen.utf8(text))
        assert screen is not None
        assert screen.entropy


@pytest.mark.parametrize(
    ("kind", "regex"),
    [
        ("email", pii._EMAIL),
        ("ip_address", pii._IPV4),
        ("ip_address", pii._IPV6),
        ("credit_card", pii._CARD_CANDIDATE),
        ("ssn", pii._SSN),
        ("street_address", pii._STREET),
    ],
)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_text_a_finder_regex_matches_passes_its_gate(
    kind: str, regex: re.Pattern[str], data: st.DataObject
) -> None:
    text = data.draw(st.from_regex(regex))
    gate = {name: gate for name, _, _, gate in pii._SCRUBBERS}[kind]
    shape = pii._shape(text)
    assert gate(text, shape)
    assert "0" in shape or "@" in text or ":" in text  # `_scrub` stops early otherwise


_PHONE_PUNCTUATION = phonenumberutil._VALID_PUNCTUATION.replace("\\", "") + "+x#;,ext"


@st.composite
def written_phone_numbers(draw: st.DrawFn) -> str:
    """A real number of any region, its digits grouped any way, in any script."""
    region = draw(st.sampled_from(sorted(phonenumberutil.SUPPORTED_REGIONS)))
    number = phonenumbers.example_number(region)
    assert number is not None
    digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    if draw(st.booleans()):
        digits = digits[len(str(number.country_code)) :]  # national, or taken for US
    digits = digits[: draw(st.integers(1, len(digits)))] if draw(st.booleans()) else digits
    pieces = [draw(st.sampled_from(["", "+", "(", "+(", "011 "]))]
    for digit in digits:
        pieces.append(digit)
        pieces.append(draw(st.text(alphabet=_PHONE_PUNCTUATION, max_size=7)))
    text = "".join(pieces) + draw(st.sampled_from(["", " ext. 12", " x3", ";ext=4"]))
    return _in_script(text, draw(_SCRIPTS))


@settings(max_examples=600, deadline=None)
@given(written_phone_numbers(), st.sampled_from(["call ", "", "phone: ", "a"]))
def test_a_text_with_a_phone_number_passes_the_phone_gate(number: str, before: str) -> None:
    text = f"{before}{number} ok"
    if list(pii._phones(text, "")):
        assert pii._PHONE_GATE.search(pii._shape(text))


@pytest.mark.parametrize(("term", "regex"), classify.SENSITIVE_TERMS, ids=lambda t: str(t))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_text_a_term_matches_holds_its_word(
    term: str, regex: re.Pattern[str], data: st.DataObject
) -> None:
    text = data.draw(st.from_regex(regex))
    assert classify._TERM_WORDS[term] in classify._fold(text)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(classify.PUBLIC_MARKER))
def test_a_text_with_a_public_marker_holds_a_marker_word(text: str) -> None:
    assert any(word in classify._fold(text) for word in classify._MARKER_WORDS)


# What regexes ignoring case match through the four folding characters, and
# digits of other scripts: each is found by the full path, and by the fast.
_SECRET_CASES = [
    "PA\u017f\u017fWORD=hunter2x",
    "pwd=hunter2x \u212a",
    "Authorization: BEARER\u00a0Zt8qV3mLr7Kx9Np2Wd5Hs1Yb",
    "https://hoo\u212as.\u017flack.com/services/TABC12345/BABCDE12345/"
    + "Zt8qV3mLr7Kx9Np2Wd5Hs1Yb",
    "AW\u017f secret key: Zt8qV3mLr7Kx9Np2Wd5Hs1Yb+Qc4Gf6Jk0Tu2Ea3/Rv",
]
_PII_CASES = [
    "call \u0666\u0665\u0660\u0662\u0665\u0663\u0660\u0660\u0660\u0660",
    "SSN \u0661\u0662\u0663-\u0664\u0665-\u0666\u0667\u0668\u0669",
    "\u0661\u0666\u0660\u0660 Pennsylvania Avenue",
    "\uff08\uff16\uff15\uff10\uff09\uff12\uff15\uff13\uff0d\uff10\uff10\uff10\uff10",
    "dead:beef::cafe",
]
_CLASSIFY_CASES = ["\u017fecret", "PR\u0130VATE KEY", "pr\u0131vate_key", "[PUBL\u0130C]"]


@pytest.mark.parametrize("text", _SECRET_CASES)
def test_folding_secret_cases(text: str) -> None:
    assert secrets._scan_text_reference(text) != []
    assert secrets.scan_text(text) == secrets._scan_text_reference(text)


@pytest.mark.parametrize("text", _PII_CASES)
def test_other_script_pii_cases(text: str) -> None:
    assert pii._scrub_text_reference(text)[1] != {}
    assert pii.scrub_text(text) == pii._scrub_text_reference(text)


@pytest.mark.parametrize("text", _CLASSIFY_CASES)
def test_folding_classify_cases(text: str) -> None:
    pattern = memory_pb2.Pattern(content=text)
    assert classify._classify_reference(pattern)[0] != classify.INTERNAL
    assert classify.classify(pattern) == classify._classify_reference(pattern)


# --- the seeded corpus, clean and with fragments in it ------------------------


@pytest.fixture(scope="module")
def patterns() -> list[memory_pb2.Pattern]:
    return corpus(60)


def test_the_corpus_gets_the_same_answers(patterns: list[memory_pb2.Pattern]) -> None:
    for pattern in patterns:
        assert secrets.find_secrets(pattern) == secrets._find_secrets_reference(pattern)
        assert pii.scrub_pattern(pattern) == pii._scrub_pattern_reference(pattern)
        assert classify.classify(pattern) == classify._classify_reference(pattern)


@settings(max_examples=100, deadline=None)
@given(st.data(), SECRET_TEXTS, PII_TEXTS, CLASSIFY_TEXTS)
def test_corpus_patterns_with_fragments_get_the_same_answers(
    patterns: list[memory_pb2.Pattern], data: st.DataObject, secret: str, personal: str, term: str
) -> None:
    pattern = memory_pb2.Pattern()
    pattern.CopyFrom(data.draw(st.sampled_from(patterns)))
    pattern.content += f"\n{secret}\n{personal} {term}"
    pattern.metadata.update({"aws": {"secret_access_key": secret}, "note": personal})
    pattern.form_responses["notes"].string_value = term
    assert secrets.find_secrets(pattern) == secrets._find_secrets_reference(pattern)
    assert pii.scrub_pattern(pattern) == pii._scrub_pattern_reference(pattern)
    assert classify.classify(pattern) == classify._classify_reference(pattern)


def test_explicit_classification_takes_the_same_path() -> None:
    pattern = memory_pb2.Pattern(content="secret", classification=common_pb2.CLASSIFICATION_PUBLIC)
    assert classify.classify(pattern) == classify._classify_reference(pattern)


# --- what the prefilters assume about the libraries ---------------------------


def test_only_four_non_ascii_characters_match_ascii_letters_ignoring_case() -> None:
    # The prefilters fold these to ASCII before lowering; any other would be missed.
    everything = "".join(
        chr(c) for c in range(0x80, sys.maxunicode + 1) if not 0xD800 <= c < 0xE000
    )
    found = set(re.findall(r"(?i)[a-z]", everything))
    assert found == {"\u0130", "\u0131", "\u017f", "\u212a"}
    assert classify._fold("".join(sorted(found))) == "iisk"
    assert secret_screen._fold("".join(sorted(found)).encode()) == b"iisk"


def test_detect_secrets_regexes_are_the_ones_the_prefilter_was_written_for() -> None:
    # An upgrade that changes one must come with a look at its `needs`.
    assert [r.pattern for r in AWSKeyDetector.denylist][:1] == [
        "(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}"
    ]
    assert [r.pattern for r in GitHubTokenDetector.denylist] == [
        "(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}"
    ]
    assert [r.pattern for r in OpenAIDetector.denylist] == [
        "sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"
    ]
    assert [r.pattern for r in SlackDetector.denylist] == [
        "xox(?:a|b|p|o|s|r)-(?:\\d+-)+[a-z0-9]+",
        "https://hooks\\.slack\\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+",
    ]
    assert [r.pattern for r in StripeDetector.denylist] == ["(?:r|s)k_live_[0-9a-zA-Z]{24}"]


def test_the_phone_gate_fits_phonenumbers() -> None:
    # The matcher joins digit blocks with at most this much punctuation...
    limit = f"[{phonenumberutil._VALID_PUNCTUATION}]{{0,{pii._PHONE_MAX_GAP}}}"
    assert limit == phonenumbermatcher._PUNCTUATION
    assert phonenumbermatcher._DIGIT_SEQUENCE.startswith("\\d")
    # ...and a valid number has at least this many digits: its country code
    # and the shortest national number of the regions sharing it, less the
    # digits the main region's transform rule adds when parsing.
    least = 10  # a US number, written without a country code
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        metadata = [
            phonemetadata.PhoneMetadata.metadata_for_nongeo_region(code)
            if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
            else phonemetadata.PhoneMetadata.metadata_for_region(region)
            for region in regions
        ]
        shortest = sys.maxsize
        for region in metadata:
            assert region is not None
            assert region.general_desc is not None
            shortest = min(shortest, *(n for n in region.general_desc.possible_length if n > 0))
        main = metadata[0]  # whose rules parse a number given with this code
        assert main is not None
        rule = re.sub(r"\\\d", "", main.national_prefix_transform_rule or "")  # not `\1`
        least = min(least, len(str(code)) + shortest - sum(c.isdigit() for c in rule))
    assert least >= pii._PHONE_MIN_DIGITS


def test_the_phone_gate_passes_every_example_number() -> None:
    formats = [
        phonenumbers.PhoneNumberFormat.E164,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.NATIONAL,
    ]
    checked = 0
    for region in phonenumberutil.SUPPORTED_REGIONS:
        for kind in range(12):  # every PhoneNumberType
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            for form in formats:
                text = f"call {phonenumbers.format_number(number, form)} now"
                found = list(pii._phones(text, ""))
                assert not found or pii._PHONE_GATE.search(pii._shape(text)), text
                checked += bool(found)
    assert checked > 1000
