"""Opaque page tokens bound to the query they page through."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from memory_service.servicekit.errors import invalid_argument

log = logging.getLogger("attune.paging")

T = TypeVar("T")

# An element of a repeated message field: its tag and length prefix, and the
# few scalar fields a result carries beside its payload.
ITEM_OVERHEAD = 32


def _query_key(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def encode_token(offset: int, query: str) -> str:
    """A token for the page starting at offset, valid only for the same query."""
    raw = json.dumps({"o": offset, "q": _query_key(query)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_TOKEN_LENGTH = 1024
# The largest offset a token may carry: far beyond any real listing, and small
# enough that offset + page size stays a valid SQLite integer (a forged 2**63
# would overflow) and an exact JSON number.
MAX_OFFSET = 2**53 - 1


def decode_token(token: str, query: str) -> int:
    """The offset a token points at; INVALID_ARGUMENT if foreign or for another query."""
    if not token:
        return 0
    foreign = invalid_argument([("page_token", "not a token this service issued")])
    if len(token) > MAX_TOKEN_LENGTH:
        raise foreign
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = data["o"]
        bound_to = data["q"]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        raise foreign from None
    # bool is an int subclass; a real token holds a plain int in range.
    if type(offset) is not int or not 0 <= offset <= MAX_OFFSET or not isinstance(bound_to, str):
        raise foreign
    if bound_to != _query_key(query):
        raise invalid_argument([("page_token", "was issued for a different query")])
    return offset


def encode_cursor(after: str, query: str) -> str:
    """A token resuming after the item `after`: stable while items are added."""
    # Raw UTF-8, not \u escapes: an id of astral characters stays a short token.
    raw = json.dumps({"a": after, "q": _query_key(query)}, ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, query: str) -> str:
    """The item a cursor token resumes after ("" for the first page)."""
    if not token:
        return ""
    foreign = invalid_argument([("page_token", "not a token this service issued")])
    if len(token) > MAX_TOKEN_LENGTH:
        raise foreign
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after, bound_to = data["a"], data["q"]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        raise foreign from None
    if not isinstance(after, str) or not after or not isinstance(bound_to, str):
        raise foreign
    if not _is_unicode(after):  # A JSON escape can forge a lone surrogate; no id holds one.
        raise foreign
    if bound_to != _query_key(query):
        raise invalid_argument([("page_token", "was issued for a different query")])
    return after


def _is_unicode(text: str) -> bool:
    """Whether the text is valid Unicode (no lone surrogates), so it can be encoded."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def page_bounds(page_size: int, default: int, maximum: int) -> int:
    """The effective page size; INVALID_ARGUMENT when out of range."""
    if page_size < 0:
        raise invalid_argument([("page_size", "must not be negative")])
    return min(page_size or default, maximum)


def fit_page(
    items: Sequence[T], size_of: Callable[[T], int], name_of: Callable[[T], str], budget: int
) -> tuple[list[T], int | None]:
    """The items a response of `budget` bytes can carry, in order, and where it was cut.

    Returns (kept, cut): `cut` is the index of the first item left for the
    next page, or None when every item was taken or skipped. An item larger
    than the whole budget is skipped (logged) rather than failing the page.
    """
    kept: list[T] = []
    used = 0
    for index, item in enumerate(items):
        size = size_of(item) + ITEM_OVERHEAD
        if size > budget:
            log.warning(
                "item too large for any response; left out",
                extra={"item": name_of(item), "bytes": size},
            )
            continue
        if used + size > budget:
            return kept, index
        kept.append(item)
        used += size
    return kept, None


def next_offset(offset: int, page_size: int, cut: int | None) -> int:
    """Where the next page starts: after the whole page, or at the cut."""
    return offset + (page_size if cut is None else cut)
