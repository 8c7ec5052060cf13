"""Which pattern ids an audit record must show only to its principal.

An audit record names the patterns a call touched. A SENSITIVE pattern is
its owner's alone, so its id is too: the record keeps it as a private id
(see AuditRecord.seen_by), and a namespace admin reading the log sees the
call, never which SENSITIVE pattern it touched.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2


def sensitive_pattern_ids(response: object) -> tuple[str, ...]:
    """The ids of the SENSITIVE patterns a response carries, at any depth
    (none for anything but a message, such as a call that failed)."""
    found: list[str] = []

    def walk(node: Message) -> None:
        if isinstance(node, memory_pb2.Pattern):
            if node.classification == common_pb2.CLASSIFICATION_SENSITIVE:
                found.append(node.id)
            return  # Nothing inside a pattern is another pattern.
        for field, value in node.ListFields():
            entry = field.message_type
            if field.type != FieldDescriptor.TYPE_MESSAGE or entry is None:
                continue
            if entry.GetOptions().map_entry:
                continue  # No response keeps patterns in a map.
            for child in value if field.is_repeated else (value,):
                walk(child)

    if isinstance(response, Message):
        walk(response)
    return tuple(found)
