"""The operator commands under their older names, with their argparse usage and exits.

`python -m memory_service.security.identity hash-token|new-token|check`,
`python -m memory_service.security.crypto generate-key` and
`python -m memory_service.reencrypt` parse their arguments here and run the
same functions as `attune-memory-admin`, so scripts written for them keep
their outputs and exit statuses (argparse's usage errors exit 2, as before).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from memory_service.admin import keys, reencrypt, tokens
from memory_service.admin.say import say
from memory_service.security.crypto import KEY_FILE_SETTING, KEYS_SETTING, KeyConfigError

# Only typeshed makes the class generic: at run time the alias stays a string.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _parser(module: str, description: str) -> tuple[argparse.ArgumentParser, Subparsers]:
    """The module's parser (named as before, for the same usage lines) and its commands."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    return parser, parser.add_subparsers(dest="command", required=True)


def identity_main(argv: Sequence[str] | None = None) -> int:
    """`python -m memory_service.security.identity`: tokens commands."""
    parser, commands = _parser(
        "memory_service.security.identity",
        "Tokens for the memory service and the executor: hash, mint, check a tokens file. "
        "Also `attune-memory-admin tokens`.",
    )
    commands.add_parser(
        "hash-token", help="read a token from stdin and print its SHA-256 for a tokens file"
    )
    commands.add_parser("new-token", help="mint a random token and print it with its SHA-256")
    check = commands.add_parser("check", help="validate a tokens file")
    check.add_argument("path")
    check.add_argument(
        "--service",
        choices=sorted(tokens.Service),
        default=tokens.Service.memory.value,
        help=tokens.SERVICE_HELP,
    )
    args = parser.parse_args(argv)
    if args.command == "hash-token":
        return tokens.hash_from_stdin()
    if args.command == "new-token":
        return tokens.new_token()
    return tokens.check_file(Path(args.path), tokens.Service(args.service))


def crypto_main(argv: Sequence[str] | None = None) -> int:
    """`python -m memory_service.security.crypto`: ``generate-key``."""
    parser, commands = _parser(
        "memory_service.security.crypto",
        "Encryption-at-rest key tools for the memory service. Also `attune-memory-admin keys`.",
    )
    generate = commands.add_parser(
        "generate-key",
        help="print a fresh random AES-256 key in base64",
        description=f"Print a fresh random AES-256 key in base64, for {KEYS_SETTING} or "
        f"{KEY_FILE_SETTING}.",
    )
    generate.add_argument("--key-id", help=keys.KEY_ID_HELP)
    args = parser.parse_args(argv)
    try:
        say(keys.key_line(args.key_id))
    except KeyConfigError as error:
        parser.error(str(error))
    return 0


def reencrypt_main(argv: Sequence[str] | None = None) -> int:
    """`python -m memory_service.reencrypt`: takes no arguments but --help."""
    argparse.ArgumentParser(
        prog="python -m memory_service.reencrypt",
        description=reencrypt.HELP + " Also `attune-memory-admin reencrypt`.",
    ).parse_args(argv)
    return reencrypt.run()
