"""Proportions with their Wilson score interval, and percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# The two-sided 95% normal quantile, exactly as statistics.NormalDist gives it.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of successes out of n.

    Chosen over the normal approximation because it stays inside [0, 1] and
    is honest at the extremes: 10 successes out of 10 give [0.72, 1.0], not a
    certainty. Raises ValueError for n = 0, where there is nothing to bound.
    """
    if n <= 0:
        raise ValueError("a proportion of no observations has no interval")
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} not within [0, {n}]")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # At p = 0 or 1 the bound is exactly 0 or 1; rounding would miss it by a hair.
    lower = 0.0 if successes == 0 else max(0.0, centre - margin)
    upper = 1.0 if successes == n else min(1.0, centre + margin)
    return lower, upper


@dataclass(frozen=True)
class Proportion:
    """successes out of n, with a 95% Wilson interval.

    With n = 0 there is no estimate: value, lower and upper are all 0 and
    mean nothing, and `known` is False. Readers check n (or `known`) first.
    """

    successes: int
    n: int

    @property
    def known(self) -> bool:
        """Whether there is at least one observation."""
        return self.n > 0

    @property
    def value(self) -> float:
        """The observed share; 0 without observations."""
        return self.successes / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson interval; (0, 0) without observations."""
        return wilson_interval(self.successes, self.n) if self.n else (0.0, 0.0)

    @property
    def lower(self) -> float:
        """The interval's lower bound."""
        return self.interval[0]

    @property
    def upper(self) -> float:
        """The interval's upper bound."""
        return self.interval[1]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The fraction-quantile of values, interpolating linearly between ranks.

    This is the common "type 7" definition (numpy's default, and
    statistics.quantiles with method="inclusive"): rank (n - 1) * fraction,
    so p50 of [1, 2, 3, 4] is 2.5 and every quantile lies within [min, max].
    Raises ValueError on no values or a fraction outside [0, 1].
    """
    if not values:
        raise ValueError("no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} not within [0, 1]")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    below = math.floor(rank)
    above = min(below + 1, len(ordered) - 1)
    weight = rank - below
    return ordered[below] + (ordered[above] - ordered[below]) * weight


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean; 0 for no values, which callers report with n = 0."""
    return math.fsum(values) / len(values) if values else 0.0
