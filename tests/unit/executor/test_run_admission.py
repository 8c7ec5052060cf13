"""Run admission: token buckets, in-flight counts and who a caller is."""

from __future__ import annotations

import ipaddress

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor_service.runs.admission import RunAdmission, caller_key
from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.rate import TokenBucket, peer_address
from tests.support.helpers import ManualClock


def admission(
    clock: ManualClock,
    max_in_flight: int = 0,
    max_in_flight_per_caller: int = 0,
    per_minute_per_caller: int = 0,
    per_minute: int = 0,
) -> RunAdmission:
    return RunAdmission(
        max_in_flight, max_in_flight_per_caller, per_minute_per_caller, per_minute, clock
    )


@given(
    capacity=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=200),
)
def test_a_bucket_never_admits_more_than_its_burst_plus_its_rate(
    capacity: int, gaps: list[float]
) -> None:
    clock = ManualClock()
    gate = admission(clock, per_minute_per_caller=capacity)
    admitted: list[float] = []
    codes: set[grpc.StatusCode] = set()
    for gap in gaps:
        clock.now += gap
        try:
            gate.admit("alice").release()
        except ServiceError as error:
            codes.add(error.code)
        else:
            admitted.append(clock.now)
    assert codes <= {grpc.StatusCode.RESOURCE_EXHAUSTED}
    # In any window, at most a burst plus what the rate refills meanwhile.
    for start_index, start in enumerate(admitted):
        for end_index in range(start_index, len(admitted)):
            count = end_index - start_index + 1
            span = admitted[end_index] - start
            assert count <= capacity + span * capacity / 60 + 1e-6


def test_a_refused_caller_is_told_when_to_retry_and_others_pass() -> None:
    clock = ManualClock()
    gate = admission(clock, per_minute_per_caller=2)
    gate.admit("alice").release()
    gate.admit("alice").release()
    with pytest.raises(ServiceError) as refused:
        gate.admit("alice")
    assert "retry in 30.0 s" in refused.value.message
    gate.admit("bob").release()
    clock.now += 30
    gate.admit("alice").release()


def test_in_flight_slots_are_counted_and_released_once() -> None:
    clock = ManualClock()
    gate = admission(clock, max_in_flight=3, max_in_flight_per_caller=2)
    first = gate.admit("alice")
    gate.admit("alice")
    with pytest.raises(ServiceError):
        gate.admit("alice")
    gate.admit("bob")
    with pytest.raises(ServiceError):
        gate.admit("carol")
    first.release()
    first.release()  # a second release frees nothing more
    assert gate.in_flight() == 2
    assert gate.in_flight("alice") == 1
    gate.admit("carol")


def test_idle_callers_are_forgotten() -> None:
    clock = ManualClock()
    gate = admission(clock, per_minute_per_caller=5)
    for n in range(3000):
        gate.admit(f"token:{n}").release()
        clock.now += 0.05
    # Only callers whose bucket has not refilled yet (the last minute) are kept.
    assert len(gate._callers) <= 1025


def test_a_bucket_waits_exactly_for_its_next_token() -> None:
    bucket = TokenBucket.full(6, now=0.0)
    for _ in range(6):
        assert bucket.wait(0.0) == 0
        bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(10.0)
    assert bucket.wait(10.0) == 0


@given(st.ip_addresses(), st.integers(min_value=0, max_value=65535))
def test_a_peer_is_its_address_without_the_port(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    peer = f"ipv4:{address}:{port}" if address.version == 4 else f"ipv6:[{address}]:{port}"
    assert peer_address(peer) == str(address)
    assert caller_key((), peer) == f"peer:{address}"


@given(st.lists(st.text(), min_size=1, max_size=3), st.text())
def test_a_token_names_the_caller_by_its_hash_only(tokens: list[str], peer: str) -> None:
    key = caller_key(tokens, peer)
    assert key.startswith("token:")
    assert len(key) == len("token:") + 16
    assert key == caller_key(list(tokens), "ipv4:10.0.0.1:1")
