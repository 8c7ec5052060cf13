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

_TIERS = ("CHEAP", "CAPABLE", "PREMIUM")  # In escalation order.
_STRATEGIES = ("CHEAP_ONLY", "PROGRESSIVE", "CAPABLE_FIRST", "PREMIUM_ONLY", "LEARNED")
# An escalation from the agent's first tier to its last, e.g. "CHEAP_TO_PREMIUM".
_ESCALATIONS = tuple(
    f"{low}_TO_{high}" for index, low in enumerate(_TIERS) for high in _TIERS[index + 1 :]
)
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
        "agents.tier_strategy": FieldSpec(FieldType.ENUM, repeated=True, enum_values=_STRATEGIES),
        "agents.first_tier": FieldSpec(FieldType.ENUM, repeated=True, enum_values=_TIERS),
        "agents.escalated": FieldSpec(FieldType.BOOL, repeated=True),
        "agents.escalated_to": FieldSpec(FieldType.ENUM, repeated=True, enum_values=_TIERS),
        "agents.escalation": FieldSpec(FieldType.ENUM, repeated=True, enum_values=_ESCALATIONS),
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


def _escalation(agent: memory_pb2.PatternAgent) -> dict[str, Any]:
    """Whether the agent escalated and, if it did, to which tier from which.

    Escalating means its last attempt ran at a higher tier than its first.
    A pattern written without `first_tier` (before the field existed) tells
    only how many attempts the agent made; attempts after the first are
    escalations (see PatternAgent.attempt_count), so it escalated to its last
    tier from a tier it does not say. `escalated_to` and `escalation` are
    left out when the agent did not escalate (or the tier is not known), so
    a filter on them never matches such an agent.
    """
    last = agent.tier
    if agent.first_tier == common_pb2.TIER_UNSPECIFIED:
        escalated = agent.attempt_count > 1 and last != common_pb2.TIER_UNSPECIFIED
        return {"escalated": escalated} | ({"escalated_to": _tier(last)} if escalated else {})
    # Tier values grow with the tier (cheap 1, capable 2, premium 3).
    if last <= agent.first_tier:
        return {"escalated": False}
    return {
        "escalated": True,
        "escalated_to": _tier(last),
        "escalation": f"{_tier(agent.first_tier)}_TO_{_tier(last)}",
    }


def _tier(tier: common_pb2.Tier.ValueType) -> str:
    return _enum(common_pb2.Tier.Name(tier), "TIER_")


def _agent_record(agent: memory_pb2.PatternAgent) -> dict[str, Any]:
    return {
        "role": agent.role,
        "tier": _tier(agent.tier),
        "success": agent.success,
        "cost_usd": agent.cost_usd,
        "attempt_count": agent.attempt_count,
        "tier_strategy": _enum(common_pb2.TierStrategy.Name(agent.tier_strategy), "TIER_STRATEGY_"),
        "first_tier": _tier(agent.first_tier),
        **_escalation(agent),
    }


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
        "agents": [_agent_record(agent) for agent in pattern.agents],
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
