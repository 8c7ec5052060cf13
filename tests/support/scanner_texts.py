"""Random texts for the scanner tests, built from fragments of every kind.

Secrets, personal data, sensitive terms, their near misses, identifiers,
filler, characters that fold to ASCII letters when case is ignored, and
digits of other scripts: what tests/unit/memory/test_scanner_equivalence.py
feeds both paths of each scanner, and test_scanner_gates.py draws from.
"""

from __future__ import annotations

import base64
import json
import string

from hypothesis import strategies as st

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


# --- personal data ------------------------------------------------------------

_DIGITS = st.text(alphabet=string.digits, min_size=1, max_size=5)
SCRIPTS = st.sampled_from(["0", "\u0660", "\u06f0", "\u0966", "\uff10"])  # zero of five scripts


def in_script(text: str, zero: str) -> str:
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
PII_TEXTS = st.tuples(_texts(PERSONAL, CUES, IDENTIFIERS, WORDS), SCRIPTS).map(
    lambda t: in_script(*t)
)
PII_KEYS = st.sampled_from(["", "notes", "release_version", "client_ip"])


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
