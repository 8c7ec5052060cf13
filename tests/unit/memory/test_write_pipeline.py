"""The write pipeline's order and outputs, without a server."""

from __future__ import annotations

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.security.identity import Principal, Role
from memory_service.servicekit.errors import ServiceError
from memory_service.write_pipeline import DAY_SECONDS, Retention, secret_rejection, secure
from tests.unit.executor.test_secrets import SAMPLES

ALICE = Principal("alice", Role.WRITER, frozenset({"team-a"}))
NOW_US = 1_780_000_000_000_000


def insight(content: str, **fields: object) -> memory_pb2.Pattern:
    return memory_pb2.Pattern(
        id="p1",
        type=memory_pb2.PATTERN_TYPE_INSIGHT,
        content=content,
        **fields,  # type: ignore[arg-type]
    )


def test_retention_by_classification() -> None:
    retention = Retention(public_seconds=3.0, internal_seconds=2.0, sensitive_seconds=1.0)
    assert retention.seconds(common_pb2.CLASSIFICATION_PUBLIC) == 3.0
    assert retention.seconds(common_pb2.CLASSIFICATION_INTERNAL) == 2.0
    assert retention.seconds(common_pb2.CLASSIFICATION_SENSITIVE) == 1.0
    assert Retention().seconds(common_pb2.CLASSIFICATION_INTERNAL) == 180 * DAY_SECONDS


def test_secured_pattern_is_scrubbed_classified_owned_and_expiring() -> None:
    original = insight("mail ops@example.com about the salary review")
    secured = secure(original, ALICE, Retention(), NOW_US)
    assert secured.pattern.content == "mail [EMAIL] about the salary review"
    assert dict(secured.scrubbed) == {"email": 1}
    assert secured.pattern.classification == common_pb2.CLASSIFICATION_SENSITIVE
    assert "salary" in secured.classification_reason
    assert secured.pattern.owner == "alice"
    assert secured.pattern.expire_time.ToMicroseconds() == NOW_US + int(90 * DAY_SECONDS * 1e6)
    assert original.content == "mail ops@example.com about the salary review", "input untouched"
    assert not original.owner


def test_clean_pattern_is_a_copy_not_the_input() -> None:
    original = insight("all tests passed")
    secured = secure(original, ALICE, Retention(), NOW_US)
    assert secured.pattern is not original
    assert not original.owner
    assert secured.pattern.classification == common_pb2.CLASSIFICATION_INTERNAL
    assert dict(secured.scrubbed) == {}


def test_pinned_patterns_never_expire_and_a_sent_expiry_is_ignored() -> None:
    pinned = insight("keep", pinned=True)
    pinned.expire_time.FromSeconds(1)
    assert not secure(pinned, ALICE, Retention(), NOW_US).pattern.HasField("expire_time")
    unpinned = insight("keep")
    unpinned.expire_time.FromSeconds(1)
    stored = secure(unpinned, ALICE, Retention(), NOW_US).pattern
    assert stored.expire_time.ToMicroseconds() > NOW_US


def test_the_owner_is_the_caller_not_what_the_writer_claims() -> None:
    claimed = insight("x", owner="mallory")
    assert secure(claimed, ALICE, Retention(), NOW_US).pattern.owner == "alice"


def test_explicit_classification_wins() -> None:
    public = insight("salary bands", classification=common_pb2.CLASSIFICATION_PUBLIC)
    stored = secure(public, ALICE, Retention(), NOW_US).pattern
    assert stored.classification == common_pb2.CLASSIFICATION_PUBLIC


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_secrets_are_refused_before_scrubbing(kind: str) -> None:
    secret, text = SAMPLES[kind]
    pattern = insight(f"mail ops@example.com {text}")
    with pytest.raises(ServiceError) as caught:
        secure(pattern, ALICE, Retention(), NOW_US, "requests[3].")
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{kind} in requests[3].pattern.content" in error.message
    assert secret not in error.message
    assert secret not in repr(error.details)


def test_no_secret_no_rejection() -> None:
    assert secret_rejection(insight("fine"), "") is None
