"""Size bounds that keep every stored pattern readable, alone and in any page.

A gRPC client accepts responses of 4 MiB unless configured otherwise (this
service sends up to MAX_MESSAGE_BYTES, 8 MiB). So every response that
carries patterns stays within RESPONSE_BUDGET, and a client with default
settings can read every page:

- a write is refused (INVALID_ARGUMENT, before it commits) when the pattern
  as stored, after scrubbing and with its embedding, would pass the
  configured limit (`MEMORY_MAX_PATTERN_BYTES`), which is below the budget;
- a list or search page ends early, with a token for the rest, when the
  next pattern would take it past the budget;
- a pattern stored before the limit existed (or above a lowered one) that
  alone passes the budget is left out of lists and searches (logged), and
  GetPattern answers FAILED_PRECONDITION for it: one record never fails the
  reads of its whole namespace.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2

from attune.memory.v1 import memory_pb2
from memory_service.servicekit.errors import ServiceError, invalid_argument

MIB = 1024 * 1024
DEFAULT_MAX_PATTERN_BYTES = MIB
# The setting's ceiling: a pattern this large still fits one response.
MAX_PATTERN_BYTES_LIMIT = 3 * MIB
# gRPC's default receive limit, less room for a response's other fields
# (applied filter and query, tokens, counts: a few KiB at most).
RESPONSE_BUDGET = 4 * MIB - 64 * 1024
# What a store adds to a write: its namespace, the store time and a default
# create time (each a length-delimited field of at most a few dozen bytes).
STAMP_BYTES = 128


def stored_size(pattern: memory_pb2.Pattern) -> int:
    """At least the size of the pattern once a store has stamped it."""
    return pattern.ByteSize() + STAMP_BYTES


def size_violation(field: str, size: int, limit: int) -> tuple[str, str]:
    """The field violation of a pattern past the limit."""
    return field, f"would be stored as {size} bytes, more than the limit of {limit} bytes"


def too_large(field: str, size: int, limit: int) -> ServiceError:
    """INVALID_ARGUMENT: retrying the same pattern can never succeed (the
    executor's outbox sets such a pattern aside instead of retrying it)."""
    return invalid_argument([size_violation(field, size, limit)])


def unservable(namespace: str, pattern_id: str, size: int) -> ServiceError:
    """FAILED_PRECONDITION for a stored pattern no response can carry."""
    violation = error_details_pb2.PreconditionFailure.Violation(
        type="PATTERN_TOO_LARGE",
        subject=f"{namespace}/{pattern_id}"[:200],
        description=f"stored as {size} bytes; a response carries at most {RESPONSE_BUDGET}",
    )
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"pattern {pattern_id!r} is stored as {size} bytes, more than a response may carry "
        f"({RESPONSE_BUDGET}); delete it, or store a smaller version with replace=true",
        [error_details_pb2.PreconditionFailure(violations=[violation])],
    )
