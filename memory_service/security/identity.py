"""Who is calling (authentication), on top of principals.py (what they may do).

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

Operators hash a token with `attune-memory-admin tokens hash` (the token is
read from stdin, never from the command line, so it stays out of shell
history), mint one with `tokens new`, and validate a file with `tokens check
PATH` (memory_service/admin/; `python -m memory_service.security.identity`
remains as an alias).

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

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import grpc
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from memory_service.patterns import NAMESPACE_PATTERN

# `X as X`: re-exported, so callers import authentication and authorization from here.
from memory_service.security.principals import ALL_NAMESPACES as ALL_NAMESPACES
from memory_service.security.principals import ANONYMOUS_USER_ID as ANONYMOUS_USER_ID
from memory_service.security.principals import ERROR_DOMAIN as ERROR_DOMAIN
from memory_service.security.principals import EXECUTOR_ROLE_NAMES as EXECUTOR_ROLE_NAMES
from memory_service.security.principals import MEMORY_ROLE_NAMES as MEMORY_ROLE_NAMES
from memory_service.security.principals import REQUIRED_ROLE as REQUIRED_ROLE
from memory_service.security.principals import Action as Action
from memory_service.security.principals import Principal as Principal
from memory_service.security.principals import Role as Role
from memory_service.security.principals import RoleNames as RoleNames
from memory_service.security.principals import authorize as authorize
from memory_service.security.principals import (
    authorize_all_namespaces as authorize_all_namespaces,
)
from memory_service.security.principals import clip, error_info
from memory_service.security.principals import role_label as role_label
from memory_service.servicekit.errors import ServiceError

logger = logging.getLogger(__name__)

# RFC 6750 b64token: the only characters a bearer token may hold.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# A run this long in a parser message could be (part of) a token.
_TOKENISH = re.compile(r"[A-Za-z0-9\-._~+/=]{16,}")
_USER_ID = re.compile(r"[A-Za-z0-9._@:+\-]{1,128}")
# gRPC caps metadata at 8 KiB by default; anything near that is not a real token.
MAX_TOKEN_LENGTH = 4096


def well_formed_token(token: str) -> bool:
    """Whether the text could be a bearer token: RFC 6750 characters, not too long."""
    return len(token) <= MAX_TOKEN_LENGTH and bool(_B64TOKEN.fullmatch(token))


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
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, message, [error_info(reason)])


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
    if not well_formed_token(token):
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
    return repr(clip(_TOKENISH.sub("…", value)))


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
        caller = clip(principal.user_id)
        message = (
            f"user {caller!r} may not act on behalf of others: set `delegate: true` on its "
            f"tokens-file entry if it is a service that should, or drop the "
            f"{ON_BEHALF_OF_HEADER} header"
        )
        info = error_info("DELEGATION_NOT_GRANTED", user_id=caller)
        raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, message, [info])
    return Principal(
        user_id,
        principal.role,
        principal.namespaces,
        may_delegate=False,
        delegated_by=principal.user_id,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m memory_service.security.identity`: alias of `attune-memory-admin tokens`."""
    # Imported here: the admin CLI builds on this module, not the other way round.
    from memory_service.admin.legacy import identity_main

    return identity_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
