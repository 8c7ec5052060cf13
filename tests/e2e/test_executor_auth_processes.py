"""The executor's caller authentication as processes: its start, and the `attune` CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from executor_service.cli.app import app
from executor_service.dev.stack import ServiceProcess, executor_process
from tests.support.helpers import Users, write_tokens_file
from tests.support.process_pair import process_pair

pytestmark = pytest.mark.e2e

TEMPLATE = "python_package_publish"
# Made-up tokens for these tests only; the tokens file holds their hashes.
TOKENS = {
    "rune": "rune-runner-token-0123456789abcdef",
    "vera": "vera-viewer-token-0123456789abcdef",
    "vic": "vic-viewer-token-0123456789abcdefgh",
}
USERS: Users = {
    "rune": ("runner", ["default"]),
    "vera": ("viewer", ["default"]),
    "vic": ("viewer", ["default"]),
}
BURST = 2  # Refused calls a caller may make before RESOURCE_EXHAUSTED.


def write_tokens(root: Path) -> Path:
    return write_tokens_file(root / "executor-tokens.yaml", USERS, TOKENS)


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in this process's environment says how the executor authenticates."""
    for name in ("EXECUTOR_TOKENS_FILE", "EXECUTOR_AUTH_DISABLED"):
        monkeypatch.delenv(name, raising=False)


def refused_start(root: Path, **settings: Any) -> str:
    """The log of an executor that refused to start (with a non-zero code), given
    these settings (without their EXECUTOR_ prefix)."""
    log_path = root / "executor.log"
    with log_path.open("w") as log:
        # No memory service is needed: the executor must refuse before reaching it.
        executor = executor_process(root, "127.0.0.1:1", log=log, auth_disabled=False, **settings)
        try:
            with pytest.raises(RuntimeError, match="exited with code 2"):
                executor.start()
        finally:
            executor.kill()
    return log_path.read_text()


@pytest.mark.usefixtures("unconfigured")
def test_the_executor_refuses_to_start_without_authentication_settings(tmp_path: Path) -> None:
    log = refused_start(tmp_path)
    assert "authentication is not configured" in log
    assert "EXECUTOR_TOKENS_FILE" in log
    assert "EXECUTOR_AUTH_DISABLED" in log
    assert "Traceback" not in log


@pytest.mark.usefixtures("unconfigured")
def test_the_executor_refuses_to_start_with_both_settings(tmp_path: Path) -> None:
    log = refused_start(tmp_path, TOKENS_FILE=str(write_tokens(tmp_path)), AUTH_DISABLED="true")
    assert "EXECUTOR_TOKENS_FILE and EXECUTOR_AUTH_DISABLED are both set" in log


@pytest.mark.usefixtures("unconfigured")
def test_the_executor_refuses_a_memory_tokens_file(tmp_path: Path) -> None:
    users: Users = {"rune": ("writer", ["default"])}  # The memory service's name.
    path = write_tokens_file(tmp_path / "memory-tokens.yaml", users, TOKENS)
    log = refused_start(tmp_path, TOKENS_FILE=str(path))
    assert "must be one of viewer, runner, admin" in log


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A memory service (authentication off) and an executor reading a tokens file."""
    root = tmp_path_factory.mktemp("executor-auth")
    with process_pair(
        root,
        auth_disabled=False,
        TOKENS_FILE=str(write_tokens(root)),
        DENIED_CALLS_BURST=str(BURST),
        DENIED_CALLS_PER_SECOND="0.001",
    ) as running:
        yield running


def attune(executor: ServiceProcess, user: str | None, *args: str) -> Result:
    env = {"ATTUNE_EXECUTOR_ADDRESS": executor.address, "COLUMNS": "200"}
    if user is not None:
        env["ATTUNE_TOKEN"] = TOKENS[user]
    result = CliRunner(env=env).invoke(app, list(args))
    # Failures are reported, never raised: SystemExit is how typer exits.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    if user is not None:
        assert TOKENS[user] not in result.output
    return result


def run_demo(executor: ServiceProcess, user: str | None) -> Result:
    return attune(executor, user, "run", TEMPLATE, "--answer", "package_name=demo", "--json")


def test_a_runner_runs_a_workflow_as_itself(executor: ServiceProcess) -> None:
    result = run_demo(executor, "rune")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["owner"] == "rune"
    assert run["status"] in {"RUN_STATUS_SUCCEEDED", "RUN_STATUS_FAILED"}


def test_a_viewer_is_refused_a_run_in_one_clear_line(executor: ServiceProcess) -> None:
    result = run_demo(executor, "vera")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("PERMISSION_DENIED: user 'vera' may not write")
    assert "role viewer is below the runner role it needs" in lines[0]
    # What a viewer may do still works.
    listed = attune(executor, "vera", "templates", "list")
    assert listed.exit_code == 0, listed.output
    assert TEMPLATE in listed.stdout


def test_a_call_without_a_token_is_told_how_to_send_one(executor: ServiceProcess) -> None:
    result = attune(executor, None, "templates", "list")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("UNAUTHENTICATED: missing credentials")
    assert "--token" in lines[1]
    assert "ATTUNE_TOKEN" in lines[1]


def test_refusals_past_the_budget_are_reported_in_one_line(executor: ServiceProcess) -> None:
    for _ in range(BURST):
        assert "PERMISSION_DENIED" in run_demo(executor, "vic").stderr
    result = run_demo(executor, "vic")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("RESOURCE_EXHAUSTED: too many unauthenticated or denied calls")
