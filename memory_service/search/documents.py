"""What of a pattern is searchable as text, and how a stored one is read back."""

from __future__ import annotations

from collections.abc import Callable

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2

# Reads a stored pattern's bytes (namespace and id name it in a log); None if
# they do not parse. The index's decode_pattern is one.
Decode = Callable[[bytes, str, object], memory_pb2.Pattern | None]


def searchable_text(pattern: memory_pb2.Pattern) -> str:
    """The text indexed for a pattern: its body plus its names and tags."""
    parts = [pattern.content, pattern.template_id.replace("_", " "), pattern.template_id]
    parts.extend(pattern.tags)
    for agent in pattern.agents:
        parts.append(agent.role.replace("_", " "))
        parts.append(common_pb2.Tier.Name(agent.tier).removeprefix("TIER_").lower())
    parts.append("succeeded success" if pattern.success else "failed failure")
    return "\n".join(part for part in parts if part)
