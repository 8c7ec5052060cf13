"""Which runners and tier strategies each role may ask `RunWorkflow` for.

A request's runner and tier strategy are wishes, not permissions: a paid
runner or `premium_only` spends money, so the settings grant them per role
(`EXECUTOR_ALLOWED_RUNNERS`, `EXECUTOR_ALLOWED_TIER_STRATEGIES`), and
anything else is PERMISSION_DENIED before the run is admitted or written.

How an unset field counts:

- No runner: the run uses the executor's default (`EXECUTOR_RUNNER`,
  resolved, so `auto` with an API key is that provider), and that resolved
  runner must be allowed; a deployment whose default is paid lists it for
  the roles that may run with it.
- No tier strategy: each agent keeps its template's own strategy. That is
  always allowed: templates are the operator's (`EXECUTOR_TEMPLATES_DIR`).

`PlanWorkflow` runs nothing and spends nothing, so it may name any strategy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2

from attune.common.v1 import common_pb2
from executor_service.convert.enums import strategy_name
from executor_service.rpc.gate import ERROR_DOMAIN
from memory_service.security.identity import EXECUTOR_ROLE_NAMES, Principal, role_label
from memory_service.servicekit.errors import ServiceError

ANY = "*"
RUNNER_CHOICES = ("simulated", "anthropic", "openai")
STRATEGY_CHOICES = tuple(
    common_pb2.TierStrategy.Name(value).removeprefix("TIER_STRATEGY_").lower()
    for value in common_pb2.TierStrategy.values()
    if value != common_pb2.TIER_STRATEGY_UNSPECIFIED
)
DEFAULT_RUNNERS: dict[str, list[str]] = {"viewer": [], "runner": ["simulated"], "admin": [ANY]}
DEFAULT_STRATEGIES: dict[str, list[str]] = {
    "viewer": [],
    "runner": [name for name in STRATEGY_CHOICES if name != "premium_only"],
    "admin": [ANY],
}


def checked_allowances(
    value: Mapping[str, Sequence[str]], choices: Sequence[str], defaults: Mapping[str, list[str]]
) -> dict[str, list[str]]:
    """Role -> allowed names, checked; roles not named keep their default.
    ValueError names the first unknown role or name."""
    for role, names in value.items():
        if role not in EXECUTOR_ROLE_NAMES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(EXECUTOR_ROLE_NAMES)}")
        if unknown := [name for name in names if name != ANY and name not in choices]:
            raise ValueError(
                f"role {role!r}: unknown {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(choices)}, or {ANY!r} for all"
            )
    return {**defaults, **{role: list(names) for role, names in value.items()}}


@dataclass(frozen=True)
class RunPolicy:
    """The runners and tier strategies each role may ask for."""

    runners: Mapping[str, Sequence[str]]
    strategies: Mapping[str, Sequence[str]]
    default_runner: str  # EXECUTOR_RUNNER as configured, for messages.

    def check(
        self,
        principal: Principal,
        runner: str,
        named: bool,
        strategy: common_pb2.TierStrategy.ValueType,
    ) -> None:
        """PERMISSION_DENIED unless the principal's role may use `runner` (the
        resolved one; `named`: the request named it) and the strategy."""
        role = role_label(principal.role, EXECUTOR_ROLE_NAMES)
        allowed = self.runners.get(role, [])
        if ANY not in allowed and runner not in allowed:
            how = (
                ""
                if named
                else f" (the executor's default, EXECUTOR_RUNNER={self.default_runner}, as the "
                "request named no runner; an operator lists it in EXECUTOR_ALLOWED_RUNNERS "
                "for the role, or name an allowed runner)"
            )
            raise _denied(
                f"role {role!r} may not use runner {runner!r}{how}; allowed: "
                f"{_shown(allowed)} (EXECUTOR_ALLOWED_RUNNERS)",
                "RUNNER_NOT_ALLOWED",
                role=role,
                runner=runner,
            )
        if strategy == common_pb2.TIER_STRATEGY_UNSPECIFIED:
            return  # The template's own strategies: the operator's choice.
        name = strategy_name(strategy)
        allowed = self.strategies.get(role, [])
        if ANY not in allowed and name not in allowed:
            raise _denied(
                f"role {role!r} may not use tier strategy {name!r}; allowed: "
                f"{_shown(allowed)}, or none to keep the template's "
                "(EXECUTOR_ALLOWED_TIER_STRATEGIES)",
                "TIER_STRATEGY_NOT_ALLOWED",
                role=role,
                strategy=name,
            )


def _shown(allowed: Sequence[str]) -> str:
    return ", ".join(allowed) if allowed else "none"


def _denied(message: str, reason: str, **metadata: str) -> ServiceError:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    return ServiceError(grpc.StatusCode.PERMISSION_DENIED, message, [info])
