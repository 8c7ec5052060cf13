"""Analytics over finished runs: success, cost, tiers per role, failures, trend."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from executor_service.learning.facts import RunFact
from executor_service.learning.stats import Proportion, mean, percentile
from executor_service.learning.tally import add_runs
from executor_service.templates.models import Tier

# The most frequent failures reported; the rest are the long tail.
MAX_FAILURES = 20
# Trend bucket widths, smallest first: the first one that spans the runs in at
# most MAX_TREND_POINTS buckets is used. Whole days, because runs of one
# afternoon make one point, not a chart of noise.
TREND_WIDTHS = (timedelta(days=1), timedelta(days=7), timedelta(days=30), timedelta(days=365))
MAX_TREND_POINTS = 60
# Buckets are counted from a Monday midnight UTC, so daily buckets start at
# midnight and weekly ones on Mondays.
BUCKET_ORIGIN = datetime(1970, 1, 5, tzinfo=UTC)
MAX_ERROR_CHARS = 200

_TIER_ORDER = {tier: index for index, tier in enumerate(Tier)}
# Tokens that differ from one failure to the next and would split one pattern
# into many: long ids (with a digit) and decimal numbers. Short integers such
# as HTTP statuses or retry counts are kept: they tell failures apart.
_ID = re.compile(r"\b(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{12,}\b")
_DECIMAL = re.compile(r"\d+\.\d+")


@dataclass(frozen=True)
class Window:
    """Which runs to analyse: one template or all, created in [start, end)."""

    template_id: str = ""
    start: datetime | None = None
    end: datetime | None = None

    def holds(self, run: RunFact) -> bool:
        """Whether the run falls in the window."""
        return (
            (not self.template_id or run.template_id == self.template_id)
            and (self.start is None or run.create_time >= self.start)
            and (self.end is None or run.create_time < self.end)
        )


@dataclass(frozen=True)
class CostSummary:
    """Statistics of run costs in US dollars."""

    mean_usd: float = 0.0
    min_usd: float = 0.0
    max_usd: float = 0.0
    p50_usd: float = 0.0
    p95_usd: float = 0.0
    total_usd: float = 0.0


@dataclass(frozen=True)
class RoleTierRow:
    """How a role's attempts at one tier went."""

    role: str
    tier: Tier
    success_rate: Proportion
    mean_cost_usd: float


@dataclass(frozen=True)
class FailureRow:
    """A recurring failure of a role's attempts."""

    role: str
    error: str
    count: int


@dataclass(frozen=True)
class TrendPoint:
    """The runs of one bucket of time."""

    start: datetime
    run_count: int
    success_rate: float
    mean_cost_usd: float


@dataclass(frozen=True)
class Analytics:
    """Everything GetAnalytics reports."""

    run_count: int
    success_rate: Proportion
    cost: CostSummary
    cost_by_tier_usd: dict[str, float]
    mean_agents_per_run: float
    role_tiers: list[RoleTierRow]
    failures: list[FailureRow]
    trend: list[TrendPoint]
    trend_bucket: timedelta


def normalise_error(text: str) -> str:
    """An attempt's error with what varies between occurrences blanked out."""
    text = " ".join(text.split())
    if not text:
        return "failed without an error message"
    text = _DECIMAL.sub("<n>", _ID.sub("<id>", text))
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def analyse(
    runs: Iterable[RunFact],
    window: Window,
    shows_text: Callable[[RunFact], bool] = lambda run: True,
) -> Analytics:
    """The analytics of the runs that fall in the window. Counts, rates and
    costs cover every run; failure texts come only from runs `shows_text`
    allows: an error is free text, which another owner's SENSITIVE run keeps
    to its owner."""
    selected = sorted((run for run in runs if window.holds(run)), key=lambda r: r.create_time)
    costs = [run.total_cost_usd for run in selected]
    by_tier: dict[str, float] = {}
    failures: Counter[tuple[str, str]] = Counter()
    for run in selected:
        for agent in run.agents:
            for attempt in agent.attempts:
                tier = attempt.tier.value
                by_tier[tier] = by_tier.get(tier, 0.0) + attempt.cost_usd
                if not attempt.success and shows_text(run):
                    failures[(agent.role, normalise_error(attempt.error))] += 1
    tallies = add_runs({}, selected)
    role_tiers = [
        RoleTierRow(role, tier, tally.success_rate, tally.mean_cost_usd)
        for (role, tier), tally in sorted(
            tallies.items(), key=lambda item: (item[0][0], _TIER_ORDER[item[0][1]])
        )
    ]
    frequent = sorted(failures.items(), key=lambda item: (-item[1], item[0]))[:MAX_FAILURES]
    width = trend_width(selected)
    return Analytics(
        run_count=len(selected),
        success_rate=Proportion(sum(run.succeeded for run in selected), len(selected)),
        cost=_cost_summary(costs),
        cost_by_tier_usd=by_tier,
        mean_agents_per_run=mean([float(len(run.agents)) for run in selected]),
        role_tiers=role_tiers,
        failures=[FailureRow(role, error, count) for (role, error), count in frequent],
        trend=trend(selected, width),
        trend_bucket=width,
    )


def _cost_summary(costs: Sequence[float]) -> CostSummary:
    if not costs:
        return CostSummary()
    return CostSummary(
        mean_usd=mean(costs),
        min_usd=min(costs),
        max_usd=max(costs),
        p50_usd=percentile(costs, 0.50),
        p95_usd=percentile(costs, 0.95),
        total_usd=math.fsum(costs),
    )


def bucket_start(moment: datetime, width: timedelta) -> datetime:
    """The start of the bucket of that width holding the moment."""
    return BUCKET_ORIGIN + ((moment - BUCKET_ORIGIN) // width) * width


def trend_width(runs: Sequence[RunFact]) -> timedelta:
    """The smallest bucket width that spans the runs in few enough buckets."""
    if not runs:
        return TREND_WIDTHS[0]
    first = min(run.create_time for run in runs)
    last = max(run.create_time for run in runs)
    for width in TREND_WIDTHS:
        points = (bucket_start(last, width) - bucket_start(first, width)) // width + 1
        if points <= MAX_TREND_POINTS:
            return width
    return TREND_WIDTHS[-1]


def trend(runs: Sequence[RunFact], width: timedelta) -> list[TrendPoint]:
    """One point per bucket from the first run's to the last run's, oldest first.

    Buckets without runs in between are kept, with a run count of 0, so the
    points are evenly spaced.
    """
    if not runs:
        return []
    buckets: dict[datetime, list[RunFact]] = {}
    for run in runs:
        buckets.setdefault(bucket_start(run.create_time, width), []).append(run)
    points = []
    moment, last = min(buckets), max(buckets)
    while moment <= last:
        inside = buckets.get(moment, [])
        points.append(
            TrendPoint(
                start=moment,
                run_count=len(inside),
                success_rate=Proportion(sum(r.succeeded for r in inside), len(inside)).value,
                mean_cost_usd=mean([r.total_cost_usd for r in inside]),
            )
        )
        moment += width
    return points
