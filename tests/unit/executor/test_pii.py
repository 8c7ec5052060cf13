"""PII scrubbing: every kind replaced and counted, every identifier kept."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from executor_service.runs.store import new_run_id
from memory_service.security.pii import scrub_pattern, scrub_text

SHA256 = hashlib.sha256(b"attune").hexdigest()

# kind -> texts that hold exactly one of it, and what they scrub to.
SCRUBBED: list[tuple[str, str, str]] = [
    ("email", "Mail bob.smith+ci@example.co.uk today.", "Mail [EMAIL] today."),
    ("email", "from ALICE@Example.COM", "from [EMAIL]"),
    ("phone", "Call (650) 253-0000 now", "Call [PHONE] now"),
    ("phone", "phone: +1 202-456-1111.", "phone: [PHONE]."),
    ("phone", "or 202.456.1111, thanks", "or [PHONE], thanks"),
    ("phone", "UK office +44 20 7946 0958", "UK office [PHONE]"),
    ("phone", "call me at 6502530000", "call me at [PHONE]"),
    ("ssn", "SSN 123-45-6789 on file", "SSN [SSN] on file"),
    ("credit_card", "Card 4111 1111 1111 1111 was declined", "Card [CREDIT_CARD] was declined"),
    ("credit_card", "amex 3782-822463-10005", "amex [CREDIT_CARD]"),
    ("credit_card", "paid with card 5555555555554444.", "paid with card [CREDIT_CARD]."),
    ("ip_address", "client 203.0.113.42 connected", "client [IP_ADDRESS] connected"),
    ("ip_address", "from 2001:db8::8a2e:370:7334.", "from [IP_ADDRESS]."),
    ("ip_address", "see http://198.51.100.7:8080/x", "see http://[IP_ADDRESS]:8080/x"),
    ("ip_address", "link-local fe80::1%eth0 up", "link-local [IP_ADDRESS] up"),
    ("street_address", "Ship to 1600 Pennsylvania Avenue NW.", "Ship to [STREET_ADDRESS] NW."),
    ("street_address", "at 221B Baker Street, London", "at [STREET_ADDRESS], London"),
    ("street_address", "HQ: 350 5th Ave", "HQ: [STREET_ADDRESS]"),
    ("street_address", "lives at 42 Old Mill Rd.", "lives at [STREET_ADDRESS]."),
]


def test_every_kind_is_covered() -> None:
    kinds = {kind for kind, _, _ in SCRUBBED}
    assert kinds == {"email", "phone", "ssn", "credit_card", "ip_address", "street_address"}


@pytest.mark.parametrize(("kind", "text", "expected"), SCRUBBED)
def test_each_kind_is_replaced_and_counted(kind: str, text: str, expected: str) -> None:
    assert scrub_text(text) == (expected, {kind: 1})


def test_many_kinds_in_one_text_are_counted_by_kind() -> None:
    text = (
        "Contact bob@example.com or ann@example.org, phone (650) 253-0000, "
        "SSN 123-45-6789, card 4111-1111-1111-1111, IP 203.0.113.9, "
        "address 10 Downing Street."
    )
    scrubbed, counts = scrub_text(text)
    assert scrubbed == (
        "Contact [EMAIL] or [EMAIL], phone [PHONE], SSN [SSN], card [CREDIT_CARD], "
        "IP [IP_ADDRESS], address [STREET_ADDRESS]."
    )
    assert counts == {
        "email": 2,
        "phone": 1,
        "ssn": 1,
        "credit_card": 1,
        "ip_address": 1,
        "street_address": 1,
    }


def test_regression_identifiers_in_content_come_out_byte_identical() -> None:
    # The design this replaced made `python_package_publish-20[PHONE]59` of the first.
    content = (
        "Run python_package_publish-20260117-052959 "
        "(20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e) started 2026-01-17T05:29:59Z; "
        f"artifact sha256:{SHA256}; released v1.2.3 for $0.0594."
    )
    pattern = memory_pb2.Pattern(content=content)
    scrubbed, counts = scrub_pattern(pattern)
    assert scrubbed.content.encode() == content.encode()
    assert counts == {}


def test_regression_a_phone_number_written_full_width_is_scrubbed() -> None:
    # Full-width parentheses and dash, as Japanese and Chinese text write them:
    # phonenumbers found the number, but the "written as a phone number" rule
    # only knew the ASCII forms, so it stayed.
    number = "\uff08\uff16\uff15\uff10\uff09\uff12\uff15\uff13\uff0d\uff10\uff10\uff10\uff10"
    assert scrub_text(f"\u96fb\u8a71 {number}\u3002") == (
        "\u96fb\u8a71 [PHONE]\u3002",
        {"phone": 1},
    )
    grouped = "\uff16\uff15\uff10\uff0d\uff12\uff15\uff13\uff0d\uff10\uff10\uff10\uff10"
    assert scrub_text(f"see {grouped}") == ("see [PHONE]", {"phone": 1})


KEPT = [
    "python_package_publish-20260117-052959",
    "20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e",
    "2026-01-17T05:29:59Z",
    "2026-01-17T05:29:59.123456+00:00",
    "2026-01-17 05:29:59",
    "05:29:59",
    SHA256,
    f"sha256:{SHA256}",
    "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "01KF2C3R8T4X5Y6Z7A8B9C0D1E",
    "550e8400-e29b-41d4-a716-446655440000",
    "v1.2.3",
    "version 1.2.3.4",
    "v1.2.3.4",
    "pkg@1.2.3.4",
    "grpcio==1.85.1",
    "3.11.7",
    "$0.0594",
    "1,234.56",
    "12.5s",
    "87.5%",
    "epoch 1768627799",
    "millis 1768627799000",
    "id 2024011705",
    "order-4111111111111111",
    "run 6502530000-a",
    "ticket ABC-123-45-6789",
    "claude-haiku-4-5-20251001",
    "gpt-5-mini",
    "listening on 0.0.0.0:50052",
    "127.0.0.1:6379",
    "[::1]:50051",
    "x[1::2] and a[::2]",
    "std::vector<int>",
    "git@github.com:anthropics/attune.git",
    "Copied 12 Files To Google Drive",
    "Ran 3 tests on the way home",
    "step 2 of 5",
    "agents: 3 (2 cheap, 1 premium), 142 tests",
    "/home/runner/work/attune/memory_service/security/pii.py:120",
    "https://github.com/anthropics/attune/pull/1234",
]


@pytest.mark.parametrize("text", KEPT)
def test_identifiers_are_kept(text: str) -> None:
    assert scrub_text(f"See {text}.") == (f"See {text}.", {})
    assert scrub_text(text) == (text, {})


def pattern_with(text: str) -> memory_pb2.Pattern:
    pattern = memory_pb2.Pattern(
        id="20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e",
        type=memory_pb2.PATTERN_TYPE_EXECUTION,
        template_id="python_package_publish",
        run_id="20260117-052959-01kf2c3r8t4x5y6z7a8b9c0d1e",
        runner="simulated",
        content=text,
        tags=["python", text],
        total_cost_usd=0.0594,
    )
    pattern.agents.add(role="test_runner", tier=common_pb2.TIER_PREMIUM, cost_usd=0.01)
    pattern.form_responses["notes"].string_value = text
    pattern.form_responses["contact"].string_list_value.values.extend(["mypy", text])
    pattern.form_responses["phone_digits"].number_value = 6502530000
    pattern.form_responses["has_tests"].bool_value = True
    pattern.metadata.update(
        {"owner": {"email": text, "history": [text, {"deep": text}]}, "count": 6502530000}
    )
    return pattern


def test_free_text_fields_are_scrubbed_and_the_rest_kept() -> None:
    original = pattern_with("bob@example.com")
    before = original.SerializeToString(deterministic=True)
    scrubbed, counts = scrub_pattern(original)
    assert original.SerializeToString(deterministic=True) == before  # a copy; input untouched
    assert counts == {"email": 5}
    assert scrubbed.content == "[EMAIL]"
    assert scrubbed.form_responses["notes"].string_value == "[EMAIL]"
    assert json_format.MessageToDict(scrubbed.metadata) == {
        "owner": {"email": "[EMAIL]", "history": ["[EMAIL]", {"deep": "[EMAIL]"}]},
        "count": 6502530000,
    }
    # Chosen options, tags, ids and typed values are not free text.
    assert list(scrubbed.form_responses["contact"].string_list_value.values) == [
        "mypy",
        "bob@example.com",
    ]
    assert list(scrubbed.tags) == ["python", "bob@example.com"]
    assert scrubbed.form_responses["phone_digits"].number_value == 6502530000
    expected = pattern_with("bob@example.com")
    for field in ("content", "form_responses", "metadata"):
        expected.ClearField(field)
        scrubbed.ClearField(field)
    assert scrubbed == expected


def test_a_clean_pattern_is_an_equal_copy() -> None:
    original = pattern_with("All 142 tests passed on 3.11.7 in 12.5s for $0.0594.")
    scrubbed, counts = scrub_pattern(original)
    assert counts == {}
    assert scrubbed == original
    assert scrubbed is not original


def test_a_version_key_keeps_a_four_part_version() -> None:
    pattern = memory_pb2.Pattern()
    pattern.metadata.update({"release_version": "10.2.0.1", "client_ip": "10.2.0.1"})
    scrubbed, counts = scrub_pattern(pattern)
    assert scrubbed.metadata["release_version"] == "10.2.0.1"
    assert scrubbed.metadata["client_ip"] == "[IP_ADDRESS]"
    assert counts == {"ip_address": 1}


@pytest.mark.parametrize(
    "text",
    [
        "SSN 000-12-3456",  # no area 000
        "SSN 666-12-3456",
        "SSN 912-12-3456",
        "card 4111 1111 1111 1112",  # Luhn fails
        "card 1234 5678 9012 3452",  # no issuer starts with 1
        "IP 999.1.1.1",
        "IP 01.02.03.04",
        "phone (555) 555-5555",  # not a valid US number
    ],
)
def test_lookalikes_that_fail_validation_are_kept(text: str) -> None:
    assert scrub_text(text) == (text, {})


_MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
_IDENTIFIERS = st.one_of(
    _MOMENTS.map(new_run_id),
    _MOMENTS.map(lambda m: f"python_package_publish-{m:%Y%m%d-%H%M%S}"),
    _MOMENTS.map(lambda m: m.isoformat().replace("+00:00", "Z")),
    _MOMENTS.map(lambda m: m.isoformat(timespec="milliseconds")),
    _MOMENTS.map(lambda m: f"{m:%Y-%m-%d %H:%M:%S}"),
    _MOMENTS.map(lambda m: f"{m:%Y%m%d%H%M%S}"),
    _MOMENTS.map(lambda m: str(int(m.timestamp()))),
    _MOMENTS.map(lambda m: str(int(m.timestamp() * 1000))),
    st.binary(min_size=16, max_size=16).map(lambda b: str(ULID.from_bytes(b))),
    st.uuids().map(str),
    st.binary(min_size=1, max_size=32).map(lambda b: hashlib.sha256(b).hexdigest()),
    st.tuples(*[st.integers(0, 40)] * 3).map(lambda v: "v{}.{}.{}".format(*v)),
    st.integers(0, 10**6).map(lambda c: f"${c / 10**4:.4f}"),
)
_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10)
_PUNCTUATION = st.sampled_from([" ", " ", ", ", ". ", " (", ") ", ": ", "; ", "\n", " - "])


@st.composite
def prose_with_identifiers(draw: st.DrawFn) -> tuple[str, list[str]]:
    pieces: list[str] = []
    identifiers: list[str] = []
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            identifier = draw(_IDENTIFIERS)
            identifiers.append(identifier)
            pieces.append(identifier)
        else:
            pieces.append(draw(_WORDS).capitalize() if draw(st.booleans()) else draw(_WORDS))
        pieces.append(draw(_PUNCTUATION))
    return "".join(pieces), identifiers


@settings(max_examples=200, deadline=None)
@given(prose_with_identifiers())
def test_identifiers_in_random_prose_survive(case: tuple[str, list[str]]) -> None:
    text, identifiers = case
    scrubbed, counts = scrub_pattern(memory_pb2.Pattern(content=text))
    assert scrubbed.content == text
    assert counts == {}
    assert all(identifier in scrubbed.content for identifier in identifiers)


_PII = st.sampled_from([text for _, text, _ in SCRUBBED])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_PII, _IDENTIFIERS, _WORDS), min_size=1, max_size=10), _PUNCTUATION)
def test_scrubbing_is_idempotent(parts: list[str], separator: str) -> None:
    once, _ = scrub_pattern(pattern_with(separator.join(parts)))
    twice, counts = scrub_pattern(once)
    assert twice == once
    assert counts == {}
