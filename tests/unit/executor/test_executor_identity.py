"""The executor's role names in tokens files, and how its authentication is configured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from executor_service.server import ConfigurationError, authenticator_for
from executor_service.settings import ExecutorSettings
from memory_service.security.identity import (
    EXECUTOR_ROLE_NAMES,
    MEMORY_ROLE_NAMES,
    Action,
    AuthConfigError,
    NoAuthentication,
    Principal,
    Role,
    RoleNames,
    TokenAuthenticator,
    TokenFileError,
    authorize,
    configured_authenticator,
    load_tokens_file,
    main,
)
from memory_service.servicekit.errors import ServiceError
from tests.support.helpers import write_tokens_file

# Made-up tokens for these tests only.
TOKENS = {"vera": "vera-token-0123456789abcdef", "rune": "rune-token-0123456789abcdef"}
TOKENS["ada"] = "ada-token-0123456789abcdefgh"
EXECUTOR_ROLES = {"vera": "viewer", "rune": "runner", "ada": "admin"}
MEMORY_ROLES = {"vera": "reader", "rune": "writer", "ada": "admin"}


def tokens_file(tmp_path: Path, roles: dict[str, str], name: str = "tokens.yaml") -> Path:
    users = {user: (role, ["default"]) for user, role in roles.items()}
    return write_tokens_file(tmp_path / name, users, TOKENS)


def role_error(path: Path, names: RoleNames) -> str:
    with pytest.raises(TokenFileError) as caught:
        load_tokens_file(path, names)
    return str(caught.value)


def test_an_executor_tokens_file_names_viewer_runner_and_admin(tmp_path: Path) -> None:
    entries = load_tokens_file(tokens_file(tmp_path, EXECUTOR_ROLES), EXECUTOR_ROLE_NAMES)
    assert {entry.user_id: entry.role for entry in entries} == {
        "vera": Role.READER,
        "rune": Role.WRITER,
        "ada": Role.ADMIN,
    }
    authenticator = TokenAuthenticator.from_file(
        tokens_file(tmp_path, {"rune": "Runner "}), EXECUTOR_ROLE_NAMES
    )
    principal = authenticator.authenticate([("authorization", f"Bearer {TOKENS['rune']}")])
    assert (principal.user_id, principal.role) == ("rune", Role.WRITER)


def test_memory_role_names_are_refused_in_an_executor_file(tmp_path: Path) -> None:
    message = role_error(tokens_file(tmp_path, MEMORY_ROLES), EXECUTOR_ROLE_NAMES)
    for index in (0, 1):  # reader and writer; admin is both services' name.
        assert f"entries[{index}].role: must be one of viewer, runner, admin" in message
    assert "entries[2]" not in message


def test_executor_role_names_are_refused_in_a_memory_file(tmp_path: Path) -> None:
    path = tokens_file(tmp_path, EXECUTOR_ROLES)
    for message in (role_error(path, MEMORY_ROLE_NAMES), str(_memory_default_error(path))):
        assert "entries[0].role: must be one of reader, writer, admin" in message
        assert "entries[1].role: must be one of reader, writer, admin" in message


def _memory_default_error(path: Path) -> TokenFileError:
    # Without role names, a tokens file is the memory service's.
    with pytest.raises(TokenFileError) as caught:
        TokenAuthenticator.from_file(path)
    return caught.value


@pytest.mark.parametrize(
    ("held", "needed", "action"),
    [("viewer", "runner", Action.WRITE), ("runner", "admin", Action.ADMIN)],
)
def test_denials_name_the_executors_roles(held: str, needed: str, action: Action) -> None:
    principal = Principal("vera", EXECUTOR_ROLE_NAMES[held], frozenset({"default"}))
    with pytest.raises(ServiceError) as caught:
        authorize(principal, "default", action, EXECUTOR_ROLE_NAMES)
    assert f"role {held} is below the {needed} role it needs" in caught.value.message
    assert not {"reader", "writer"} & set(caught.value.message.split())


def test_check_validates_an_executor_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    executor_file = tokens_file(tmp_path, EXECUTOR_ROLES, "executor.yaml")
    memory_file = tokens_file(tmp_path, MEMORY_ROLES, "memory.yaml")
    assert main(["check", "--service", "executor", str(executor_file)]) == 0
    assert "3 tokens for 3 users" in capsys.readouterr().out
    assert main(["check", "--service", "executor", str(memory_file)]) == 1
    assert "must be one of viewer, runner, admin" in capsys.readouterr().err
    # The memory service's names stay the default.
    assert main(["check", str(memory_file)]) == 0
    capsys.readouterr()
    assert main(["check", str(executor_file)]) == 1
    assert "must be one of reader, writer, admin" in capsys.readouterr().err


def check_as_a_module(service: str, path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "memory_service.security.identity", "check"]
    return subprocess.run(
        [*command, "--service", service, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_check_for_the_executor_runs_as_a_module(tmp_path: Path) -> None:
    path = tokens_file(tmp_path, EXECUTOR_ROLES)
    done = check_as_a_module("executor", path)
    assert (done.returncode, done.stdout.strip()) == (0, f"{path}: 3 tokens for 3 users")
    wrong = check_as_a_module("memory", path)
    assert wrong.returncode == 1
    assert "must be one of reader, writer, admin" in wrong.stderr


# --- configuration ------------------------------------------------------------------


def executor_settings(tmp_path: Path, **values: Any) -> ExecutorSettings:
    return ExecutorSettings(data_dir=tmp_path / "executor", **values)


@pytest.fixture(autouse=True)
def _no_auth_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes configures authentication."""
    for name in ("EXECUTOR_TOKENS_FILE", "EXECUTOR_AUTH_DISABLED"):
        monkeypatch.delenv(name, raising=False)


def test_neither_setting_is_an_error_naming_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        authenticator_for(executor_settings(tmp_path))
    message = str(caught.value)
    assert "set EXECUTOR_TOKENS_FILE" in message
    assert "EXECUTOR_AUTH_DISABLED=true" in message
    assert "MEMORY_" not in message


def test_both_settings_are_an_error_naming_both(tmp_path: Path) -> None:
    path = tokens_file(tmp_path, EXECUTOR_ROLES)
    with pytest.raises(ConfigurationError) as caught:
        authenticator_for(executor_settings(tmp_path, tokens_file=path, auth_disabled=True))
    assert str(caught.value) == (
        "EXECUTOR_TOKENS_FILE and EXECUTOR_AUTH_DISABLED are both set: choose one"
    )


def test_an_invalid_tokens_file_is_an_error_naming_the_file_and_the_roles(
    tmp_path: Path,
) -> None:
    path = tokens_file(tmp_path, MEMORY_ROLES)
    with pytest.raises(ConfigurationError) as caught:
        authenticator_for(executor_settings(tmp_path, tokens_file=path))
    assert str(path) in str(caught.value)
    assert "must be one of viewer, runner, admin" in str(caught.value)
    missing = tmp_path / "absent.yaml"
    with pytest.raises(AuthConfigError) as absent:
        configured_authenticator(missing, False, "EXECUTOR_", EXECUTOR_ROLE_NAMES)
    assert str(missing) in str(absent.value)


def test_the_executor_authenticates_by_its_file_or_not_at_all(tmp_path: Path) -> None:
    path = tokens_file(tmp_path, EXECUTOR_ROLES)
    by_file = authenticator_for(executor_settings(tmp_path, tokens_file=path))
    assert isinstance(by_file, TokenAuthenticator)
    assert len(by_file) == 3
    off = authenticator_for(executor_settings(tmp_path, auth_disabled=True))
    assert isinstance(off, NoAuthentication)
