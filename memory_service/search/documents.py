"""What of a pattern is searchable as text."""

from __future__ import annotations

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2


def searchable_text(pattern: memory_pb2.Pattern) -> str:
    """The text indexed for a pattern: its body plus its names and tags."""
    parts = [pattern.content, pattern.template_id.replace("_", " "), pattern.template_id]
    parts.extend(pattern.tags)
    for agent in pattern.agents:
        parts.append(agent.role.replace("_", " "))
        parts.append(common_pb2.Tier.Name(agent.tier).removeprefix("TIER_").lower())
    parts.append("succeeded success" if pattern.success else "failed failure")
    return "\n".join(part for part in parts if part)
