"""Which runs may start: runs in flight and runs per minute, per caller and in all.

Every run costs disk (about 49 kB of files) and, with a model runner, money,
and any caller can start one. So `RunWorkflow` admits a run only while

- fewer than `max_in_flight` runs are in flight, and fewer than
  `max_in_flight_per_caller` of the caller's own;
- a token bucket per caller (`per_minute_per_caller`) and one for everyone
  (`per_minute`) each hold a token: a bucket holds a minute's worth, so a
  burst of that many passes at once, and refills at the steady rate.

A limit of 0 is no limit. A refused run is RESOURCE_EXHAUSTED with a
`QuotaFailure` naming the limit (and the setting), and a `RetryInfo` when the
wait is known (a bucket's next token; a run in flight ends when it ends).
Its slot is held from admission until the run's task is done, however it
ends: finished, failed or cancelled.

Callers: the executor authenticates nobody yet, so a caller is the SHA-256 of
the `authorization` header when one is sent, else the peer's address
without its port. Anyone can send a fresh header, which is why the global
limits exist. Only admitted callers are remembered, and a caller whose
bucket is full again and has nothing in flight is forgotten.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.rate import TokenBucket, peer_address

Clock = Callable[[], float]
# Idle callers are looked for once this many are remembered: a caller stays
# at most a minute after its last run (its bucket is full again by then).
_REMEMBERED = 1024


@dataclass
class _Caller:
    bucket: TokenBucket | None
    in_flight: int = 0


@dataclass
class Lease:
    """A run's admission: `release` frees its slot (once, however often called)."""

    _release: Callable[[], None] | None
    _held: bool = False

    def release(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release()

    def hold_until(self, task: asyncio.Future[Any]) -> None:
        """Keeps the slot until the run's task is done, however it ends."""
        self._held = True
        task.add_done_callback(lambda _: self.release())

    def release_unless_held(self) -> None:
        """Frees the slot of a run that never started its task."""
        if not self._held:
            self.release()


@dataclass
class _Refusal:
    subject: str
    description: str
    retry_after: float | None


def caller_key(authorization: Iterable[str], peer: str) -> str:
    """Who is starting a run: their token's hash if they sent one, else their address."""
    values = list(authorization)
    if values:
        digest = hashlib.sha256("\n".join(values).encode("utf-8", "surrogatepass")).hexdigest()
        return f"token:{digest[:16]}"
    return f"peer:{peer_address(peer)}"


@dataclass
class RunAdmission:
    """Counts runs in flight and tokens, per caller and in all."""

    max_in_flight: int
    max_in_flight_per_caller: int
    per_minute_per_caller: int
    per_minute: int
    clock: Clock = time.monotonic
    _in_flight: int = field(default=0, init=False)
    _callers: dict[str, _Caller] = field(default_factory=dict, init=False)
    _bucket: TokenBucket | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.per_minute > 0:
            self._bucket = TokenBucket.full(self.per_minute, self.clock())

    def admit(self, caller: str) -> Lease:
        """The run's lease; RESOURCE_EXHAUSTED (nothing taken) when a limit is reached."""
        now = self.clock()
        known = self._callers.get(caller)
        refusal = self._refusal(caller, known, now)
        if refusal is not None:
            raise _exhausted(refusal)
        if known is None:
            bucket = None
            if self.per_minute_per_caller > 0:
                bucket = TokenBucket.full(self.per_minute_per_caller, now)
            known = self._callers[caller] = _Caller(bucket)
        if known.bucket is not None:
            known.bucket.take(now)
        if self._bucket is not None:
            self._bucket.take(now)
        known.in_flight += 1
        self._in_flight += 1
        return Lease(lambda: self._release(caller))

    def in_flight(self, caller: str | None = None) -> int:
        """Runs in flight, of one caller or in all."""
        if caller is None:
            return self._in_flight
        known = self._callers.get(caller)
        return 0 if known is None else known.in_flight

    def _refusal(self, caller: str, known: _Caller | None, now: float) -> _Refusal | None:
        if self.max_in_flight and self._in_flight >= self.max_in_flight:
            return _Refusal(
                "executor",
                f"at most {self.max_in_flight} runs in flight in all "
                "(EXECUTOR_MAX_RUNS_IN_FLIGHT); try again when one has finished",
                None,
            )
        mine = 0 if known is None else known.in_flight
        if self.max_in_flight_per_caller and mine >= self.max_in_flight_per_caller:
            return _Refusal(
                caller,
                f"at most {self.max_in_flight_per_caller} runs in flight per caller "
                "(EXECUTOR_MAX_RUNS_IN_FLIGHT_PER_CALLER); try again when one of yours "
                "has finished",
                None,
            )
        if known is not None and known.bucket is not None and (wait := known.bucket.wait(now)):
            return _Refusal(
                caller,
                f"at most {self.per_minute_per_caller} runs per minute per caller "
                "(EXECUTOR_RUNS_PER_MINUTE_PER_CALLER)",
                wait,
            )
        if self._bucket is not None and (wait := self._bucket.wait(now)):
            return _Refusal(
                "executor",
                f"at most {self.per_minute} runs per minute in all (EXECUTOR_RUNS_PER_MINUTE)",
                wait,
            )
        return None

    def _release(self, caller: str) -> None:
        self._in_flight -= 1
        self._callers[caller].in_flight -= 1
        if len(self._callers) > _REMEMBERED:
            self._forget_idle()

    def _forget_idle(self) -> None:
        """Drops callers with nothing in flight whose bucket is full again:
        a fresh bucket is full, so forgetting them changes nothing."""
        now = self.clock()
        idle = [
            key
            for key, known in self._callers.items()
            if known.in_flight == 0 and (known.bucket is None or known.bucket.is_full(now))
        ]
        for key in idle:
            del self._callers[key]


def _exhausted(refusal: _Refusal) -> ServiceError:
    details: list[Message] = [
        error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(
                    subject=refusal.subject, description=refusal.description
                )
            ]
        )
    ]
    message = f"run refused: {refusal.description}"
    if refusal.retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(max(1, int(refusal.retry_after * 1e9)))
        details.append(retry)
        message += f"; retry in {refusal.retry_after:.1f} s"
    return ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, details)


def check_free_disk(path: Path, minimum: int) -> None:
    """RESOURCE_EXHAUSTED when the disk holding `path` has less than `minimum`
    bytes free: a run writes files, and a full disk fails every service on it."""
    if minimum <= 0:
        return
    free = shutil.disk_usage(path).free
    if free >= minimum:
        return
    raise _exhausted(
        _Refusal(
            "executor",
            f"the run directory's disk has {free} bytes free, under the floor of {minimum} "
            "(EXECUTOR_MIN_FREE_DISK_BYTES); free some space or delete old runs",
            None,
        )
    )
