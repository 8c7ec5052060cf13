"""The `attune-memory-admin` typer app: one command line for the operator's jobs."""

from __future__ import annotations

import typer

from memory_service.admin import keys, reencrypt, tokens

app = typer.Typer(
    help=(
        "Operator commands for the Attune services: bearer tokens and tokens files (both "
        "services), encryption-at-rest keys and re-encryption (the memory service)."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(tokens.app, name="tokens")
app.add_typer(keys.app, name="keys")
app.command("reencrypt", help=reencrypt.HELP)(reencrypt.reencrypt_command)
