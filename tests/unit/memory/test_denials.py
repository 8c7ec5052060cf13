"""The refused-calls budget: token buckets per peer and principal, folded audit records."""

from __future__ import annotations

import ipaddress
import json

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory_service.access.audit import AuditAction, AuditRecord
from memory_service.access.denials import DenialLimiter, peer_host
from tests.support.helpers import ManualClock


def limiter(
    emitted: list[AuditRecord], clock: ManualClock, burst: int = 3, per_second: float = 2.0
) -> DenialLimiter:
    return DenialLimiter(per_second, burst, 60.0, emit=emitted.append, clock=clock)


PEER = "ipv4:10.0.0.7:51234"


def test_the_burst_then_the_refill_rate() -> None:
    clock = ManualClock()
    budget = limiter([], clock)
    assert [budget.charge(PEER, "") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.charge(PEER, "") == pytest.approx(0.5)  # One token at 2/s.
    clock.now += 0.5
    assert budget.charge(PEER, "") == 0.0
    assert budget.charge(PEER, "") == pytest.approx(0.5)
    clock.now += 3600  # Refills up to the burst, no further.
    assert [budget.charge(PEER, "") for _ in range(4)][-1] > 0


def test_budgets_are_per_peer_host_and_principal() -> None:
    budget = limiter([], ManualClock(), burst=1)
    assert budget.charge(PEER, "") == 0.0
    assert budget.charge("ipv4:10.0.0.7:60000", "") > 0  # Another port, same host.
    assert budget.charge(PEER, "alice") == 0.0  # A principal has its own.
    assert budget.charge("ipv4:10.0.0.8:51234", "") == 0.0


def test_exhausted_carries_retry_info_and_quota_failure() -> None:
    error = limiter([], ManualClock()).exhausted(PEER, 1.5)
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry, quota = error.details
    assert retry.retry_delay.ToMilliseconds() == 1500  # type: ignore[attr-defined]
    assert quota.violations[0].subject == "peer:10.0.0.7"  # type: ignore[attr-defined]


def denied(action: str = AuditAction.GET, namespace: str = "team-a") -> AuditRecord:
    return AuditRecord(
        principal="", namespace=namespace, action=action, outcome="RESOURCE_EXHAUSTED", peer=PEER
    )


async def test_folding_writes_the_first_and_counts_the_rest() -> None:
    emitted: list[AuditRecord] = []
    budget = limiter(emitted, ManualClock())
    for n in range(25):
        budget.fold(denied(namespace=f"ns-{n}"), PEER)  # The namespace never splits a fold.
    budget.fold(denied(AuditAction.STORE), PEER)
    assert [(r.action, r.repeat_count, r.namespace) for r in emitted] == [
        ("get", 1, ""),
        ("store", 1, ""),
    ]
    await budget.close()
    assert [(r.action, r.repeat_count) for r in emitted[2:]] == [("get", 24)]


@given(st.ip_addresses(v=4), st.integers(1, 65535))
def test_an_ipv4_peer_is_its_address(address: ipaddress.IPv4Address, port: int) -> None:
    assert peer_host(f"ipv4:{address}:{port}") == str(address)


@given(st.ip_addresses(v=6), st.ip_addresses(v=6), st.integers(1, 65535))
def test_ipv6_peers_share_a_budget_per_64(
    one: ipaddress.IPv6Address, other: ipaddress.IPv6Address, port: int
) -> None:
    same_network = int(one) >> 64 == int(other) >> 64
    assert (peer_host(f"ipv6:[{one}]:{port}") == peer_host(f"ipv6:[{other}]:1")) == same_network


@given(st.text(max_size=80))
def test_any_peer_string_has_a_host(peer: str) -> None:
    assert isinstance(peer_host(peer), str)


TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300)


@given(TEXT, TEXT, st.integers(-(2**40), 2**40))
def test_audit_records_keep_peer_and_repeats_through_json_and_proto(
    principal: str, peer: str, repeats: int
) -> None:
    record = AuditRecord(
        principal=principal, namespace="ns", action="get", peer=peer, repeat_count=repeats
    )
    assert 1 <= record.repeat_count <= 2**31 - 1
    assert len(record.peer) <= 256
    line = json.dumps(record.to_json(), ensure_ascii=True)
    assert AuditRecord.from_json(json.loads(line)) == record
    event = record.to_proto()
    assert (event.peer, event.repeat_count) == (record.peer, record.repeat_count)


def test_records_of_older_versions_stand_for_one_call() -> None:
    older = {"event_time": "2025-06-01T12:00:00Z", "principal": "alice", "action": "get"}
    record = AuditRecord.from_json(older)
    assert (record.peer, record.repeat_count) == ("", 1)
