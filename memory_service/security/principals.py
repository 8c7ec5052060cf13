"""Who a caller is once authenticated, and what they may do (authorization).

A principal is a user id, a role and the namespaces it is granted; authorize()
is the one check every call passes. identity.py turns credentials into
principals; this module needs no credentials at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import ClassVar, NoReturn

import grpc
from google.rpc import error_details_pb2

from memory_service.servicekit.errors import ServiceError

ALL_NAMESPACES = "*"
ANONYMOUS_USER_ID = "anonymous"
ERROR_DOMAIN = "memory.attune"
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


def clip(text: str) -> str:
    """A caller's value fit for a message: at most _MAX_SHOWN characters."""
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def error_info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo detail of this service's errors."""
    return error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)


def _denied(
    principal: Principal, namespace: str, action: Action, why: str, reason: str
) -> NoReturn:
    shown = repr(clip(namespace)) if namespace else "'' (empty)"
    message = f"user {clip(principal.user_id)!r} may not {action.value} in namespace {shown}: {why}"
    info = error_info(
        reason, user_id=clip(principal.user_id), namespace=clip(namespace), action=action.value
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
    user = clip(principal.user_id)
    if principal.role < needed:
        why = f"role {principal.role.label} is below the {needed.label} role it needs"
    elif not principal.all_namespaces:
        why = "it needs the '*' grant (all namespaces)"
    else:
        return
    message = f"user {user!r} may not {action.value} across all namespaces: {why}"
    info = error_info("NAMESPACE_NOT_GRANTED", user_id=user, namespace="*", action=action.value)
    raise ServiceError(grpc.StatusCode.PERMISSION_DENIED, message, [info])
