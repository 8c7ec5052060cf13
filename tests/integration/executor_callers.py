"""Callers of an executor with authentication on: a tokens file and their metadata.

Tokens are minted per test; the file holds only their hashes and the
executor's roles (viewer, runner, admin), with its namespace granted.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

import grpc
import yaml
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from memory_service.security.identity import hash_token

Metadata = tuple[tuple[str, str], ...]


def write_executor_tokens(path: Path, callers: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """Writes a tokens file with one fresh token per caller name, each for
    (user id, executor role); the same user may hold several. Returns name -> token."""
    tokens = {name: secrets.token_urlsafe(24) for name in callers}
    entries = [
        {
            "token_sha256": hash_token(tokens[name]),
            "user_id": user_id,
            "role": role,
            "namespaces": ["default"],  # EXECUTOR_MEMORY_NAMESPACE's default
        }
        for name, (user_id, role) in callers.items()
    ]
    path.write_text(yaml.safe_dump(entries))
    return tokens


def bearer(token: str) -> Metadata:
    """The call metadata carrying a token."""
    return (("authorization", f"Bearer {token}"),)


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The google.rpc.ErrorInfo detail of an error."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {error.details()!r}")
