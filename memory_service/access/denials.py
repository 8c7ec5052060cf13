"""A budget of refused calls per caller, so a flood of them cannot flush the audit log.

Every call is audited, and the log keeps a bounded number of bytes: without
a limit, unauthenticated calls at a few hundred a second would rotate every
real record away within minutes. So calls that end UNAUTHENTICATED or
PERMISSION_DENIED draw on a token bucket per (peer host, principal): `burst`
calls at once, refilled at `per_second`. Once it is empty such a call answers
RESOURCE_EXHAUSTED with RetryInfo (when the next token comes) and QuotaFailure.

Calls that are authenticated and allowed never touch a bucket: a flood from
the same address never limits them. An authenticated principal has buckets
of its own, apart from the unauthenticated ones ("" principal).

The refused-by-budget calls themselves are audited folded: per (peer host,
principal, action), the first in a window is written at once, and the rest
of that window become one record whose `repeat_count` says how many calls it
stands for, written when the window ends. So a flood from one peer adds about
`per_second` records a second plus two per action and window, whatever its rate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from google.rpc import error_details_pb2

from memory_service.access.audit import AuditRecord
from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.rate import TokenBucket, peer_address

# The outcomes that draw on the budget.
DENIED_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
# Buckets kept at most; the least recently used goes first (a fresh bucket is full).
MAX_TRACKED = 10_000
# An IPv6 host owns a whole /64: one budget per /64, or every address of it would get one.
_IPV6_PREFIX = 64


def peer_host(peer: str) -> str:
    """The budget's address of a gRPC peer string: the IP without port (IPv6: its /64)."""
    kind = peer.partition(":")[0]
    if kind not in ("ipv4", "ipv6"):
        return kind or "unknown"  # unix sockets and the like: one local peer
    address = peer_address(peer)
    if kind == "ipv4":
        return address
    try:
        return str(ipaddress.IPv6Network(f"{address}/{_IPV6_PREFIX}", strict=False))
    except ValueError:
        return address


@dataclass
class _Fold:
    first: AuditRecord
    repeats: int = 0  # calls after the first in this window


class DenialLimiter:
    """Token buckets of refused calls, and the folding of the calls they refuse."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        window_seconds: float,
        *,
        emit: Callable[[AuditRecord], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second <= 0 or burst < 1 or window_seconds <= 0:
            raise ValueError("per_second and window_seconds must be positive, burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self.window_seconds = window_seconds
        self._emit = emit
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()
        self._folds: dict[tuple[str, str, str], _Fold] = {}
        self._timers: dict[tuple[str, str, str], asyncio.TimerHandle] = {}

    def charge(self, peer: str, principal: str) -> float:
        """Takes one token for a refused call: 0.0, or the seconds until one is back."""
        key = (peer_host(peer), principal)
        now = self._clock()
        bucket = self._buckets.pop(key, None) or TokenBucket.full(
            self.burst, now, period=self.burst / self.per_second
        )
        self._buckets[key] = bucket  # Most recently used last.
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        if wait := bucket.wait(now):
            return wait
        bucket.take(now)
        return 0.0

    def exhausted(self, peer: str, retry_after: float) -> ServiceError:
        """RESOURCE_EXHAUSTED for a call over its budget, with RetryInfo and QuotaFailure."""
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(retry_after * 1e9))
        quota = error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(
                    subject=f"peer:{peer_host(peer)}",
                    description=f"refused calls (unauthenticated or denied): {self.burst} at "
                    f"once, then {self.per_second:g} per second",
                )
            ]
        )
        return ServiceError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"too many unauthenticated or denied calls from this peer; retry in "
            f"{retry_after:.1f} s with valid credentials",
            [retry, quota],
        )

    def fold(self, record: AuditRecord, peer: str) -> None:
        """Audits a call refused by its budget: the window's first now, the rest folded."""
        key = (peer_host(peer), record.principal, record.action)
        if (open_fold := self._folds.get(key)) is not None:
            open_fold.repeats += 1
            return
        # The namespace is the caller's choice: a fold must not grow with it.
        first = dataclasses.replace(record, namespace="")
        self._folds[key] = _Fold(first)
        self._emit(first)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(self.window_seconds, self._close, key)

    def _close(self, key: tuple[str, str, str]) -> None:
        self._timers.pop(key, None)
        done = self._folds.pop(key, None)
        if done is not None and done.repeats:
            self._emit(
                dataclasses.replace(
                    done.first,
                    repeat_count=done.repeats,
                    request_id="",
                    event_time=datetime.now(UTC),
                )
            )

    async def close(self) -> None:
        """Audits every open window's folded calls now (at shutdown)."""
        for key in list(self._folds):
            if (timer := self._timers.pop(key, None)) is not None:
                timer.cancel()
            self._close(key)
