"""An executor with caller authentication on (the memory service may stay open),
and callers for it.

Tokens are minted per test; the tokens file holds only their hashes, like a
real deployment's, with the executor's role names (viewer, runner, admin).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_status import rpc_status

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from tests.support.helpers import write_tokens_file
from tests.support.stack import Stack, running_stack

# The executor's namespace (EXECUTOR_MEMORY_NAMESPACE's default): every caller needs it.
NAMESPACE = "default"
# user id -> (executor role, namespaces)
EXECUTOR_USERS: dict[str, tuple[str, list[str]]] = {
    "alice": ("runner", [NAMESPACE]),
    "bob": ("runner", [NAMESPACE]),
    "carol": ("viewer", [NAMESPACE]),
    "root": ("admin", ["*"]),
}
Metadata = tuple[tuple[str, str], ...]


@dataclass
class SecuredExecutor:
    """The running pair (executor authenticating its callers) and one token per user."""

    stack: Stack
    tokens: dict[str, str]

    def stub(self) -> executor_pb2_grpc.ExecutorServiceAsyncStub:
        return self.stack.executor_stub()

    def auth(self, user: str) -> Metadata:
        """The call metadata of a user."""
        return (("authorization", f"Bearer {self.tokens[user]}"),)


@asynccontextmanager
async def secured_executor(
    tmp_path: Path, **executor_overrides: object
) -> AsyncIterator[SecuredExecutor]:
    """Both services, the executor with a tokens file and `executor_overrides` settings."""
    tokens = {user: secrets.token_urlsafe(24) for user in EXECUTOR_USERS}
    tokens_file = tmp_path / "executor-tokens.yaml"
    write_tokens_file(tokens_file, EXECUTOR_USERS, tokens)
    async with running_stack(tmp_path, tokens_file=tokens_file, **executor_overrides) as stack:
        yield SecuredExecutor(stack, tokens)


def not_found_as_unknown(error: grpc.aio.AioRpcError, run_id: str) -> tuple[object, ...]:
    """A NOT_FOUND error with `run_id` replaced by a placeholder everywhere it
    appears (message and details): equal for two ids when the answers are
    alike but for the id."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    return (
        error.code(),
        (error.details() or "").replace(run_id, "<id>"),
        status.message.replace(run_id, "<id>"),
        [detail.value.replace(run_id.encode(), b"<id>") for detail in status.details],
    )


def run_id_of(events: list[executor_pb2.RunWorkflowResponse]) -> str:
    return events[-1].run_finished.run.run_id
