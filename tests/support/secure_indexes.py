"""A SecureIndex over a SQLite file and a clock the tests move, for its unit tests.

The fixtures (`opened`, `index`) are imported by the test modules that use them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.search.filter import compile_filter
from memory_service.search.index import PageQuery, ReadQuery, every_should
from memory_service.search.query import parse_query
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.security.crypto import Keyring
from memory_service.store.secure_index import SecureIndex

NS = "team-a"
T0 = 1_767_225_600_000_000  # 2026-01-01, in microseconds
HOUR = 3_600_000_000
SENSITIVE = common_pb2.CLASSIFICATION_SENSITIVE


def keys(*key_ids: str, active: str | None = None) -> Keyring:
    return Keyring(
        {key_id: (key_id.encode() * 32)[:32] for key_id in key_ids},
        active or (key_ids[0] if key_ids else None),
    )


@dataclass
class Clock:
    now_us: int = T0

    def __call__(self) -> int:
        return self.now_us


@dataclass
class Opened:
    """A SecureIndex over a file, reopenable with other keys."""

    path: Path
    clock: Clock = field(default_factory=Clock)
    connections: list[sqlite3.Connection] = field(default_factory=list)

    def open(self, keyring: Keyring) -> SecureIndex:
        connection = sqlite3.connect(self.path, isolation_level=None)
        self.connections.append(connection)
        connection.execute("PRAGMA journal_mode=WAL")
        return SecureIndex(connection, keyring, self.clock)

    def raw(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None)
        self.connections.append(connection)
        return connection


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Opened]:
    files = Opened(tmp_path / "index.sqlite3")
    try:
        yield files
    finally:
        for connection in files.connections:
            connection.close()


@pytest.fixture
def index(opened: Opened) -> SecureIndex:
    return opened.open(keys("k1"))


def pattern(
    pattern_id: str,
    content: str,
    *,
    owner: str = "",
    sensitive: bool = False,
    hours: int = 0,
    template_id: str = "python_package_publish",
    success: bool = True,
    expire_us: int = 0,
) -> memory_pb2.Pattern:
    made = memory_pb2.Pattern(
        id=pattern_id,
        namespace=NS,
        type=memory_pb2.PATTERN_TYPE_EXECUTION,
        content=content,
        owner=owner,
        template_id=template_id,
        success=success,
        total_cost_usd=1.0,
        classification=SENSITIVE if sensitive else common_pb2.CLASSIFICATION_INTERNAL,
    )
    made.create_time.FromMicroseconds(T0 - HOUR * 100 + HOUR * hours)
    if expire_us:
        made.expire_time.FromMicroseconds(expire_us)
    return made


def put(index: SecureIndex, *patterns: memory_pb2.Pattern, namespace: str = NS) -> None:
    with index.transaction():
        for item in patterns:
            index.put(namespace, item, f"digest-{item.id}-{item.content}")


def searched(
    index: SecureIndex, query: str, viewer: str, condition: str = ""
) -> tuple[list[str], int]:
    node = compile_filter(condition, PATTERN_SCHEMA) if condition else None
    terms = parse_query(query) if query else []
    hits, total = index.search(
        ReadQuery(NS, terms, node, 50, min_should_match=every_should(terms)), viewer=viewer
    )
    return [hit.pattern.id for hit in hits], total


def paged(index: SecureIndex, viewer: str) -> list[str]:
    return [p.id for p in index.page(PageQuery(NS, None, [("id", False)], 50, 0), viewer=viewer)[0]]
