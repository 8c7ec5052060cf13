"""Each scanner prefilter's gate follows from the regex it guards.

The strongest form of "lossless" (test_scanner_equivalence.py checks that
fast and full paths agree on random texts): any text that a detector's
regex matches passes that detector's gate. And the assumptions the
prefilters rest on, about detect-secrets, phonenumbers and `re`, are
checked against the installed libraries.
"""

from __future__ import annotations

import re
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

from memory_service.security import classify, pii, secret_detectors, secret_screen, secrets
from tests.support.scanner_texts import SCRIPTS, in_script

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
    return in_script(text, draw(SCRIPTS))


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
