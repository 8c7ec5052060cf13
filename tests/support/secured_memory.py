"""A memory service with authentication and encryption on, and callers for it.

Tokens are minted per test; the tokens file holds only their hashes, like a
real deployment's.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from memory_service.security.crypto import generate_key
from memory_service.security.identity import ON_BEHALF_OF_HEADER
from tests.support.helpers import write_tokens_file
from tests.support.stack import Stack

TEAM_A, TEAM_B = "team-a", "team-b"
EXECUTOR = "svc:executor"

# user id -> (role, namespaces)
USERS: dict[str, tuple[str, list[str]]] = {
    "alice": ("writer", [TEAM_A]),
    "bob": ("writer", [TEAM_A]),
    "carol": ("reader", [TEAM_A]),
    "dave": ("writer", [TEAM_B]),
    "root": ("admin", ["*"]),
    "team-a-admin": ("admin", [TEAM_A]),
    EXECUTOR: ("writer", [TEAM_A]),
}
# Users whose tokens-file entry says `delegate: true`: they may act on behalf of others.
DELEGATES = frozenset({EXECUTOR})


@dataclass
class SecuredMemory:
    """A running memory service and one bearer token per user."""

    stack: Stack
    tokens: dict[str, str]
    key_line: str  # The encryption key, as `id:base64key`.

    def stub(self) -> memory_pb2_grpc.MemoryServiceAsyncStub:
        return self.stack.memory_stub()

    def auth(self, user: str) -> tuple[tuple[str, str], ...]:
        """The call metadata of a user."""
        return (("authorization", f"Bearer {self.tokens[user]}"),)

    def on_behalf_of(self, user: str, caller: str = EXECUTOR) -> tuple[tuple[str, str], ...]:
        """The call metadata of `caller` (the executor) acting for `user`."""
        return (*self.auth(caller), (ON_BEHALF_OF_HEADER, user))


@asynccontextmanager
async def secured_memory(tmp_path: Path, **overrides: object) -> AsyncIterator[SecuredMemory]:
    """The memory service with tokens, an encryption key, and `overrides` settings."""
    tokens = {user: secrets.token_urlsafe(24) for user in USERS}
    tokens_file = tmp_path / "tokens.yaml"
    write_tokens_file(tokens_file, USERS, tokens, DELEGATES)
    key_line = f"k1:{generate_key()}"
    settings: dict[str, object] = {"tokens_file": tokens_file, "encryption_keys": key_line}
    settings.update(overrides)
    stack = Stack(tmp_path, memory_overrides=settings)
    await stack.start_memory()
    try:
        yield SecuredMemory(stack, tokens, key_line)
    finally:
        await stack.close()


def insight(
    pattern_id: str,
    content: str,
    classification: int = 0,
    namespace: str = TEAM_A,
    **fields: object,
) -> memory_pb2.StorePatternRequest:
    """A StorePattern request for an insight."""
    return memory_pb2.StorePatternRequest(
        namespace=namespace,
        pattern=memory_pb2.Pattern(
            id=pattern_id,
            type=memory_pb2.PATTERN_TYPE_INSIGHT,
            content=content,
            classification=classification,  # type: ignore[arg-type]
            **fields,  # type: ignore[arg-type]
        ),
    )
