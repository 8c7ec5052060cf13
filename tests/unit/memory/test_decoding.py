"""Tolerant request decoding: never raises, and keeps no unknown field at any depth."""

from __future__ import annotations

from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet
from hypothesis import given
from hypothesis import strategies as st

from attune.memory.v1 import memory_pb2
from memory_service.servicekit.decoding import Undecodable, tolerant

parse = tolerant(memory_pb2.StorePatternRequest.FromString)


def _unknown_anywhere(message: Message) -> bool:
    if len(UnknownFieldSet(message)):
        return True
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = list(value.values())
        elif field.is_repeated:
            values = list(value)
        else:
            values = [value]
        if any(isinstance(v, Message) and _unknown_anywhere(v) for v in values):
            return True
    return False


def test_unknown_fields_are_dropped_at_every_depth() -> None:
    pattern = memory_pb2.Pattern(id="p").SerializeToString() + b"\xba\x3e\x03abc"  # field 999
    body = memory_pb2.StorePatternRequest(namespace="n").SerializeToString()
    request = parse(body + b"\x12" + bytes([len(pattern)]) + pattern + b"\xc0\x3e\x01")
    assert isinstance(request, memory_pb2.StorePatternRequest)
    assert request.pattern.id == "p"
    assert not _unknown_anywhere(request)
    assert len(UnknownFieldSet(memory_pb2.Pattern.FromString(pattern))) == 1  # It was there.


def test_corrupt_bytes_become_undecodable() -> None:
    result = parse(b"\xff\xff\xff")
    assert isinstance(result, Undecodable)
    assert result.size == 3


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_are_marked_undecodable(data: bytes) -> None:
    result = parse(data)
    assert isinstance(result, Undecodable) or not _unknown_anywhere(result)
