"""Who is calling (authentication) and what they may do (authorization).

Callers send `authorization: Bearer <token>`. Tokens are configured in a
tokens file (YAML or JSON, typically a mounted Kubernetes secret) that holds
only the SHA-256 of each token, so the file itself grants nothing if leaked:

    - token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      user_id: svc:executor
      role: writer            # reader < writer < admin (executor: viewer < runner < admin)
      namespaces: [team-a, team-b]
      delegate: true          # may act on behalf of users (see acting_principal)
    - token_sha256: ...
      user_id: alice@example.com
      role: admin
      namespaces: ["*"]       # every namespace

Operators hash a token with `python -m memory_service.security.identity
hash-token` (the token is read from stdin, never from the command line, so it
stays out of shell history), or mint one with `new-token`, and validate a file
with `check PATH`.

A service whose entry says `delegate: true` may call on behalf of a user by
adding the metadata `attune-on-behalf-of: <user id>` to its own credentials:
the call then acts as that user (ownership, SENSITIVE visibility, private
context entries, the audit record's principal) within the service's own role
and namespaces, and its audit record names the service as `delegated_by`.
So a service never lends its own identity to a caller (no confused deputy).

No error message of this module ever contains a token, a token hash, or the
raw authorization header.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import logging
import re
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Protocol

import grpc
import yaml
from google.rpc import error_details_pb2
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from memory_service.patterns import NAMESPACE_PATTERN
from memory_service.servicekit.errors import ServiceError

logger = logging.getLogger(__name__)

ALL_NAMESPACES = "*"
ANONYMOUS_USER_ID = "anonymous"
ERROR_DOMAIN = "memory.attune"

# RFC 6750 b64token: the only characters a bearer token may hold.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# A run this long in a parser message could be (part of) a token.
_TOKENISH = re.compile(r"[A-Za-z0-9\-._~+/=]{16,}")
_USER_ID = re.compile(r"[A-Za-z0-9._@:+\-]{1,128}")
# gRPC caps metadata at 8 KiB by default; anything near that is not a real token.
MAX_TOKEN_LENGTH = 4096
# Names a message may show: the caller's own request values, clipped.
_MAX_SHOWN = 128


class Role(IntEnum):
    """What a principal may do; a higher role includes every lower one."""

    READER = 1
    WRITER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The lower-case name used in tokens files and messages."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """A role from its name, case-insensitively; ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"must be one of {', '.join(r.label for r in cls)}") from None


# Each service names the three ranks its own way in its tokens files; the
# file format and everything else about tokens is shared.
RoleNames = Mapping[str, Role]
MEMORY_ROLE_NAMES: RoleNames = {"reader": Role.READER, "writer": Role.WRITER, "admin": Role.ADMIN}
EXECUTOR_ROLE_NAMES: RoleNames = {"viewer": Role.READER, "runner": Role.WRITER, "admin": Role.ADMIN}


def role_label(role: Role, names: RoleNames) -> str:
    """The name `names` gives the role."""
    return next(name for name, rank in names.items() if rank is role)


class Action(StrEnum):
    """What a call does to a namespace."""

    READ = "read"
    WRITE = "write"
    DELETE = "delete"
    ADMIN = "admin"


# Deleting needs no more than writing: a writer can already overwrite any
# pattern with replace=true, so a higher bar for delete would protect nothing.
REQUIRED_ROLE: dict[Action, Role] = {
    Action.READ: Role.READER,
    Action.WRITE: Role.WRITER,
    Action.DELETE: Role.WRITER,
    Action.ADMIN: Role.ADMIN,
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: who, with which role, over which namespaces.

    may_delegate: a service that may act on behalf of users (its tokens-file
    entry says `delegate: true`). delegated_by: for a principal acting
    through a service (acting_principal), that service's user id; else "".
    """

    user_id: str
    role: Role
    namespaces: frozenset[str]
    may_delegate: bool = False
    delegated_by: str = ""

    ANONYMOUS: ClassVar[Principal]

    def grants(self, namespace: str) -> bool:
        """Whether the namespace is granted; the empty namespace never is."""
        if not namespace:
            return False
        return ALL_NAMESPACES in self.namespaces or namespace in self.namespaces

    @property
    def all_namespaces(self) -> bool:
        """Whether every namespace is granted ("*")."""
        return ALL_NAMESPACES in self.namespaces

    def may(self, namespace: str, action: Action) -> bool:
        """Whether authorize() would let this principal act on the namespace."""
        return self.role >= REQUIRED_ROLE[action] and self.grants(namespace)


# Used when authentication is off: local development only. It may delegate,
# so a development executor's calls on behalf of users behave as in production.
Principal.ANONYMOUS = Principal(
    ANONYMOUS_USER_ID, Role.ADMIN, frozenset({ALL_NAMESPACES}), may_delegate=True
)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _error_info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)


def _denied(
    principal: Principal, namespace: str, action: Action, why: str, reason: str
) -> NoReturn:
    shown = repr(_clip(namespace)) if namespace else "'' (empty)"
    message = (
        f"user {_clip(principal.user_id)!r} may not {action.value} in namespace {shown}: {why}"
    )
    info = _error_info(
        reason, user_id=_clip(principal.user_id), namespace=_clip(namespace), action=action.value
    )
    raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, message, [info])


def authorize(
    principal: Principal,
    namespace: str,
    action: Action,
    role_names: RoleNames = MEMORY_ROLE_NAMES,
) -> None:
    """Returns if the principal may act on the namespace; PERMISSION_DENIED otherwise.

    The empty namespace is never granted, not even by "*": a request that
    forgot its namespace must not turn into a request for all of them. Code
    acting on every namespace at once uses authorize_all_namespaces().
    """
    needed = REQUIRED_ROLE[action]
    if principal.role < needed:
        have, need = role_label(principal.role, role_names), role_label(needed, role_names)
        why = f"role {have} is below the {need} role it needs"
        _denied(principal, namespace, action, why, "ROLE_TOO_LOW")
    if not namespace:
        why = "an empty namespace does not mean all namespaces"
        _denied(principal, namespace, action, why, "NAMESPACE_NOT_GRANTED")
    if not principal.grants(namespace):
        _denied(principal, namespace, action, "namespace not granted", "NAMESPACE_NOT_GRANTED")


def authorize_all_namespaces(principal: Principal, action: Action) -> None:
    """Like authorize() for an action spanning every namespace: needs the "*" grant."""
    needed = REQUIRED_ROLE[action]
    user = _clip(principal.user_id)
    if principal.role < needed:
        why = f"role {principal.role.label} is below the {needed.label} role it needs"
    elif not principal.all_namespaces:
        why = "it needs the '*' grant (all namespaces)"
    else:
        return
    message = f"user {user!r} may not {action.value} across all namespaces: {why}"
    info = _error_info("NAMESPACE_NOT_GRANTED", user_id=user, namespace="*", action=action.value)
    raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, message, [info])


# --- tokens ------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """The SHA-256 hex digest of a token: what a tokens file stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_HASH_HELP = (
    "must be the SHA-256 of the token as 64 hex digits "
    "(python -m memory_service.security.identity hash-token); the token itself is never stored"
)


class TokenEntry(BaseModel):
    """One entry of a tokens file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_sha256: str
    user_id: str
    role: Role
    namespaces: frozenset[str]
    # A service that may act on behalf of users (ON_BEHALF_OF_HEADER).
    delegate: bool = False

    # Messages below never include the offending value: it may be a token.
    @field_validator("token_sha256", mode="before")
    @classmethod
    def _check_hash(cls, value: Any) -> str:
        if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
            raise ValueError(_HASH_HELP)
        return value.lower()

    @field_validator("user_id", mode="before")
    @classmethod
    def _check_user_id(cls, value: Any) -> str:
        if not isinstance(value, str) or not _USER_ID.fullmatch(value):
            raise ValueError(
                "must be a quoted string of 1 to 128 characters of A-Z, a-z, 0-9, "
                "'.', '_', '@', ':', '+' or '-'"
            )
        if value == ANONYMOUS_USER_ID:
            raise ValueError(f"{ANONYMOUS_USER_ID!r} is reserved for unauthenticated development")
        return value

    @field_validator("role", mode="before")
    @classmethod
    def _check_role(cls, value: Any, info: ValidationInfo) -> Role:
        if isinstance(value, Role):
            return value
        names: RoleNames = (info.context or {}).get("role_names", MEMORY_ROLE_NAMES)
        role = names.get(value.strip().lower()) if isinstance(value, str) else None
        if role is None:
            raise ValueError(f"must be one of {', '.join(names)}")
        return role

    @field_validator("delegate", mode="before")
    @classmethod
    def _check_delegate(cls, value: Any) -> bool:
        # Strictly a boolean: "yes" or 1 granting delegation by accident is too costly.
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value

    @field_validator("namespaces", mode="before")
    @classmethod
    def _check_namespaces(cls, value: Any) -> frozenset[str]:
        if not isinstance(value, list | tuple | set | frozenset):
            raise ValueError('must be a list of namespaces, or ["*"] for all')
        if not value:
            raise ValueError('must grant at least one namespace, or ["*"] for all')
        for index, item in enumerate(value):
            # Named by position, not value: a misplaced token must not be echoed.
            if not isinstance(item, str):
                raise ValueError(f"namespaces[{index}] must be a string")
            if item != ALL_NAMESPACES and not NAMESPACE_PATTERN.fullmatch(item):
                raise ValueError(
                    f"namespaces[{index}] is neither '*' nor a namespace "
                    "(1 to 64 characters of a-z, 0-9, '.', '_' or '-')"
                )
        return frozenset(value)

    def principal(self) -> Principal:
        """The principal this entry authenticates."""
        return Principal(self.user_id, self.role, self.namespaces, may_delegate=self.delegate)


class TokenFileError(ValueError):
    """A tokens file that cannot be used; the message lists every problem found."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = f"tokens file {path}: {self.problems[0]}"
        else:
            text = f"tokens file {path} has {len(self.problems)} problems:\n  " + "\n  ".join(
                self.problems
            )
        super().__init__(text)


MAX_REPORTED_PROBLEMS = 50
_ENTRY_FIELDS = ", ".join(TokenEntry.model_fields)
# Field names a confused operator may use: safe to name back, with a hint.
_KNOWN_MISTAKES = {
    "token": "a plain token is never stored; use token_sha256",
    "token_hash": "the field is called token_sha256",
    "sha256": "the field is called token_sha256",
    "hash": "the field is called token_sha256",
}


def _describe(index: int, error: Any) -> str:
    """One pydantic error as text, without the input (which may be a token)."""
    loc = [part for part in error["loc"] if isinstance(part, str)]
    where = f"entries[{index}]"
    if error["type"] == "extra_forbidden":
        name = loc[-1] if loc else ""
        hint = _KNOWN_MISTAKES.get(name)
        # An unknown key could itself be a pasted token: never echo it.
        if hint:
            return f"{where}.{name}: {hint}"
        return f"{where}: an unknown field (the fields are {_ENTRY_FIELDS})"
    if error["type"] == "missing":
        return f"{where}.{loc[-1]}: required"
    field = f".{loc[0]}" if loc else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "model_type":
        message = f"must be a mapping with the fields {_ENTRY_FIELDS}"
    return f"{where}{field}: {message}"


def _parse_document(path: Path, text: str) -> Any:
    """The file's data; the error text keeps only positions, never file content."""
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            where = f"line {error.lineno}, column {error.colno}"
            raise TokenFileError(path, [f"not valid JSON at {where}: {error.msg}"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # The parser may quote the text it stumbled on: redact anything token-like.
        problem = f": {_TOKENISH.sub('…', error.problem)}" if error.problem else ""
        raise TokenFileError(path, [f"not valid YAML{where}{problem}"]) from None
    except yaml.YAMLError:
        raise TokenFileError(path, ["not valid YAML"]) from None


def parse_token_entries(
    path: Path, data: Any, role_names: RoleNames = MEMORY_ROLE_NAMES
) -> list[TokenEntry]:
    """Validates every entry of a parsed tokens file; TokenFileError lists all problems."""
    if data is None:
        raise TokenFileError(path, ["is empty; it must be a list of token entries"])
    if not isinstance(data, list):
        raise TokenFileError(path, ["must be a list of token entries at the top level"])
    if not data:
        raise TokenFileError(path, ["holds no entries, so every call would be refused"])
    problems: list[str] = []
    entries: list[TokenEntry] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(data):
        try:
            entry = TokenEntry.model_validate(item, context={"role_names": role_names})
        except ValidationError as error:
            problems.extend(_describe(index, e) for e in error.errors(include_input=False))
            continue
        if entry.token_sha256 in first_index:
            earlier = first_index[entry.token_sha256]
            problems.append(f"entries[{index}].token_sha256: the same token as entries[{earlier}]")
            continue
        first_index[entry.token_sha256] = index
        entries.append(entry)
    if problems:
        if len(problems) > MAX_REPORTED_PROBLEMS:
            extra = len(problems) - MAX_REPORTED_PROBLEMS
            problems = [*problems[:MAX_REPORTED_PROBLEMS], f"and {extra} more problems"]
        raise TokenFileError(path, problems)
    return entries


def load_tokens_file(path: Path, role_names: RoleNames = MEMORY_ROLE_NAMES) -> list[TokenEntry]:
    """Reads and validates a tokens file (.json as JSON, anything else as YAML)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise TokenFileError(path, [f"cannot be read: {error.strerror or error}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenFileError(path, ["is not UTF-8 text"]) from None
    return parse_token_entries(path, _parse_document(path, text), role_names)


# --- authenticators ---------------------------------------------------------------


class Authenticator(Protocol):
    """Turns a call's metadata into a principal, or raises UNAUTHENTICATED."""

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]]) -> Principal:
        """The calling principal."""
        ...


def _unauthenticated(message: str, reason: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, message, [_error_info(reason)])


def bearer_token(metadata: Sequence[tuple[str, str | bytes]]) -> str:
    """The token of the `authorization: Bearer <token>` header; UNAUTHENTICATED otherwise.

    Messages describe the problem only: the header may hold a token even when
    malformed (a token sent without "Bearer " arrives as the scheme).
    """
    values = [value for key, value in metadata if key.lower() == "authorization"]
    if not values:
        raise _unauthenticated(
            "missing credentials: send the metadata 'authorization: Bearer <token>'",
            "MISSING_CREDENTIALS",
        )
    if len(values) > 1:
        raise _unauthenticated("more than one authorization header", "MALFORMED_CREDENTIALS")
    value = values[0]
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise _unauthenticated(
                "the authorization header is not ASCII", "MALFORMED_CREDENTIALS"
            ) from None
    parts = value.strip().split(None, 1)
    if not parts or parts[0].lower() != "bearer":
        raise _unauthenticated(
            "the authorization header must be 'Bearer <token>'", "MALFORMED_CREDENTIALS"
        )
    token = parts[1].strip() if len(parts) == 2 else ""
    if not token:
        raise _unauthenticated("the Bearer token is empty", "MISSING_CREDENTIALS")
    if len(token) > MAX_TOKEN_LENGTH or not _B64TOKEN.fullmatch(token):
        raise _unauthenticated(
            "the Bearer token is malformed (RFC 6750 token characters only)",
            "MALFORMED_CREDENTIALS",
        )
    return token


class TokenAuthenticator:
    """Authenticates bearer tokens against hashed tokens-file entries.

    Tokens are looked up by their SHA-256 in a dict. Any timing difference in
    that lookup depends on the hash of the *presented* token, which an
    attacker cannot steer towards a stored hash without a SHA-256 preimage,
    so it leaks nothing about valid tokens; this is the usual argument for
    comparing digests instead of secrets, and it keeps lookups O(1) rather
    than an hmac.compare_digest against every entry.
    """

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._by_hash: dict[str, Principal] = {}
        for entry in entries:
            if entry.token_sha256 in self._by_hash:
                raise ValueError("two entries have the same token_sha256")
            self._by_hash[entry.token_sha256] = entry.principal()

    @classmethod
    def from_file(cls, path: Path, role_names: RoleNames = MEMORY_ROLE_NAMES) -> TokenAuthenticator:
        """An authenticator for a tokens file; TokenFileError if it is invalid."""
        return cls(load_tokens_file(path, role_names))

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]]) -> Principal:
        """The principal of the call's bearer token; UNAUTHENTICATED otherwise."""
        principal = self._by_hash.get(hash_token(bearer_token(metadata)))
        if principal is None:
            raise _unauthenticated("the Bearer token is not recognised", "UNKNOWN_TOKEN")
        return principal


class NoAuthentication:
    """Every caller is Principal.ANONYMOUS (an admin of all namespaces): development only."""

    def __init__(self) -> None:
        # Loud on purpose: a deployment must never run like this by accident.
        logger.warning(
            "AUTHENTICATION IS OFF: every caller is an admin of every namespace; "
            "configure a tokens file for anything but local development"
        )

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]]) -> Principal:
        """Always the anonymous admin."""
        return Principal.ANONYMOUS


class AuthConfigError(ValueError):
    """Authentication settings that cannot make a safe service; says what to set."""


def configured_authenticator(
    tokens_file: Path | None, auth_disabled: bool, prefix: str, role_names: RoleNames
) -> Authenticator:
    """The tokens file's authenticator, or nobody checked when explicitly turned off.

    Neither is an error, so a service never starts open by omission; `prefix`
    names the service's settings (MEMORY_, EXECUTOR_) in the message.
    """
    if tokens_file is not None and auth_disabled:
        raise AuthConfigError(
            f"{prefix}TOKENS_FILE and {prefix}AUTH_DISABLED are both set: choose one"
        )
    if tokens_file is not None:
        try:
            return TokenAuthenticator.from_file(tokens_file, role_names)
        except TokenFileError as error:
            raise AuthConfigError(str(error)) from None
    if auth_disabled:
        return NoAuthentication()
    raise AuthConfigError(
        f"authentication is not configured: set {prefix}TOKENS_FILE to a tokens file, or "
        f"{prefix}AUTH_DISABLED=true for local development only"
    )


# --- delegation -------------------------------------------------------------------

# The metadata a delegating service adds to its own credentials.
ON_BEHALF_OF_HEADER = "attune-on-behalf-of"


def _malformed_delegation(problem: str) -> ServiceError:
    return _unauthenticated(f"the {ON_BEHALF_OF_HEADER} header {problem}", "MALFORMED_DELEGATION")


def _shown(value: str) -> str:
    """A header value fit for a message: token-like runs redacted, then clipped."""
    return repr(_clip(_TOKENISH.sub("…", value)))


def _on_behalf_of(principal: Principal, values: Sequence[str | bytes]) -> str:
    """The one well-formed user id of the header values; MALFORMED_DELEGATION otherwise."""
    if len(values) > 1:
        raise _malformed_delegation("is repeated; send it once")
    value = values[0]
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise _malformed_delegation("is not ASCII") from None
    if not _USER_ID.fullmatch(value):
        raise _malformed_delegation(
            f"must be a user id (1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '@', "
            f"':', '+' or '-'); got {_shown(value)}"
        )
    # "anonymous" is nobody's id once authentication is on: acting as it
    # would borrow the development identity.
    if value == ANONYMOUS_USER_ID and principal != Principal.ANONYMOUS:
        raise _malformed_delegation(
            f"names {ANONYMOUS_USER_ID!r}, which is reserved for unauthenticated development"
        )
    return value


def acting_principal(
    principal: Principal, metadata: Sequence[tuple[str, str | bytes]]
) -> Principal:
    """Who the call acts as: `principal`, or the user it names in the
    ON_BEHALF_OF_HEADER metadata when it may delegate.

    The acting principal keeps the caller's role and namespaces (a service
    never gains rights by naming someone) but takes the named user's id, so
    ownership, SENSITIVE visibility and private context follow that user.
    UNAUTHENTICATED (MALFORMED_DELEGATION) for a repeated or malformed header,
    PERMISSION_DENIED (DELEGATION_NOT_GRANTED) for a principal that may not
    delegate. Messages never show a token-like part of the header.
    """
    values = [value for key, value in metadata if key.lower() == ON_BEHALF_OF_HEADER]
    if not values:
        return principal
    user_id = _on_behalf_of(principal, values)
    if not principal.may_delegate:
        caller = _clip(principal.user_id)
        message = (
            f"user {caller!r} may not act on behalf of others: set `delegate: true` on its "
            f"tokens-file entry if it is a service that should, or drop the "
            f"{ON_BEHALF_OF_HEADER} header"
        )
        info = _error_info("DELEGATION_NOT_GRANTED", user_id=caller)
        raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, message, [info])
    return Principal(
        user_id,
        principal.role,
        principal.namespaces,
        may_delegate=False,
        delegated_by=principal.user_id,
    )


# --- operator CLI -----------------------------------------------------------------


def _read_token(prompt: str) -> str:
    # Tokens come from stdin, never argv, so they stay out of shell history and ps.
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.read()


def _cmd_hash_token(_: argparse.Namespace) -> int:
    token = _read_token("token: ").strip()
    if not token:
        print("error: no token on stdin", file=sys.stderr)
        return 2
    if len(token) > MAX_TOKEN_LENGTH or not _B64TOKEN.fullmatch(token):
        print(
            "error: not a usable bearer token (one line of A-Z a-z 0-9 - . _ ~ + / "
            "characters, optionally ending in '=')",
            file=sys.stderr,
        )
        return 2
    print(hash_token(token))
    return 0


def _cmd_new_token(_: argparse.Namespace) -> int:
    token = secrets.token_urlsafe(32)
    print(f"token: {token}")
    print(f"token_sha256: {hash_token(token)}")
    print("# Give the token to the client; put only token_sha256 in the tokens file.")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    path = Path(args.path)
    try:
        entries = load_tokens_file(path, _SERVICE_ROLE_NAMES[args.service])
    except TokenFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    users = len({entry.user_id for entry in entries})
    delegates = sum(entry.delegate for entry in entries)
    if args.service == "executor":
        # Nobody calls the executor on someone else's behalf: the flag means nothing there.
        print(f"{path}: {len(entries)} tokens for {users} users")
        if delegates:
            print(
                f"warning: {delegates} entries say delegate: true, which the executor ignores",
                file=sys.stderr,
            )
        return 0
    print(
        f"{path}: {len(entries)} tokens for {users} users; "
        f"{delegates} may act on behalf of users (delegate: true)"
    )
    return 0


_SERVICE_ROLE_NAMES = {"memory": MEMORY_ROLE_NAMES, "executor": EXECUTOR_ROLE_NAMES}


def main(argv: Sequence[str] | None = None) -> int:
    """Operator commands for tokens files."""
    parser = argparse.ArgumentParser(
        prog="python -m memory_service.security.identity",
        description="Tokens for the memory service and the executor: hash, mint, check a "
        "tokens file.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "hash-token", help="read a token from stdin and print its SHA-256 for a tokens file"
    ).set_defaults(run=_cmd_hash_token)
    commands.add_parser(
        "new-token", help="mint a random token and print it with its SHA-256"
    ).set_defaults(run=_cmd_new_token)
    check = commands.add_parser("check", help="validate a tokens file")
    check.add_argument("path")
    check.add_argument(
        "--service",
        choices=sorted(_SERVICE_ROLE_NAMES),
        default="memory",
        help="whose role names the file uses: memory (reader, writer, admin) or executor "
        "(viewer, runner, admin); default memory",
    )
    check.set_defaults(run=_cmd_check)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
