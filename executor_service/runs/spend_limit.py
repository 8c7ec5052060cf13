"""Each caller's model spend over a sliding hour, and the limit on it.

Every attempt's cost is charged to the caller of its run as the run accrues
it; a new run from a caller whose spend in the last hour is at or over
`EXECUTOR_MAX_SPEND_PER_HOUR_PER_CALLER_USD` is RESOURCE_EXHAUSTED, with a
`QuotaFailure` and a `RetryInfo` saying when enough spend will have aged out.
Runs already admitted finish: with the per-caller limit on runs in flight,
that bounds how far past the limit a caller can go.

Charges close together are kept as one entry (at most `grain` apart), which
ages out with its latest charge: spend is never counted for less than the
window, at most `grain` longer, and a caller holds at most window / grain
+ 1 entries however many attempts its runs make.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2

from memory_service.servicekit.errors import ServiceError

Clock = Callable[[], float]
WINDOW_SECONDS = 3600.0
GRAIN_SECONDS = 10.0
# Callers whose spend has all aged out are looked for once this many are kept.
_REMEMBERED = 1024


@dataclass
class _Entry:
    first: float  # When its first charge was made.
    last: float  # When its latest was: it ages out at last + window.
    usd: float


@dataclass
class SpendLimit:
    """Spend per caller in the last `window` seconds; `limit_usd` 0 tracks nothing."""

    limit_usd: float
    clock: Clock = time.monotonic
    window: float = WINDOW_SECONDS
    grain: float = GRAIN_SECONDS
    _callers: dict[str, deque[_Entry]] = field(default_factory=dict, init=False)

    def charge(self, caller: str, usd: float) -> None:
        """Adds an attempt's cost to the caller's spend."""
        if self.limit_usd <= 0 or usd <= 0:
            return
        now = self.clock()
        entries = self._callers.get(caller)
        if entries is None:
            if len(self._callers) >= _REMEMBERED:
                self._forget_idle(now)
            entries = self._callers[caller] = deque()
        while entries and entries[0].last + self.window <= now:
            entries.popleft()  # A long run charges without anyone reading.
        if entries and now - entries[-1].first < self.grain:
            entries[-1].last = now
            entries[-1].usd += usd
        else:
            entries.append(_Entry(now, now, usd))

    def spent(self, caller: str) -> float:
        """The caller's spend in the window, in USD."""
        sums = self._suffix_sums(caller, self.clock())
        return sums[0] if sums else 0.0

    def retry_after(self, caller: str) -> float | None:
        """Seconds until the caller is under the limit again; None if it is now."""
        if self.limit_usd <= 0:
            return None
        now = self.clock()
        sums = self._suffix_sums(caller, now)
        if not sums or sums[0] < self.limit_usd:
            return None
        entries = self._callers[caller]
        # The oldest entries age out first: wait for the one whose going
        # leaves the rest under the limit.
        for index, entry in enumerate(entries):
            if sums[index + 1] < self.limit_usd:
                return entry.last + self.window - now
        raise AssertionError("unreachable: the empty rest sums to 0, under the limit")

    def check(self, caller: str) -> None:
        """RESOURCE_EXHAUSTED when the caller's spend is at or over the limit."""
        wait = self.retry_after(caller)
        if wait is None:
            return
        spent = self.spent(caller)
        description = (
            f"spent {spent:.4f} USD on models in the last hour, at or over the limit of "
            f"{self.limit_usd:g} USD per caller (EXECUTOR_MAX_SPEND_PER_HOUR_PER_CALLER_USD)"
        )
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(max(1, int(wait * 1e9)))
        quota = error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(subject=caller, description=description)
            ]
        )
        raise ServiceError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"run refused: {description}; retry in {wait:.0f} s",
            [quota, retry],
        )

    def _suffix_sums(self, caller: str, now: float) -> list[float]:
        """The caller's live entries' sums from each to the newest, then 0.

        Summed from the newest, in the same order every time: the sum left
        once the oldest entries age out is exactly the one retry_after saw.
        """
        entries = self._callers.get(caller)
        if entries is None:
            return []
        while entries and entries[0].last + self.window <= now:
            entries.popleft()
        if not entries:
            del self._callers[caller]
            return []
        sums = [0.0] * (len(entries) + 1)
        for index in range(len(entries) - 1, -1, -1):
            sums[index] = entries[index].usd + sums[index + 1]
        return sums

    def _forget_idle(self, now: float) -> None:
        """Drops callers whose spend has all aged out."""
        idle = [
            caller
            for caller, entries in self._callers.items()
            if not entries or entries[-1].last + self.window <= now
        ]
        for caller in idle:
            del self._callers[caller]
