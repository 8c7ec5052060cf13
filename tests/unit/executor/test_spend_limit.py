"""Spend per caller over a sliding hour (issue 11): the window arithmetic and the refusal."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from hypothesis import given
from hypothesis import strategies as st

from executor_service.runs.spend_limit import SpendLimit
from memory_service.servicekit.errors import ServiceError
from tests.support.helpers import ManualClock

HOUR = 3600.0


def refusal(limit: SpendLimit, caller: str) -> tuple[ServiceError, str, float]:
    """The refusal, its QuotaFailure subject and its RetryInfo delay."""
    with pytest.raises(ServiceError) as caught:
        limit.check(caller)
    error = caught.value
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    [quota] = [d for d in error.details if isinstance(d, error_details_pb2.QuotaFailure)]
    [retry] = [d for d in error.details if isinstance(d, error_details_pb2.RetryInfo)]
    return error, quota.violations[0].subject, retry.retry_delay.ToNanoseconds() / 1e9


def test_a_caller_at_the_limit_is_refused_until_enough_spend_ages_out() -> None:
    clock = ManualClock()
    limit = SpendLimit(1.0, clock)
    limit.charge("alice", 0.6)
    clock.now += 1200
    limit.check("alice")  # under the limit
    limit.charge("alice", 0.4)  # exactly at it: refused
    error, subject, delay = refusal(limit, "alice")
    assert subject == "alice"
    assert "EXECUTOR_MAX_SPEND_PER_HOUR_PER_CALLER_USD" in error.message
    # The first 0.6 ages out an hour after it was spent, leaving 0.4.
    assert delay == pytest.approx(HOUR - 1200)
    limit.check("bob")  # others are unaffected
    clock.now += delay - 1
    refusal(limit, "alice")
    clock.now += 1
    limit.check("alice")
    assert limit.spent("alice") == pytest.approx(0.4)


def test_no_limit_tracks_nothing() -> None:
    limit = SpendLimit(0.0, ManualClock())
    limit.charge("alice", 1e9)
    limit.check("alice")
    assert limit.spent("alice") == 0.0


def test_charges_close_together_age_out_with_the_latest() -> None:
    clock = ManualClock()
    limit = SpendLimit(1.0, clock, grain=10.0)
    limit.charge("alice", 0.5)
    clock.now += 9
    limit.charge("alice", 0.5)
    _, _, delay = refusal(limit, "alice")
    assert delay == pytest.approx(HOUR)  # one entry, aging out with its latest charge
    clock.now += HOUR - 1
    assert limit.spent("alice") == pytest.approx(1.0)  # never forgotten early
    clock.now += 1
    assert limit.spent("alice") == 0.0


def test_callers_whose_spend_aged_out_are_forgotten() -> None:
    clock = ManualClock()
    limit = SpendLimit(1.0, clock)
    for number in range(2000):
        limit.charge(f"caller-{number}", 0.1)
        clock.now += 5
    # The first caller's spend aged out long before the last ones'.
    assert len(limit._callers) <= 1024


# Times are whole seconds so the clock's arithmetic is exact; amounts are any.
charges = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=900),
        st.floats(min_value=0, max_value=5, allow_nan=False, allow_infinity=False),
    ),
    max_size=60,
)


@given(
    charges=charges,
    limit_usd=st.floats(min_value=0.01, max_value=20),
    grain=st.sampled_from([1.0, 10.0, 60.0]),
    later=st.integers(min_value=0, max_value=8000),
)
def test_the_window_never_forgets_spend_early_and_its_retry_delay_is_exact(
    charges: list[tuple[int, float]], limit_usd: float, grain: float, later: int
) -> None:
    clock = ManualClock()
    clock.now = 0.0
    limit = SpendLimit(limit_usd, clock, window=HOUR, grain=grain)
    spent_at: list[tuple[float, float]] = []
    for gap, usd in charges:
        clock.now += gap
        limit.charge("alice", usd)
        spent_at.append((clock.now, usd))
    clock.now += later
    now = clock.now
    spent = limit.spent("alice")
    # Every charge of the last hour counts; none older than an hour and a grain.
    in_window = sum(usd for at, usd in spent_at if now - at < HOUR)
    in_grace = sum(usd for at, usd in spent_at if now - at < HOUR + grain)
    assert in_window - 1e-9 <= spent <= in_grace + 1e-9
    assert len(limit._callers.get("alice", ())) <= HOUR / grain + 1
    wait = limit.retry_after("alice")
    if spent < limit_usd:
        assert wait is None
        limit.check("alice")
        return
    assert wait is not None
    assert 0 < wait <= HOUR
    # A second early it is still refused; at the delay it is admitted.
    if wait >= 1:
        clock.now = now + wait - 1
        with pytest.raises(ServiceError):
            limit.check("alice")
    clock.now = now + wait
    limit.check("alice")
