"""Pattern rules: what a valid write is, and when two writes are the same."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2

MAX_CONTENT_BYTES = 256 * 1024
MAX_TAGS = 64
MAX_TAG_LENGTH = 64
# Form answers a pattern may carry, and the length of each question id: every
# distinct id becomes a word query understanding considers on each search.
MAX_FORM_RESPONSES = 256
MAX_FORM_KEY_LENGTH = 128
MAX_METADATA_DEPTH = 8
MAX_BATCH = 500
# A short-term context session id or key: 1 to this many characters.
MAX_CONTEXT_ID = 128

NAMESPACE_PATTERN = re.compile(r"[a-z0-9._-]{1,64}")
PATTERN_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

Violation = tuple[str, str]


def namespace_violations(namespace: str, field: str = "namespace") -> list[Violation]:
    """Why a namespace is not acceptable; empty if it is."""
    if not namespace:
        return [(field, "required; an empty namespace does not mean all namespaces")]
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        return [(field, "must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'")]
    return []


def pattern_id_violations(pattern_id: str, field: str) -> list[Violation]:
    """Why a pattern id is not acceptable; empty if it is."""
    if not pattern_id:
        return [(field, "required")]
    if not PATTERN_ID_PATTERN.fullmatch(pattern_id):
        return [(field, "must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':' or '-'")]
    return []


def _struct_depth(value: struct_pb2.Struct | struct_pb2.ListValue) -> int:
    children = value.fields.values() if isinstance(value, struct_pb2.Struct) else value.values
    deepest = 0
    for child in children:
        kind = child.WhichOneof("kind")
        if kind == "struct_value":
            deepest = max(deepest, _struct_depth(child.struct_value))
        elif kind == "list_value":
            deepest = max(deepest, _struct_depth(child.list_value))
    return 1 + deepest


# google.protobuf.Timestamp's valid range: 0001-01-01 to 9999-12-31.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_MAX_DURATION_SECONDS = 315_576_000_000


def _timestamp_problem(value: timestamp_pb2.Timestamp) -> str | None:
    if not _MIN_SECONDS <= value.seconds <= _MAX_SECONDS or not 0 <= value.nanos < 10**9:
        return "not a valid timestamp (years 1 to 9999, nanos 0 to 999999999)"
    return None


def _duration_problem(value: duration_pb2.Duration) -> str | None:
    mixed_signs = (value.seconds > 0 > value.nanos) or (value.seconds < 0 < value.nanos)
    if abs(value.seconds) > _MAX_DURATION_SECONDS or abs(value.nanos) >= 10**9 or mixed_signs:
        return "not a valid duration"
    if value.seconds < 0 or value.nanos < 0:
        return "must not be negative"
    return None


def _enum_problem(enum: Any, value: int) -> str | None:
    return None if value in enum.values() else f"{value} is not a defined value"


def _number_problem(value: float) -> str | None:
    return None if math.isfinite(value) else "must be a finite number"


def _amount_problem(value: float) -> str | None:
    """A cost or a count: finite and never negative."""
    if not math.isfinite(value):
        return "must be a finite number"
    return "must not be negative" if value < 0 else None


def _struct_numbers(
    value: struct_pb2.Struct | struct_pb2.ListValue, at: str
) -> list[tuple[str, str | None]]:
    """Every number inside metadata, with its path: NaN and infinities are not
    JSON, so no reader could make sense of them."""
    if isinstance(value, struct_pb2.Struct):
        children = [(f"{at}.{key}", child) for key, child in value.fields.items()]
    else:
        children = [(f"{at}[{index}]", child) for index, child in enumerate(value.values)]
    found: list[tuple[str, str | None]] = []
    for where, child in children:
        kind = child.WhichOneof("kind")
        if kind == "number_value":
            found.append((where, _number_problem(child.number_value)))
        elif kind == "struct_value":
            found += _struct_numbers(child.struct_value, where)
        elif kind == "list_value":
            found += _struct_numbers(child.list_value, where)
    return found


def _typed_violations(pattern: memory_pb2.Pattern, at: str) -> list[Violation]:
    """Values that parse but mean nothing: bad enums, times, NaN and infinities."""
    checks: list[tuple[str, str | None]] = [
        (f"{at}type", _enum_problem(memory_pb2.PatternType, pattern.type)),
        (f"{at}classification", _enum_problem(common_pb2.Classification, pattern.classification)),
        (f"{at}total_cost_usd", _amount_problem(pattern.total_cost_usd)),
    ]
    if pattern.HasField("create_time"):
        checks.append((f"{at}create_time", _timestamp_problem(pattern.create_time)))
    if pattern.HasField("total_duration"):
        checks.append((f"{at}total_duration", _duration_problem(pattern.total_duration)))
    for index, agent in enumerate(pattern.agents):
        where = f"{at}agents[{index}]."
        checks.append((f"{where}tier", _enum_problem(common_pb2.Tier, agent.tier)))
        checks.append((f"{where}first_tier", _enum_problem(common_pb2.Tier, agent.first_tier)))
        checks.append(
            (f"{where}tier_strategy", _enum_problem(common_pb2.TierStrategy, agent.tier_strategy))
        )
        checks.append((f"{where}cost_usd", _amount_problem(agent.cost_usd)))
        checks.append((f"{where}attempt_count", _amount_problem(agent.attempt_count)))
        if agent.HasField("duration"):
            checks.append((f"{where}duration", _duration_problem(agent.duration)))
    for key, value in pattern.form_responses.items():
        if value.WhichOneof("kind") == "number_value":
            checks.append((f"{at}form_responses.{key}", _number_problem(value.number_value)))
    for tier, count in pattern.tier_distribution.items():
        checks.append((f"{at}tier_distribution.{tier}", _amount_problem(count)))
    if pattern.HasField("metadata"):
        checks += _struct_numbers(pattern.metadata, f"{at}metadata")
    return [(field, problem) for field, problem in checks if problem]


def store_violations(request: memory_pb2.StorePatternRequest, prefix: str = "") -> list[Violation]:
    """Every reason a StorePattern request is invalid, as (field, description)."""
    found = namespace_violations(request.namespace, f"{prefix}namespace")
    if not request.HasField("pattern"):
        return [*found, (f"{prefix}pattern", "required")]
    pattern = request.pattern
    at = f"{prefix}pattern."
    found += pattern_id_violations(pattern.id, f"{at}id")
    if pattern.type == memory_pb2.PATTERN_TYPE_UNSPECIFIED:
        found.append((f"{at}type", "required"))
    if len(pattern.content.encode()) > MAX_CONTENT_BYTES:
        found.append((f"{at}content", f"longer than the limit of {MAX_CONTENT_BYTES} bytes"))
    if len(pattern.form_responses) > MAX_FORM_RESPONSES:
        found.append((f"{at}form_responses", f"more than {MAX_FORM_RESPONSES} answers"))
    elif any(not 1 <= len(key) <= MAX_FORM_KEY_LENGTH for key in pattern.form_responses):
        found.append(
            (f"{at}form_responses", f"question ids must be 1 to {MAX_FORM_KEY_LENGTH} characters")
        )
    if len(pattern.tags) > MAX_TAGS:
        found.append((f"{at}tags", f"more than {MAX_TAGS} tags"))
    for index, tag in enumerate(pattern.tags):
        if not 1 <= len(tag) <= MAX_TAG_LENGTH:
            found.append((f"{at}tags[{index}]", f"must be 1 to {MAX_TAG_LENGTH} characters"))
    if pattern.HasField("metadata") and _struct_depth(pattern.metadata) > MAX_METADATA_DEPTH:
        found.append((f"{at}metadata", f"nests deeper than {MAX_METADATA_DEPTH} levels"))
    found += _typed_violations(pattern, at)
    return found


def written_fields(pattern: memory_pb2.Pattern) -> memory_pb2.Pattern:
    """The pattern without output-only fields: what a writer actually sent."""
    copy = memory_pb2.Pattern()
    copy.CopyFrom(pattern)
    for output_only in ("namespace", "owner", "store_time", "expire_time", "embedding"):
        copy.ClearField(output_only)
    return copy


def fingerprint(pattern: memory_pb2.Pattern) -> str:
    """A digest equal for two writes exactly when they carry the same pattern."""
    body = written_fields(pattern).SerializeToString(deterministic=True)
    return hashlib.sha256(body).hexdigest()
