"""`attune-memory-admin keys`: encryption-at-rest keys for SENSITIVE patterns."""

from __future__ import annotations

from typing import Annotated

import typer

from memory_service.admin.say import complain, say
from memory_service.security.crypto import KeyConfigError, check_key_id, generate_key


def key_line(key_id: str | None) -> str:
    """A fresh key, as "ID:key" when an id is given; KeyConfigError for a bad id."""
    key = generate_key()
    if key_id is None:
        return key
    check_key_id(key_id, "--key-id")
    return f"{key_id}:{key}"


KEY_ID_HELP = 'print "ID:key", ready to paste into the key list or key file'

app = typer.Typer(help="Encryption-at-rest keys for the memory service.", no_args_is_help=True)


@app.callback()
def keys() -> None:
    """Encryption-at-rest keys for the memory service."""


@app.command("generate")
def generate_command(
    key_id: Annotated[str | None, typer.Option("--key-id", help=KEY_ID_HELP)] = None,
) -> None:
    """Print a fresh random AES-256 key in base64, for MEMORY_ENCRYPTION_KEYS or its file."""
    try:
        say(key_line(key_id))
    except KeyConfigError as error:
        complain(f"error: {error}")
        raise typer.Exit(2) from None
