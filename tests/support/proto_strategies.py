"""Hypothesis strategies for any protobuf message, built from its descriptor.

`messages(descriptor)` draws a message of that type with every field kind
covered: each scalar type with its boundary values (empty and huge strings,
astral and odd-but-valid unicode, 0, -1, the extremes of each integer width,
NaN and infinities), enums including undefined numbers, repeated fields,
maps, nested messages (so Timestamp, Duration and Struct too, whose seconds,
nanos and numbers get the same boundaries), and at most one member of each
oneof. Nothing is written per message type.

`Hints` lets a caller bias fields by name (a namespace the caller may
use, a template that exists) so requests also reach the code behind
validation; a hinted field still draws generic values one time in four.

`undecodable()` draws bytes no parser accepts, and `mutated(...)` damages
valid encodings (truncation, a flipped byte, trailing garbage).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

Strategy = st.SearchStrategy[Any]
Hints = Mapping[str, Strategy]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)

# Valid UTF-8 that code often gets wrong: astral planes, the highest code
# point, a byte-order mark, a right-to-left override, combining marks,
# zero-width joiners, controls, NUL, an unassigned and a private-use code point.
ODD_STRINGS = (
    "",
    " ",
    "\x00",
    "\t\r\n",
    "\x7f\x1b[31m",
    "\U0001f600",  # An emoji.
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",  # A joined family.
    "\U0001d518\U0001d52b\U0001d526",  # Mathematical fraktur: astral letters.
    "\U0010ffff",
    "\ufeff",
    "\u202eevil",
    "e\u0301\u0301\u0301",
    "\u200b\u200d",
    "\ufffd",
    "\uffff",
    "\U000e0001",
    "\ue000",
    "İıſ",
    "ß",
    "'; DROP TABLE patterns; --",
    '"',
    "\\",
    "*",
    "%_",
    "../../etc/passwd",
)


def _integers(bounds: tuple[int, int]) -> Strategy:
    low, high = bounds
    edges = sorted(
        {value for value in (0, 1, -1, 2, low, high, low + 1, high - 1) if low <= value <= high}
    )
    return st.one_of(st.sampled_from(edges), st.integers(0, 100), st.integers(low, high))


def _floats(width: Literal[32, 64]) -> Strategy:
    edges = [0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308]
    if width == 32:
        edges = [0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 3.4028234663852886e38]
    return st.one_of(st.sampled_from(edges), st.floats(width=width))


def texts(huge: int) -> Strategy:
    """Any valid-UTF-8 text (no lone surrogates: protobuf strings cannot hold them)."""
    characters = st.characters(codec="utf-8")
    big = st.sampled_from(
        ["a" * huge, "é" * (huge // 2), "😀" * (huge // 4), "word " * (huge // 5)]
    )
    return st.one_of(st.sampled_from(ODD_STRINGS), st.text(characters, max_size=40), big)


def _bytes(huge: int) -> Strategy:
    return st.one_of(st.binary(max_size=40), st.just(b"\x00" * huge), st.just(b""))


def _scalar(field: FieldDescriptor, huge: int) -> Strategy:
    kind = field.type
    if kind in (field.TYPE_INT32, field.TYPE_SINT32, field.TYPE_SFIXED32):
        return _integers(INT32)
    if kind in (field.TYPE_INT64, field.TYPE_SINT64, field.TYPE_SFIXED64):
        return _integers(INT64)
    if kind in (field.TYPE_UINT32, field.TYPE_FIXED32):
        return _integers(UINT32)
    if kind in (field.TYPE_UINT64, field.TYPE_FIXED64):
        return _integers(UINT64)
    if kind == field.TYPE_BOOL:
        return st.booleans()
    if kind == field.TYPE_FLOAT:
        return _floats(32)
    if kind == field.TYPE_DOUBLE:
        return _floats(64)
    if kind == field.TYPE_STRING:
        return texts(huge)
    if kind == field.TYPE_BYTES:
        return _bytes(huge)
    if kind == field.TYPE_ENUM:
        assert field.enum_type is not None
        # Mostly a defined value other than the zero (UNSPECIFIED) one; any int32 too.
        defined = [value.number for value in field.enum_type.values]
        named = [number for number in defined if number] or defined
        return weighted(st.sampled_from(named), _integers(INT32))
    raise TypeError(f"no strategy for field {field.full_name} of type {kind}")


def weighted(usual: Strategy, rare: Strategy, odds: int = 3) -> Strategy:
    """`usual` `odds` times for each time `rare` (one_of alone draws them evenly)."""
    return st.integers(0, odds).flatmap(lambda n: rare if n == odds else usual)


# A scalar field is set one time in three, so a request with a dozen fields
# often has every field valid and reaches the code behind validation; a
# hinted field (a namespace, say) is usually required, and so is a message.
SCALAR_PRESENT = st.integers(0, 2).map(lambda n: n == 0)
HINTED_PRESENT = st.integers(0, 9).map(lambda n: n < 9)
MESSAGE_PRESENT = st.integers(0, 2).map(lambda n: n < 2)


class MessageStrategies:
    """Strategies for messages of any type, with name hints, nesting up to `max_depth`."""

    def __init__(
        self,
        hints: Hints | None = None,
        huge: int = 2_000,
        max_depth: int = 4,
        optional: Collection[str] = (),
    ) -> None:
        self.hints = dict(hints or {})
        self.optional = frozenset(optional)  # Hinted, yet set no more often than others.
        self.huge = huge
        self.max_depth = max_depth
        self._cache: dict[tuple[str, int], Strategy] = {}

    def messages(self, descriptor: Descriptor, depth: int = 0) -> Strategy:
        """Messages of `descriptor`'s type."""
        key = (descriptor.full_name, depth)
        if key not in self._cache:
            self._cache[key] = self._build(descriptor, depth)
        return self._cache[key]

    def _value(self, field: FieldDescriptor, depth: int, hinted: bool = True) -> Strategy:
        """One value of a (non-repeated view of a) field."""
        if field.message_type is not None:
            generic = self.messages(field.message_type, depth + 1)
        else:
            generic = _scalar(field, self.huge)
        # Hints are strings or messages: an enum or number of the same name keeps its own.
        takes_hint = field.message_type is not None or field.type == field.TYPE_STRING
        hint = self.hints.get(field.name) if takes_hint else None
        return generic if hint is None or not hinted else weighted(hint, generic)

    def _presence(self, field: FieldDescriptor) -> Strategy:
        if field.name in self.hints and field.name not in self.optional:
            return HINTED_PRESENT
        return SCALAR_PRESENT if field.message_type is None else MESSAGE_PRESENT

    def _field(self, field: FieldDescriptor, depth: int) -> Strategy:
        """What to assign to a field: a value, a list, or a dict for maps."""
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            # A map's keys take the hint named `<map field>[]`, not the entry's `key`.
            key = _scalar(entry.fields_by_name["key"], self.huge)
            value = self._value(entry.fields_by_name["value"], depth, hinted=False)
            hint = self.hints.get(field.name + "[]")
            if hint is not None and entry.fields_by_name["key"].type == field.TYPE_STRING:
                key = st.one_of(hint, key)
            return st.dictionaries(key, value, max_size=4)
        if field.is_repeated:
            return st.lists(self._value(field, depth), max_size=4)
        return self._value(field, depth)

    def _build(self, descriptor: Descriptor, depth: int) -> Strategy:
        cls = GetMessageClass(descriptor)
        # Past the depth limit, message-typed fields stay empty (Struct is recursive).
        fields = [
            field
            for field in descriptor.fields
            if depth < self.max_depth or field.message_type is None
        ]
        plain = [field for field in fields if field.containing_oneof is None]
        oneofs = [
            [field for field in oneof.fields if field in fields] for oneof in descriptor.oneofs
        ]

        @st.composite
        def build(draw: Callable[[Strategy], Any]) -> Message:
            message = cls()
            for field in plain:
                if draw(self._presence(field)):
                    _assign(message, field, draw(self._field(field, depth)))
            for members in oneofs:
                chosen = draw(st.sampled_from([None, *members]))
                if chosen is not None:
                    _assign(message, chosen, draw(self._field(chosen, depth)))
            return message

        return build()


def _assign(message: Message, field: FieldDescriptor, value: Any) -> None:
    target = getattr(message, field.name)
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        messages_inside = entry.fields_by_name["value"].message_type is not None
        for key, item in value.items():
            if messages_inside:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.is_repeated:
        target.extend(value)
    elif entry is not None:
        target.CopyFrom(value)
    else:
        setattr(message, field.name, value)


def varint(value: int) -> bytes:
    """`value` as a protobuf base-128 varint."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


# Field 999 as a group nested past protobuf's depth limit of 100.
TOO_DEEP = varint((999 << 3) | 3) * 101 + varint((999 << 3) | 4) * 101


def undecodable() -> Strategy:
    """Bytes no message type decodes: corrupt wire format, bad UTF-8, nesting too deep."""
    return st.one_of(
        st.just(TOO_DEEP),
        st.just(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),  # A varint past 64 bits.
        st.just(b"\x0a\x05ab"),  # A length past the end.
        st.just(b"\x0a\x02\xc3\x28"),  # Field 1 as invalid UTF-8 (or unknown bytes).
        st.binary(min_size=1, max_size=64),  # Often undecodable, sometimes unknown fields.
    )


@st.composite
def mutated(draw: Callable[[Strategy], Any], encodings: Strategy) -> bytes:
    """A valid encoding truncated, with a byte flipped, or with garbage appended."""
    data: bytes = draw(encodings)
    if not data:
        noise: bytes = draw(st.binary(min_size=1, max_size=8))
        return noise
    position = draw(st.integers(0, len(data) - 1))
    how = draw(st.sampled_from(["truncate", "flip", "append"]))
    if how == "truncate":
        return data[:position]
    if how == "flip":
        return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]
    garbage: bytes = draw(st.binary(min_size=1, max_size=8))
    return data + garbage
