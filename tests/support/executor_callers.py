"""Callers of an executor with authentication on: a tokens file and their metadata.

Tokens are minted per test; the file holds only their hashes and the
executor's roles (viewer, runner, admin), with its namespace granted.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

import yaml

from memory_service.security.identity import hash_token
from tests.support import helpers

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


error_info = helpers.error_info  # Re-exported: the callers' tests read refusals with it.


def bearer(token: str) -> Metadata:
    """The call metadata carrying a token."""
    return (("authorization", f"Bearer {token}"),)
