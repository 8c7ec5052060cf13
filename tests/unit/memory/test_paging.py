"""Page tokens: bound to their query, and garbage is always INVALID_ARGUMENT."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.paging import MAX_OFFSET, decode_token, encode_token, page_bounds


def violation_fields(error: ServiceError) -> list[str]:
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    fields: list[str] = []
    for detail in error.details:
        assert isinstance(detail, error_details_pb2.BadRequest)
        fields.extend(violation.field for violation in detail.field_violations)
    return fields


def raw_token(payload: str | bytes) -> str:
    data = payload.encode() if isinstance(payload, str) else payload
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def assert_offset_or_invalid(token: str, query: str) -> None:
    """The contract: an offset >= 0, or ServiceError(INVALID_ARGUMENT) on page_token."""
    offset: int | ServiceError
    try:
        offset = decode_token(token, query)
    except ServiceError as error:
        offset = error
    if isinstance(offset, ServiceError):
        assert violation_fields(offset) == ["page_token"]
    else:
        assert isinstance(offset, int)
        assert offset >= 0


# --- round trip --------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, 1, 50, 10**12])
def test_round_trip(offset: int) -> None:
    assert decode_token(encode_token(offset, "templates"), "templates") == offset


@settings(max_examples=200)
@given(offset=st.integers(min_value=0, max_value=MAX_OFFSET), query=st.text())
def test_round_trip_for_any_query(offset: int, query: str) -> None:
    token = encode_token(offset, query)
    assert "=" not in token
    assert token == token.strip()
    assert decode_token(token, query) == offset


def test_token_is_url_safe_and_opaque() -> None:
    token = encode_token(20, "namespace=alice&q=python")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert "alice" not in token


def test_empty_token_is_the_first_page() -> None:
    assert decode_token("", "anything") == 0


# --- foreign tokens ----------------------------------------------------------------------


def test_token_for_another_query_is_invalid_argument() -> None:
    token = encode_token(10, "ns=alice q=python")
    with pytest.raises(ServiceError) as raised:
        decode_token(token, "ns=bob q=python")
    assert violation_fields(raised.value) == ["page_token"]
    assert "different query" in raised.value.message


@settings(max_examples=200)
@given(offset=st.integers(min_value=0, max_value=10**6), issued=st.text(), used=st.text())
def test_token_only_decodes_for_its_own_query(offset: int, issued: str, used: str) -> None:
    token = encode_token(offset, issued)
    if issued == used:
        assert decode_token(token, used) == offset
    else:
        with pytest.raises(ServiceError) as raised:
            decode_token(token, used)
        assert violation_fields(raised.value) == ["page_token"]


def test_negative_offset_is_invalid_argument() -> None:
    with pytest.raises(ServiceError) as raised:
        decode_token(encode_token(-1, "q"), "q")
    assert violation_fields(raised.value) == ["page_token"]


@pytest.mark.parametrize(
    "token",
    [
        "!!!",
        "a",
        "not a token",
        "é",
        raw_token("not json"),
        raw_token("[]"),
        raw_token('"text"'),
        raw_token("42"),
        raw_token("null"),
        raw_token("{}"),
        raw_token('{"o": 1}'),
        raw_token('{"q": "x"}'),
        raw_token('{"o": "many", "q": "x"}'),
        raw_token('{"o": NaN, "q": "x"}'),
        raw_token('{"o": [1], "q": "x"}'),
        raw_token(b"\xff\xfe\x00"),
    ],
)
def test_garbage_is_invalid_argument(token: str) -> None:
    with pytest.raises(ServiceError) as raised:
        decode_token(token, "q")
    assert violation_fields(raised.value) == ["page_token"]


# --- arbitrary garbage -------------------------------------------------------------------


@settings(max_examples=300)
@given(token=st.text(), query=st.text(max_size=10))
def test_any_text_is_an_offset_or_invalid_argument(token: str, query: str) -> None:
    assert_offset_or_invalid(token, query)


@settings(max_examples=200)
@given(payload=st.binary(max_size=64))
def test_any_bytes_behind_base64_are_an_offset_or_invalid_argument(payload: bytes) -> None:
    assert_offset_or_invalid(raw_token(payload), "q")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["o", "q", "x"]), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200)
@given(value=json_values)
def test_any_json_behind_base64_is_an_offset_or_invalid_argument(value: Any) -> None:
    assert_offset_or_invalid(raw_token(json.dumps(value)), "q")


@settings(max_examples=100)
@given(offset=json_values)
def test_any_offset_value_with_the_right_query_is_an_offset_or_invalid_argument(
    offset: Any,
) -> None:
    # The query key is right, so only the offset's shape decides.
    real = json.loads(base64.urlsafe_b64decode(encode_token(0, "q") + "=="))
    assert_offset_or_invalid(raw_token(json.dumps({"o": offset, "q": real["q"]})), "q")


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps({"o": math.inf, "q": "x"}),  # '{"o": Infinity, ...}'
        '{"o": -Infinity, "q": "x"}',
        '{"o": 1e999, "q": "x"}',
        "[" * 100_000,
    ],
)
def test_pathological_json_is_invalid_argument(payload: str) -> None:
    with pytest.raises(ServiceError) as raised:
        decode_token(raw_token(payload), "q")
    assert violation_fields(raised.value) == ["page_token"]


# --- page_bounds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"), [(0, 25), (1, 1), (25, 25), (100, 100), (101, 100), (10**9, 100)]
)
def test_page_bounds(size: int, expected: int) -> None:
    assert page_bounds(size, default=25, maximum=100) == expected


def test_negative_page_size_is_invalid_argument() -> None:
    with pytest.raises(ServiceError) as raised:
        page_bounds(-1, default=25, maximum=100)
    assert violation_fields(raised.value) == ["page_size"]
