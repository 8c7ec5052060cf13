"""Every page-token decoder of both services: any input is a usable cursor or INVALID_ARGUMENT.

"Usable" means the caller can act on it without failing: an offset SQLite
can bind (with a page added), a keyset cursor that encodes as UTF-8, an
audit cursor its log can seek to. Anything else must be ServiceError
INVALID_ARGUMENT naming page_token, never another exception (issue 10,
finding 8: a forged offset of 2**63 gave INTERNAL from an OverflowError).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_service.access.audit import is_sequence_cursor, page_request
from memory_service.access.redis_audit import is_stream_id
from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.paging import (
    MAX_OFFSET,
    decode_cursor,
    decode_token,
    encode_cursor,
    encode_token,
)

SCOPE = "team-a|filter|order"
# The largest page any RPC asks for: an offset plus it must still bind.
LARGEST_PAGE = 1000


def raw_token(payload: str | bytes) -> str:
    data = payload.encode() if isinstance(payload, str) else payload
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forged(body: dict[str, Any]) -> str:
    """A token with the right query key and whatever else the forger wants."""
    return raw_token(json.dumps({**body, "q": hashlib.sha256(SCOPE.encode()).hexdigest()[:16]}))


def refused(error: ServiceError) -> None:
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    fields = [
        violation.field
        for detail in error.details
        if isinstance(detail, error_details_pb2.BadRequest)
        for violation in detail.field_violations
    ]
    assert fields == ["page_token"]


def usable_offset(offset: int) -> None:
    """SQLite binds it, with a page added (as every paged read does)."""
    assert type(offset) is int
    assert 0 <= offset <= MAX_OFFSET
    db = sqlite3.connect(":memory:")
    db.execute("SELECT 1 LIMIT ? OFFSET ?", (offset + LARGEST_PAGE, offset)).fetchall()


def usable_cursor(after: str) -> None:
    assert isinstance(after, str)
    assert after
    after.encode()  # Compared with ids and sent to stores: must be real Unicode.


def offset_or_refused(token: str) -> None:
    try:
        offset = decode_token(token, SCOPE)
    except ServiceError as error:
        refused(error)
    else:
        usable_offset(offset)


def cursor_or_refused(token: str) -> None:
    try:
        after = decode_cursor(token, SCOPE)
    except ServiceError as error:
        refused(error)
    else:
        if after:
            usable_cursor(after)
        else:
            assert token == ""


# --- regressions -----------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [2**53, 2**63 - 1, 2**63, 2**64, 10**30])
def test_an_offset_beyond_any_listing_is_invalid_argument(offset: int) -> None:
    with pytest.raises(ServiceError) as raised:
        decode_token(forged({"o": offset}), SCOPE)
    refused(raised.value)


def test_the_largest_offset_still_round_trips() -> None:
    assert decode_token(encode_token(MAX_OFFSET, SCOPE), SCOPE) == MAX_OFFSET
    usable_offset(MAX_OFFSET)


@pytest.mark.parametrize("after", ["\ud800", "run-\udfff", "\udc00\ud800"])
def test_a_cursor_holding_a_lone_surrogate_is_invalid_argument(after: str) -> None:
    # json.dumps escapes it as \\ud800: plain ASCII on the wire.
    with pytest.raises(ServiceError) as raised:
        decode_cursor(forged({"a": after}), SCOPE)
    refused(raised.value)


def test_a_redis_stream_id_must_fit_64_bits() -> None:
    assert is_stream_id("1700000000000-0")
    assert is_stream_id(f"{2**64 - 1}-{2**64 - 1}")
    assert not is_stream_id(f"{2**64}-0")
    assert not is_stream_id("99999999999999999999-0")
    assert not is_stream_id("1-2-3")


# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**52, max_value=2**70)
    | st.floats()
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["o", "a", "q"]), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300)
@given(token=st.text(max_size=600))
def test_any_text_is_an_offset_or_invalid_argument(token: str) -> None:
    offset_or_refused(token)


@settings(max_examples=300)
@given(payload=st.binary(max_size=128))
def test_any_bytes_are_an_offset_or_invalid_argument(payload: bytes) -> None:
    offset_or_refused(raw_token(payload))
    offset_or_refused(payload.decode("latin-1"))


@settings(max_examples=300)
@given(offset=json_values)
def test_any_forged_offset_is_usable_or_invalid_argument(offset: Any) -> None:
    offset_or_refused(forged({"o": offset}))


@settings(max_examples=300)
@given(offset=st.integers(min_value=0))
def test_any_forged_integer_offset_is_usable_or_invalid_argument(offset: int) -> None:
    offset_or_refused(forged({"o": offset}))


@settings(max_examples=300)
@given(token=st.text(max_size=600))
def test_any_text_is_a_cursor_or_invalid_argument(token: str) -> None:
    cursor_or_refused(token)


@settings(max_examples=300)
@given(payload=st.binary(max_size=128))
def test_any_bytes_are_a_cursor_or_invalid_argument(payload: bytes) -> None:
    cursor_or_refused(raw_token(payload))


@settings(max_examples=300)
@given(after=json_values | st.text(alphabet=st.characters(codec=None), max_size=20))
def test_any_forged_cursor_is_usable_or_invalid_argument(after: Any) -> None:
    cursor_or_refused(forged({"a": after}))


@settings(max_examples=100)
@given(after=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=100))
def test_cursors_the_service_issues_round_trip(after: str) -> None:
    assert decode_cursor(encode_cursor(after, SCOPE), SCOPE) == after


AUDIT_CURSORS: dict[str, Callable[[str], bool]] = {
    "file": is_sequence_cursor,
    "redis": is_stream_id,
}


@pytest.mark.parametrize("log", sorted(AUDIT_CURSORS))
@settings(max_examples=200)
@given(after=json_values | st.from_regex(r"[0-9]{1,25}-[0-9]{1,25}", fullmatch=True))
def test_any_audit_token_is_a_cursor_its_log_can_seek_or_invalid_argument(
    log: str, after: Any
) -> None:
    scope = "audit|'team-a'|"
    token = raw_token(
        json.dumps({"a": after, "q": hashlib.sha256(scope.encode()).hexdigest()[:16]})
    )
    try:
        _, _, _, cursor = page_request("team-a", "", 10, token, AUDIT_CURSORS[log])
    except ServiceError as error:
        refused(error)
        return
    if log == "file":
        assert int(cursor) >= 0
    else:
        assert all(int(part) < 2**64 for part in cursor.split("-"))
