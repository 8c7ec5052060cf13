"""What every group of MemoryService RPCs shares: the servicer's state, and the
checks and sizes more than one group uses."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import Message

from memory_service.access.audit_buffer import BufferedAudit
from memory_service.access.denials import DenialLimiter
from memory_service.patterns import namespace_violations, pattern_id_violations
from memory_service.search.forms import EMPTY_FORMS, FormCatalog
from memory_service.security.identity import Authenticator
from memory_service.semantic import Semantic
from memory_service.servicekit.errors import invalid_argument
from memory_service.store.base import PatternStore
from memory_service.write_pipeline import Retention

Context = grpc.aio.ServicerContext[Any, Any]


class RpcBase:
    """The state the RPC groups read; MemoryServicer sets it."""

    authenticator: Authenticator
    audit_log: BufferedAudit | None
    denials: DenialLimiter | None
    _store: PatternStore
    _retention: Retention
    _semantic: Semantic | None
    _context_ttl: tuple[float, float]
    _max_pattern_bytes: int
    _forms: FormCatalog = EMPTY_FORMS  # The templates' forms search understands.
    _backend: str = "embedded"  # The store's kind, for the search metrics.


def message_size(message: Message) -> int:
    return message.ByteSize()


def check_address(namespace: str, pattern_id: str) -> None:
    violations = namespace_violations(namespace) + pattern_id_violations(pattern_id, "pattern_id")
    if violations:
        raise invalid_argument(violations)
