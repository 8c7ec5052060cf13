"""`attune-memory-admin tokens`: mint and hash bearer tokens, check a tokens file.

Both services read the same tokens-file format (security/identity.py); only
the role names differ, hence `check --service`.
"""

from __future__ import annotations

import getpass
import secrets
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from memory_service.admin.say import complain, say
from memory_service.security.identity import (
    EXECUTOR_ROLE_NAMES,
    MEMORY_ROLE_NAMES,
    TokenFileError,
    hash_token,
    load_tokens_file,
    well_formed_token,
)


class Service(StrEnum):
    """Whose role names a tokens file uses."""

    executor = "executor"
    memory = "memory"


_ROLE_NAMES = {Service.memory: MEMORY_ROLE_NAMES, Service.executor: EXECUTOR_ROLE_NAMES}


def _read_token(prompt: str) -> str:
    # Tokens come from stdin, never argv, so they stay out of shell history and ps.
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.read()


def hash_from_stdin() -> int:
    """Prints the SHA-256 of the token on stdin; 2 if there is no usable token."""
    token = _read_token("token: ").strip()
    if not token:
        complain("error: no token on stdin")
        return 2
    if not well_formed_token(token):
        complain(
            "error: not a usable bearer token (one line of A-Z a-z 0-9 - . _ ~ + / "
            "characters, optionally ending in '=')"
        )
        return 2
    say(hash_token(token))
    return 0


def new_token() -> int:
    """Prints a fresh random token and its SHA-256."""
    token = secrets.token_urlsafe(32)
    say(f"token: {token}")
    say(f"token_sha256: {hash_token(token)}")
    say("# Give the token to the client; put only token_sha256 in the tokens file.")
    return 0


def check_file(path: Path, service: Service) -> int:
    """Validates a tokens file: 0 with a summary, 1 listing every problem."""
    try:
        entries = load_tokens_file(path, _ROLE_NAMES[service])
    except TokenFileError as error:
        complain(f"error: {error}")
        return 1
    users = len({entry.user_id for entry in entries})
    delegates = sum(entry.delegate for entry in entries)
    if service is Service.executor:
        # Nobody calls the executor on someone else's behalf: the flag means nothing there.
        say(f"{path}: {len(entries)} tokens for {users} users")
        if delegates:
            complain(f"warning: {delegates} entries say delegate: true, which the executor ignores")
        return 0
    say(
        f"{path}: {len(entries)} tokens for {users} users; "
        f"{delegates} may act on behalf of users (delegate: true)"
    )
    return 0


SERVICE_HELP = (
    "whose role names the file uses: memory (reader, writer, admin) or executor "
    "(viewer, runner, admin); default memory"
)

app = typer.Typer(
    help="Bearer tokens for the memory service and the executor: mint, hash, check a tokens file.",
    no_args_is_help=True,
)


def _exit(code: int) -> None:
    if code:
        raise typer.Exit(code)


@app.command("new")
def new_command() -> None:
    """Mint a random token and print it with its SHA-256."""
    _exit(new_token())


@app.command("hash")
def hash_command() -> None:
    """Read a token from stdin (never the command line) and print its SHA-256."""
    _exit(hash_from_stdin())


@app.command("check")
def check_command(
    path: Annotated[Path, typer.Argument(help="The tokens file (.json as JSON, else YAML).")],
    service: Annotated[Service, typer.Option(help=SERVICE_HELP)] = Service.memory,
) -> None:
    """Validate a tokens file; every problem is listed."""
    _exit(check_file(path, service))
