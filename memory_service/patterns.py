"""Pattern rules: what a valid write is, and when two writes are the same."""

from __future__ import annotations

import hashlib
import re

from google.protobuf import struct_pb2

from attune.memory.v1 import memory_pb2

MAX_CONTENT_BYTES = 256 * 1024
MAX_TAGS = 64
MAX_TAG_LENGTH = 64
MAX_METADATA_DEPTH = 8
MAX_BATCH = 500

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
    if len(pattern.tags) > MAX_TAGS:
        found.append((f"{at}tags", f"more than {MAX_TAGS} tags"))
    for index, tag in enumerate(pattern.tags):
        if not 1 <= len(tag) <= MAX_TAG_LENGTH:
            found.append((f"{at}tags[{index}]", f"must be 1 to {MAX_TAG_LENGTH} characters"))
    if pattern.HasField("metadata") and _struct_depth(pattern.metadata) > MAX_METADATA_DEPTH:
        found.append((f"{at}metadata", f"nests deeper than {MAX_METADATA_DEPTH} levels"))
    return found


def written_fields(pattern: memory_pb2.Pattern) -> memory_pb2.Pattern:
    """The pattern without output-only fields: what a writer actually sent."""
    copy = memory_pb2.Pattern()
    copy.CopyFrom(pattern)
    for output_only in ("namespace", "owner", "store_time", "expire_time"):
        copy.ClearField(output_only)
    return copy


def fingerprint(pattern: memory_pb2.Pattern) -> str:
    """A digest equal for two writes exactly when they carry the same pattern."""
    body = written_fields(pattern).SerializeToString(deterministic=True)
    return hashlib.sha256(body).hexdigest()
