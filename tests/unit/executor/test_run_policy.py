"""Which runners and tier strategies a role may ask for (issue 11): settings and checks."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from pydantic import ValidationError

from attune.common.v1 import common_pb2
from executor_service.runs.policy import STRATEGY_CHOICES, RunPolicy
from executor_service.settings import ExecutorSettings
from memory_service.security.identity import Principal, Role
from memory_service.servicekit.errors import ServiceError

RUNNER = Principal("rita", Role.WRITER, frozenset({"default"}))
ADMIN = Principal("ada", Role.ADMIN, frozenset({"*"}))
VIEWER = Principal("vic", Role.READER, frozenset({"default"}))
UNSPECIFIED = common_pb2.TIER_STRATEGY_UNSPECIFIED


def policy(**settings: object) -> RunPolicy:
    loaded = ExecutorSettings(**settings)  # type: ignore[arg-type]
    return RunPolicy(loaded.allowed_runners, loaded.allowed_tier_strategies, loaded.runner)


def denial(error: ServiceError) -> error_details_pb2.ErrorInfo:
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    [info] = [d for d in error.details if isinstance(d, error_details_pb2.ErrorInfo)]
    assert info.domain == "executor.attune"
    return info


def test_the_strategy_names_are_the_protos() -> None:
    assert STRATEGY_CHOICES == (
        "cheap_only",
        "progressive",
        "capable_first",
        "premium_only",
        "learned",
    )


def test_by_default_a_runner_may_simulate_and_pick_any_strategy_but_premium_only() -> None:
    rules = policy()
    for strategy in common_pb2.TierStrategy.values():
        if strategy != common_pb2.TIER_STRATEGY_PREMIUM_ONLY:
            rules.check(RUNNER, "simulated", True, strategy)
    with pytest.raises(ServiceError) as caught:
        rules.check(RUNNER, "simulated", True, common_pb2.TIER_STRATEGY_PREMIUM_ONLY)
    info = denial(caught.value)
    assert info.reason == "TIER_STRATEGY_NOT_ALLOWED"
    assert dict(info.metadata) == {"role": "runner", "strategy": "premium_only"}
    assert "cheap_only, progressive, capable_first, learned" in caught.value.message
    assert "EXECUTOR_ALLOWED_TIER_STRATEGIES" in caught.value.message


@pytest.mark.parametrize("runner", ["anthropic", "openai"])
def test_by_default_a_runner_may_not_use_a_paid_runner(runner: str) -> None:
    with pytest.raises(ServiceError) as caught:
        policy().check(RUNNER, runner, True, UNSPECIFIED)
    info = denial(caught.value)
    assert info.reason == "RUNNER_NOT_ALLOWED"
    assert dict(info.metadata) == {"role": "runner", "runner": runner}
    assert "allowed: simulated (EXECUTOR_ALLOWED_RUNNERS)" in caught.value.message
    assert "default" not in caught.value.message  # The request named it.


def test_the_default_runner_must_be_allowed_and_the_message_says_it_was_the_default() -> None:
    with pytest.raises(ServiceError) as caught:
        policy(runner="auto").check(RUNNER, "anthropic", False, UNSPECIFIED)
    assert "the executor's default, EXECUTOR_RUNNER=auto" in caught.value.message
    assert denial(caught.value).metadata["runner"] == "anthropic"
    policy(runner="simulated").check(RUNNER, "simulated", False, UNSPECIFIED)


def test_an_admin_may_do_anything_by_default_and_a_viewer_nothing() -> None:
    for runner in ("simulated", "anthropic", "openai"):
        for strategy in common_pb2.TierStrategy.values():
            policy().check(ADMIN, runner, True, strategy)
    with pytest.raises(ServiceError) as caught:
        policy().check(VIEWER, "simulated", True, UNSPECIFIED)
    assert "allowed: none" in caught.value.message


def test_with_authentication_off_the_anonymous_admin_may_do_anything() -> None:
    policy().check(Principal.ANONYMOUS, "openai", True, common_pb2.TIER_STRATEGY_PREMIUM_ONLY)


def test_no_strategy_keeps_the_templates_and_is_always_allowed() -> None:
    rules = policy(allowed_tier_strategies={"runner": [], "admin": []})
    rules.check(RUNNER, "simulated", True, UNSPECIFIED)
    rules.check(ADMIN, "simulated", True, UNSPECIFIED)


def test_roles_not_named_keep_their_default_and_star_allows_all() -> None:
    rules = policy(allowed_runners={"runner": ["simulated", "openai"]})
    rules.check(RUNNER, "openai", True, UNSPECIFIED)
    rules.check(ADMIN, "anthropic", True, UNSPECIFIED)  # admin kept "*"
    with pytest.raises(ServiceError):
        rules.check(RUNNER, "anthropic", True, UNSPECIFIED)
    policy(allowed_tier_strategies={"runner": ["*"]}).check(
        RUNNER, "simulated", True, common_pb2.TIER_STRATEGY_PREMIUM_ONLY
    )


def test_an_admin_can_be_restricted_too() -> None:
    with pytest.raises(ServiceError) as caught:
        policy(allowed_runners={"admin": ["simulated"]}).check(ADMIN, "openai", True, UNSPECIFIED)
    assert denial(caught.value).metadata["role"] == "admin"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"allowed_runners": {"writer": ["simulated"]}}, "EXECUTOR_ALLOWED_RUNNERS: unknown role"),
        ({"allowed_runners": {"runner": ["auto"]}}, "EXECUTOR_ALLOWED_RUNNERS: role 'runner'"),
        ({"allowed_runners": {"admin": ["gpt"]}}, "unknown 'gpt'; known: simulated, anthropic"),
        (
            {"allowed_tier_strategies": {"runner": ["premium"]}},
            "EXECUTOR_ALLOWED_TIER_STRATEGIES: role 'runner': unknown 'premium'",
        ),
        (
            {"allowed_tier_strategies": {"Runner": ["progressive"]}},
            "EXECUTOR_ALLOWED_TIER_STRATEGIES: unknown role 'Runner'",
        ),
    ],
)
def test_unknown_roles_and_names_stop_the_start_naming_the_setting(
    settings: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        ExecutorSettings(**settings)  # type: ignore[arg-type]
    assert problem in str(caught.value)


def test_the_settings_are_read_as_json_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXECUTOR_ALLOWED_RUNNERS", '{"runner": ["simulated", "anthropic"]}')
    monkeypatch.setenv("EXECUTOR_ALLOWED_TIER_STRATEGIES", '{"runner": ["progressive"]}')
    loaded = ExecutorSettings()
    assert loaded.allowed_runners == {
        "viewer": [],
        "runner": ["simulated", "anthropic"],
        "admin": ["*"],
    }
    assert loaded.allowed_tier_strategies["runner"] == ["progressive"]
    monkeypatch.setenv("EXECUTOR_ALLOWED_RUNNERS", '{"runner": ["paid"]}')
    with pytest.raises(ValidationError, match="EXECUTOR_ALLOWED_RUNNERS"):
        ExecutorSettings()
