"""The descriptor-driven message strategies reach every kind of value the fuzz suite promises."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from tests.support.proto_strategies import MessageStrategies, undecodable
from tests.support.secured_pair import every_method

STRATEGIES = MessageStrategies(huge=300)
FAST = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
REQUEST_TYPES = sorted({m.input_type.full_name: m.input_type for m in every_method()}.items())


@pytest.mark.parametrize(("name", "descriptor"), REQUEST_TYPES, ids=[n for n, _ in REQUEST_TYPES])
def test_every_request_type_round_trips_through_the_wire(name: str, descriptor: Descriptor) -> None:
    @FAST
    @given(STRATEGIES.messages(descriptor))
    def round_trip(message: Message) -> None:
        assert message.DESCRIPTOR.full_name == name
        data = message.SerializeToString(deterministic=True)
        again = type(message).FromString(data).SerializeToString(deterministic=True)
        assert again == data

    round_trip()


# What a Pattern drawn from the strategy can show: boundaries, unicode, containers, oneofs.
PROPERTIES: dict[str, Callable[[memory_pb2.Pattern], bool]] = {
    "NaN": lambda p: math.isnan(p.total_cost_usd) or any(math.isnan(a.cost_usd) for a in p.agents),
    "infinity": lambda p: math.isinf(p.total_cost_usd),
    "max int32": lambda p: 2**31 - 1 in p.tier_distribution.values(),
    "undefined enum": lambda p: p.type not in memory_pb2.PatternType.values(),
    "astral character": lambda p: any(ord(c) > 0xFFFF for c in p.content),
    "huge string": lambda p: len(p.content) >= 300,
    "timestamp out of range": lambda p: not -62135596800 <= p.create_time.seconds <= 253402300799,
    "repeated": lambda p: len(p.tags) >= 2,
    "scalar map": lambda p: len(p.tier_distribution) >= 1,
    "nested message": lambda p: any(a.role for a in p.agents),
    "Struct list": lambda p: any(v.HasField("list_value") for v in p.metadata.fields.values()),
    **{
        f"oneof {kind}": lambda p, k=kind: any(  # type: ignore[misc]
            v.WhichOneof("kind") == k for v in p.form_responses.values()
        )
        for kind in ("string_value", "number_value", "bool_value", "string_list_value")
    },
}


def test_boundaries_containers_and_oneofs_are_all_reached() -> None:
    seen: set[str] = set()

    @settings(
        max_examples=400,
        deadline=None,
        derandomize=True,  # The same draws every run: no flaky misses.
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(MessageStrategies(huge=300, max_depth=3).messages(memory_pb2.Pattern.DESCRIPTOR))
    def observe(pattern: memory_pb2.Pattern) -> None:
        seen.update(name for name, holds in PROPERTIES.items() if holds(pattern))

    observe()
    assert set(PROPERTIES) - seen == set()


def test_struct_values_reach_non_finite_numbers() -> None:
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(MessageStrategies(max_depth=1).messages(struct_pb2.Value.DESCRIPTOR))
    def observe(value: struct_pb2.Value) -> None:
        if value.WhichOneof("kind") == "number_value":
            number = value.number_value
            seen.add("nan" if math.isnan(number) else "inf" if math.isinf(number) else "finite")

    observe()
    assert seen == {"nan", "inf", "finite"}


def test_a_oneof_never_holds_two_members() -> None:
    @FAST
    @given(STRATEGIES.messages(common_pb2.FormValue.DESCRIPTOR))
    def one_member(value: common_pb2.FormValue) -> None:
        assert len(value.ListFields()) <= 1

    one_member()


@FAST
@given(undecodable().filter(lambda data: not data.startswith(b"\n")))
def test_undecodable_bytes_do_not_decode_as_an_empty_message(data: bytes) -> None:
    try:
        common_pb2.StringList.FromString(data)
    except Exception:  # Any parse failure will do.
        return
    # Random bytes may decode as unknown fields; the fixed cases never do.
    assert data not in {b"\xff" * 10 + b"\x01", b"\x0a\x05ab"}
