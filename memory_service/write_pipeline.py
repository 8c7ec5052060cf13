"""What every write passes before it is stored: secrets, PII, classification, owner, retention.

The order matters. Secrets are looked for first, in the pattern exactly as
sent, so a secret is refused rather than half-scrubbed. PII is then scrubbed
from free text only; classification reads the pattern as sent (an explicit
classification always wins); the caller becomes the owner; and retention
sets the expiry from the classification, unless the pattern is pinned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.security.classify import classify
from memory_service.security.identity import ERROR_DOMAIN, Principal
from memory_service.security.pii import scrub_pattern
from memory_service.security.secrets import find_secrets
from memory_service.servicekit.errors import ServiceError

DAY_SECONDS = 86400.0


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
    pattern: memory_pb2.Pattern,
) -> tuple[memory_pb2.Pattern, dict[str, int], str]:
    """A scrubbed copy with its classification set; the counts and the reason.

    Classified on the pattern as sent (an explicit classification wins), so
    scrubbing never hides a sensitive word from the rules. The executor's
    fallback index calls this too, so both sides index the same text.
    """
    classification, reason = classify(pattern)
    stored, scrubbed = scrub_pattern(pattern)  # Always a copy: the input stays as it is.
    stored.classification = classification
    return stored, scrubbed, reason


def secure(
    pattern: memory_pb2.Pattern,
    principal: Principal,
    retention: Retention,
    now_us: int,
    field_prefix: str = "",
) -> SecuredWrite:
    """The pattern as it may be stored; raises INVALID_ARGUMENT if it holds a secret."""
    if (rejection := secret_rejection(pattern, field_prefix)) is not None:
        raise rejection
    stored, scrubbed, reason = classified_and_scrubbed(pattern)
    stored.owner = principal.user_id
    if stored.pinned:
        stored.ClearField("expire_time")
    else:
        lifetime_us = int(retention.seconds(stored.classification) * 1e6)
        stored.expire_time.FromMicroseconds(now_us + lifetime_us)
    return SecuredWrite(stored, scrubbed, reason)
