"""What every write passes before it is stored: secrets, PII, classification, owner, retention.

The order matters. Secrets are looked for first, in the pattern exactly as
sent, so a secret is refused rather than half-scrubbed. PII is then scrubbed
from free text only; classification reads the pattern as sent (an explicit
classification always wins); the caller becomes the owner; and retention
sets the expiry from the classification, unless the pattern is pinned.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.security.classify import classify
from memory_service.security.identity import ERROR_DOMAIN, Principal
from memory_service.security.pii import PhoneBudget, ScrubBudgetExceededError, scrub_pattern
from memory_service.security.secrets import find_secrets
from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.tracing import Stages

DAY_SECONDS = 86400.0
T = TypeVar("T")

# Scanning is CPU-bound, so it never runs on the event loop, where it would
# stall every other call. Two threads: one costly write leaves the other for
# everyone else's, and the event loop keeps a fair share of the interpreter.
_SCAN_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="write-scan")


async def off_loop(work: Callable[[], T]) -> T:
    """Runs the scanning `work` on the scan threads."""
    return await asyncio.get_running_loop().run_in_executor(_SCAN_THREADS, work)


@dataclass(frozen=True)
class Retention:
    """How long a pattern is kept after it is stored, by classification."""

    public_seconds: float = 365 * DAY_SECONDS
    internal_seconds: float = 180 * DAY_SECONDS
    sensitive_seconds: float = 90 * DAY_SECONDS

    def seconds(self, classification: int) -> float:
        """The retention of a classification (UNSPECIFIED never reaches here)."""
        if classification == common_pb2.CLASSIFICATION_PUBLIC:
            return self.public_seconds
        if classification == common_pb2.CLASSIFICATION_SENSITIVE:
            return self.sensitive_seconds
        return self.internal_seconds


@dataclass(frozen=True)
class SecuredWrite:
    """A pattern ready to store, and what scrubbing replaced in it."""

    pattern: memory_pb2.Pattern
    scrubbed: Mapping[str, int]
    classification_reason: str
    # Milliseconds per stage (secrets, scrub): the write span's attributes.
    stages: Mapping[str, float] = dataclasses.field(default_factory=dict)


def secret_rejection(pattern: memory_pb2.Pattern, field_prefix: str) -> ServiceError | None:
    """INVALID_ARGUMENT naming each kind of secret and where it is; None if there is none.

    The message and details never hold the secret itself, only its kind and
    the field path, so the error is safe to log and to show.
    """
    findings = find_secrets(pattern)
    if not findings:
        return None
    at = f"{field_prefix}pattern."
    violations = [
        error_details_pb2.BadRequest.FieldViolation(
            field=f"{at}{finding.field}",
            description=f"contains a {finding.kind}; secrets are never stored (value not shown)",
        )
        for finding in findings
    ]
    kinds = sorted({finding.kind for finding in findings})
    info = error_details_pb2.ErrorInfo(
        reason="SECRET_DETECTED", domain=ERROR_DOMAIN, metadata={"kinds": ",".join(kinds)}
    )
    where = ", ".join(f"{finding.kind} in {at}{finding.field}" for finding in findings[:5])
    more = f" and {len(findings) - 5} more" if len(findings) > 5 else ""
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the pattern contains secrets ({where}{more}); nothing was stored",
        [error_details_pb2.BadRequest(field_violations=violations), info],
    )


def classified_and_scrubbed(
    pattern: memory_pb2.Pattern, budget: PhoneBudget | None = None
) -> tuple[memory_pb2.Pattern, dict[str, int], str]:
    """A scrubbed copy with its classification set; the counts and the reason.

    Classified on the pattern as sent (an explicit classification wins), so
    scrubbing never hides a sensitive word from the rules. The executor's
    fallback index calls this too, so both sides index the same text.
    Raises ScrubBudgetExceededError past the budget (see pii.PHONE_CANDIDATE_BUDGET).
    """
    classification, reason = classify(pattern)
    # Always a copy: the input stays as it is.
    stored, scrubbed = scrub_pattern(pattern, budget)
    stored.classification = classification
    return stored, scrubbed, reason


def _unscrubbable(field_prefix: str) -> ServiceError:
    """INVALID_ARGUMENT: the text is too long to check for personal data.

    Not RESOURCE_EXHAUSTED: the same pattern always fails, so a retry (an
    executor's outbox replay, say) must not send it again.
    """
    field = f"{field_prefix}pattern"
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{field} holds more number-like text than can be checked for personal data "
        "(phone numbers); nothing was stored: store it in smaller patterns",
        [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=field, description="too much number-like text to scrub"
                    )
                ]
            ),
            error_details_pb2.ErrorInfo(reason="SCRUB_BUDGET_EXCEEDED", domain=ERROR_DOMAIN),
        ],
    )


def secure(
    pattern: memory_pb2.Pattern,
    principal: Principal,
    retention: Retention,
    now_us: int,
    field_prefix: str = "",
    budget: PhoneBudget | None = None,
) -> SecuredWrite:
    """The pattern as it may be stored; raises INVALID_ARGUMENT if it holds a
    secret, or more text than scrubbing may check (`budget`, which a batch shares).

    CPU-bound (the scanners are linear, phone numbers dearest): the memory
    service runs it on its scan threads, never on the event loop.
    """
    stages = Stages()
    rejection = secret_rejection(pattern, field_prefix)
    stages.mark("secrets")
    if rejection is not None:
        raise rejection
    try:
        stored, scrubbed, reason = classified_and_scrubbed(pattern, budget)
    except ScrubBudgetExceededError:
        raise _unscrubbable(field_prefix) from None
    stages.mark("scrub")
    stored.owner = principal.user_id
    if stored.pinned:
        stored.ClearField("expire_time")
    else:
        lifetime_us = int(retention.seconds(stored.classification) * 1e6)
        stored.expire_time.FromMicroseconds(now_us + lifetime_us)
    return SecuredWrite(stored, scrubbed, reason, stages.millis)
