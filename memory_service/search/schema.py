"""What a pattern filter can name, and a pattern as a filterable record.

The record is the single typed view of a pattern that every evaluator uses:
the Python matcher, the SQL translation over the stored JSON, and the
executor's local fallback.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.search.filter import FieldSpec, FieldType, Schema, epoch_micros

_TIERS = ("CHEAP", "CAPABLE", "PREMIUM")
_CLASSIFICATIONS = ("PUBLIC", "INTERNAL", "SENSITIVE")
_TYPES = ("EXECUTION", "INSIGHT", "PROMOTED_CONTEXT")

PATTERN_SCHEMA = Schema(
    {
        "id": FieldSpec(FieldType.STRING),
        "type": FieldSpec(FieldType.ENUM, enum_values=_TYPES),
        "classification": FieldSpec(FieldType.ENUM, enum_values=_CLASSIFICATIONS),
        "create_time": FieldSpec(FieldType.TIMESTAMP),
        "template_id": FieldSpec(FieldType.STRING),
        "success": FieldSpec(FieldType.BOOL),
        "total_cost_usd": FieldSpec(FieldType.NUMBER),
        "total_duration_seconds": FieldSpec(FieldType.NUMBER),
        "agent_count": FieldSpec(FieldType.NUMBER),
        "agents.role": FieldSpec(FieldType.STRING, repeated=True),
        "agents.tier": FieldSpec(FieldType.ENUM, repeated=True, enum_values=_TIERS),
        "agents.success": FieldSpec(FieldType.BOOL, repeated=True),
        "agents.cost_usd": FieldSpec(FieldType.NUMBER, repeated=True),
        "agents.attempt_count": FieldSpec(FieldType.NUMBER, repeated=True),
        "tier_distribution.cheap": FieldSpec(FieldType.NUMBER),
        "tier_distribution.capable": FieldSpec(FieldType.NUMBER),
        "tier_distribution.premium": FieldSpec(FieldType.NUMBER),
        "form_responses.*": FieldSpec(FieldType.ANY),
        "tags": FieldSpec(FieldType.STRING, repeated=True),
        "content": FieldSpec(FieldType.STRING),
        "run_id": FieldSpec(FieldType.STRING),
        "runner": FieldSpec(FieldType.STRING),
        "pinned": FieldSpec(FieldType.BOOL),
    }
)


def _enum(name: str, prefix: str) -> str:
    return name.removeprefix(prefix)


def _form_value(value: common_pb2.FormValue) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_list_value":
        return list(value.string_list_value.values)
    return None if kind is None else getattr(value, kind)


def record_json(record: dict[str, Any]) -> str:
    """The record as stored for SQL: timestamps become integer microseconds."""
    return orjson.dumps(record, default=_micros, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()


def _micros(value: object) -> int:
    if isinstance(value, datetime):
        return epoch_micros(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def pattern_record(pattern: memory_pb2.Pattern) -> dict[str, Any]:
    """The pattern's filterable fields as plain values (see PATTERN_SCHEMA)."""
    return {
        "id": pattern.id,
        "type": _enum(memory_pb2.PatternType.Name(pattern.type), "PATTERN_TYPE_"),
        "classification": _enum(
            common_pb2.Classification.Name(pattern.classification), "CLASSIFICATION_"
        ),
        "create_time": pattern.create_time.ToDatetime(tzinfo=UTC),
        "template_id": pattern.template_id,
        "success": pattern.success,
        "total_cost_usd": pattern.total_cost_usd,
        "total_duration_seconds": pattern.total_duration.ToNanoseconds() / 1e9,
        "agent_count": len(pattern.agents),
        "agents": [
            {
                "role": agent.role,
                "tier": _enum(common_pb2.Tier.Name(agent.tier), "TIER_"),
                "success": agent.success,
                "cost_usd": agent.cost_usd,
                "attempt_count": agent.attempt_count,
            }
            for agent in pattern.agents
        ],
        "tier_distribution": {
            tier: pattern.tier_distribution.get(tier, 0) for tier in ("cheap", "capable", "premium")
        },
        "form_responses": {
            key: _form_value(value) for key, value in sorted(pattern.form_responses.items())
        },
        "tags": list(pattern.tags),
        "content": pattern.content,
        "run_id": pattern.run_id,
        "runner": pattern.runner,
        "pinned": pattern.pinned,
    }
