"""Wilson intervals and percentiles, against hand-computed values and invariants."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor_service.learning.stats import Proportion, mean, percentile, wilson_interval


@pytest.mark.parametrize(
    ("successes", "n", "lower", "upper"),
    [
        # p = 0.8, z = 1.96: centre (0.8 + 0.19207) / 1.38415 = 0.71673,
        # half-width 1.96 * sqrt(0.016 + 0.0096037) / 1.38415 = 0.22658.
        (8, 10, 0.4902, 0.9433),
        # p = 0.75: centre 0.62752, half-width 0.32689.
        (3, 4, 0.3006, 0.9544),
        # All or nothing: n / (n + z^2) and its mirror, 10 / 13.8415 = 0.72247.
        (10, 10, 0.7225, 1.0),
        (0, 10, 0.0, 0.2775),
        # 40 / 43.8415: the fewest straight successes that clear a 0.9 target.
        (40, 40, 0.9124, 1.0),
    ],
)
def test_wilson_interval_matches_hand_computed_values(
    successes: int, n: int, lower: float, upper: float
) -> None:
    low, high = wilson_interval(successes, n)
    assert low == pytest.approx(lower, abs=5e-5)
    assert high == pytest.approx(upper, abs=5e-5)


def test_no_observations_claim_no_interval() -> None:
    with pytest.raises(ValueError, match="no observations"):
        wilson_interval(0, 0)
    empty = Proportion(0, 0)
    assert not empty.known
    assert (empty.value, empty.lower, empty.upper, empty.n) == (0.0, 0.0, 0.0, 0)


def test_successes_beyond_n_are_refused() -> None:
    with pytest.raises(ValueError, match="not within"):
        wilson_interval(11, 10)


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_interval_holds_the_observed_share_within_zero_and_one(pair: tuple[int, int]) -> None:
    successes, n = pair
    share = Proportion(successes, n)
    assert 0.0 <= share.lower <= share.value <= share.upper <= 1.0


@given(st.integers(1, 1000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_interval_is_symmetric_under_swapping_successes_and_failures(
    pair: tuple[int, int],
) -> None:
    successes, n = pair
    low, high = wilson_interval(successes, n)
    mirror_low, mirror_high = wilson_interval(n - successes, n)
    assert low == pytest.approx(1 - mirror_high, abs=1e-12)
    assert high == pytest.approx(1 - mirror_low, abs=1e-12)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_more_evidence_for_the_same_share_narrows_the_interval(pair: tuple[int, int]) -> None:
    successes, n = pair
    low, high = wilson_interval(successes, n)
    more_low, more_high = wilson_interval(4 * successes, 4 * n)
    assert more_high - more_low < high - low


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == pytest.approx(2.5)
    # Rank (10 - 1) * 0.95 = 8.55: between 9 and 10.
    assert percentile([float(v) for v in range(1, 11)], 0.95) == pytest.approx(9.55)
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1.0, 2.0], 0.0) == 1.0
    assert percentile([1.0, 2.0], 1.0) == 2.0


def test_percentile_refuses_nothing_and_bad_fractions() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], 1.5)


finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(st.lists(finite, min_size=2, max_size=60), st.integers(1, 99))
def test_percentile_agrees_with_statistics_inclusive_quantiles(
    values: list[float], percent: int
) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")[percent - 1]
    assert percentile(values, percent / 100) == pytest.approx(expected, rel=1e-9, abs=1e-6)


@given(st.lists(finite, min_size=1, max_size=60), st.floats(0, 1), st.floats(0, 1))
def test_percentile_is_monotone_and_within_the_range(
    values: list[float], one: float, other: float
) -> None:
    low, high = sorted((one, other))
    assert min(values) <= percentile(values, low) <= percentile(values, high) <= max(values)


def test_mean_of_nothing_is_zero() -> None:
    assert mean([]) == 0.0
    assert mean([0.1, 0.2, 0.3]) == pytest.approx(0.2)
