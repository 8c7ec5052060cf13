"""The `attune` CLI against a real memory service and executor, as processes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from executor_service.cli.app import app
from executor_service.dev.stack import ServiceProcess
from tests.support.cli_runs import invoke
from tests.support.process_pair import process_pair

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = "python_package_publish"
RUN_ID = re.compile(r"\b\d{8}-\d{6}-[0-9a-z]{26}\b")


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A memory service and an executor on free ports; the executor is yielded."""
    with process_pair(tmp_path_factory.mktemp("cli")) as running:
        yield running


@pytest.fixture
def cli(executor: ServiceProcess) -> CliRunner:
    """A runner whose environment points the CLI at the executor."""
    return CliRunner(env={"ATTUNE_EXECUTOR_ADDRESS": executor.address, "COLUMNS": "200"})


def run_json(cli: CliRunner, *args: str) -> dict[str, object]:
    result = invoke(cli, "run", TEMPLATE, "--json", *args)
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_templates_list_shows_the_catalog(cli: CliRunner) -> None:
    result = invoke(cli, "templates", "list")
    assert result.exit_code == 0, result.output
    assert TEMPLATE in result.stdout
    assert "Publish a Python package" in result.stdout
    assert "$0.0100 - $0.6000" in result.stdout


def test_templates_show_lists_questions_and_rules(cli: CliRunner) -> None:
    result = invoke(cli, "templates", "show", TEMPLATE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Checks, versions, builds and publishes" in out
    for expected in ["test_coverage_required", "number", "0..100", "multi_select", "testpypi"]:
        assert expected in out
    assert "The distribution name as published" in out  # Help text.
    assert "quality_checks in {bandit, dependency_audit}" in out
    assert re.search(r"changelog_updater\s*│\s*progressive\s*│\s*version_manager", out)


def test_plan_prints_answers_team_in_order_and_cost(cli: CliRunner) -> None:
    result = invoke(
        cli,
        "plan",
        TEMPLATE,
        "--answer",
        "package_name=demo",
        "--answer",
        "quality_checks=mypy",
        "--strategy",
        "cheap_only",
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"package_name\s*│\s*demo\s*│\s*given", out)
    assert re.search(r"publish_target\s*│\s*testpypi\s*│\s*default", out)
    roles = re.findall(r"│\s*(\d)\s*│\s*(\w+)\s*│\s*cheap_only\s*│\s*cheap\s*│", out)
    assert [role for _, role in roles] == [
        "test_runner",
        "type_checker",
        "version_manager",
        "package_builder",
        "changelog_updater",
        "publisher",
    ]
    assert roles[-1][0] == "1"  # publisher waits for package_builder.
    assert "Estimated cost: $" in out


def test_answers_file_is_typed_and_answer_flags_override_it(cli: CliRunner, tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text(
        "package_name: from-file\nquality_checks: [ruff, bandit]\ntest_coverage_required: 90\n"
    )
    result = invoke(
        cli, "plan", TEMPLATE, "--answers-file", str(answers), "--answer", "package_name=flag"
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"package_name\s*│\s*flag\s", result.stdout)
    assert re.search(r"test_coverage_required\s*│\s*90\s", result.stdout)
    assert "security_auditor" in result.stdout  # Chosen by bandit.


def test_run_shows_live_progress_and_a_simulated_summary(cli: CliRunner) -> None:
    result = invoke(cli, "run", TEMPLATE, "--answer", "package_name=demo")
    assert result.exit_code == 0, result.output
    out = result.stdout
    run_ids = set(RUN_ID.findall(out))
    assert len(run_ids) == 1
    run_id = run_ids.pop()
    assert f"run {run_id} started (runner=simulated, seed" in out
    assert re.search(r"test_runner: attempt 1 at cheap, \$\d", out)
    assert re.search(r"stage\s*┃\s*agent\s*┃\s*status", out)  # The per-agent table.
    assert re.search(r"package_builder\s*│\s*(succeeded|failed)", out)
    assert re.search(rf"run {run_id}  status=(succeeded|failed)  runner=simulated", out)
    assert "results are simulated" in out
    assert "total cost: $" in out
    assert re.search(rf"run dir: /\S+/{run_id}\n", out)
    assert re.search(r"pattern: (stored in the memory service|queued in the outbox)", out)


def test_run_json_prints_only_the_run_and_runs_show_reports_it(cli: CliRunner) -> None:
    run = run_json(cli, "--answer", "package_name=demo", "--seed", "7")
    assert run["runner"] == "RUNNER_SIMULATED"
    assert run["seed"] == "7"  # uint64 is a string in proto JSON.
    assert run["pattern_delivery"] in {"PATTERN_DELIVERY_STORED", "PATTERN_DELIVERY_QUEUED"}
    run_id = str(run["run_id"])
    assert RUN_ID.fullmatch(run_id)

    result = invoke(cli, "runs", "show", run_id)
    assert result.exit_code == 0, result.output
    assert f"Run {run_id}" in result.stdout
    assert "simulated results, not model output; seed 7" in result.stdout
    assert "Cost by tier" in result.stdout
    assert "package_builder" in result.stdout


def test_invalid_answers_print_every_violation_and_exit_2(cli: CliRunner) -> None:
    result = invoke(
        cli,
        "run",
        TEMPLATE,
        "--answer",
        "test_coverage_required=150",
        "--answer",
        "quality_checks=mypy,pylint",
    )
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert "INVALID_ARGUMENT" in err
    assert re.search(r"package_name\s*│\s*required", err)
    assert re.search(r"test_coverage_required\s*│\s*150 is above the maximum 100", err)
    assert re.search(r"quality_checks\s*│.*pylint", err)
    assert "┃ agent" not in result.output  # No progress table for a rejected run.


def test_a_local_type_error_names_the_question_before_anything_is_sent(cli: CliRunner) -> None:
    result = invoke(
        cli, "plan", TEMPLATE, "--answer", "has_tests=maybe", "--answer", "package_name=x"
    )
    assert result.exit_code == 2, result.output
    assert "nothing was sent" in result.stderr
    assert re.search(r"has_tests\s*│.*'maybe'", result.stderr)
    assert "INVALID_ARGUMENT" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("run", "no_such_template", "--answer", "package_name=x"),
        ("templates", "show", "no_such_template"),
        ("runs", "show", "20990101-000000-00000000000000000000000000"),
    ],
)
def test_unknown_ids_exit_1_with_not_found(cli: CliRunner, args: tuple[str, ...]) -> None:
    result = invoke(cli, *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("NOT_FOUND: ")


def test_interactive_asks_re_asks_and_skips_given_answers(cli: CliRunner) -> None:
    replies = [
        "",  # package_name is required: asked again.
        "demo",
        "maybe",  # has_tests: not a boolean.
        "yes",
        "150",  # test_coverage_required: above the maximum.
        "90",
        "mypy,pylint",  # quality_checks: pylint is not offered.
        "mypy",
        "",  # publish_target: the default.
        "",  # create_git_tag: the default.
        "no",  # update_changelog.
    ]
    result = invoke(
        cli,
        "run",
        TEMPLATE,
        "--interactive",
        "--json",
        "--seed",
        "3",
        "--answer",
        "version_bump=minor",
        stdin="\n".join(replies) + "\n",
    )
    assert result.exit_code == 0, result.output
    prompts = result.stderr  # With --json, stdout holds the JSON alone.
    assert "[1/7] What is the package called?" in prompts
    assert "options: mypy, ruff, bandit, dependency_audit, docs_build" in prompts
    assert "range 0..100" in prompts
    assert "version_bump" not in prompts
    assert prompts.count("invalid:") == 4
    assert "150 is above the maximum 100" in prompts
    answers = json.loads(result.stdout)["answers"]
    assert answers["package_name"] == {"string_value": "demo"}
    assert answers["has_tests"] == {"bool_value": True}
    assert answers["test_coverage_required"] == {"number_value": 90.0}
    assert answers["quality_checks"] == {"string_list_value": {"values": ["mypy"]}}
    assert answers["version_bump"] == {"string_value": "minor"}
    assert answers["publish_target"] == {"string_value": "testpypi"}
    assert answers["update_changelog"] == {"bool_value": False}


def test_runs_list_pages_newest_first(cli: CliRunner) -> None:
    older = run_json(cli, "--answer", "package_name=older")["run_id"]
    newer = run_json(cli, "--answer", "package_name=newer")["run_id"]
    first = invoke(cli, "runs", "list", "--page-size", "1")
    assert first.exit_code == 0, first.output
    assert RUN_ID.findall(first.stdout) == [newer]
    assert TEMPLATE in first.stdout
    token = re.search(r"next page token: (\S+)", first.stdout)
    assert token, first.stdout

    second = invoke(cli, "runs", "list", "--page-size", "1", "--page-token", token.group(1))
    assert second.exit_code == 0, second.output
    assert RUN_ID.findall(second.stdout) == [older]

    filtered = invoke(cli, "runs", "list", "--filter", 'template_id = "code_review"')
    assert filtered.exit_code == 0, filtered.output
    assert "no runs match" in filtered.stdout


def test_unreachable_executor_exits_1_with_the_address() -> None:
    # A bound port that does not listen refuses connections, and no one else can take it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        runner = CliRunner()
        for args in (["templates", "list", "--address", address], ["runs", "show", "x"]):
            env = {"ATTUNE_EXECUTOR_ADDRESS": address}
            result = runner.invoke(app, args, env=env)
            assert result.exit_code == 1, result.output
            assert f"the executor is unreachable at {address}" in result.stderr
            assert "Traceback" not in result.output


def test_a_silent_executor_hits_the_deadline_and_exits_1() -> None:
    # It listens but never answers, so only the --timeout deadline ends the call.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        args = ["templates", "list", "--address", address, "--timeout", "0.2"]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("DEADLINE_EXCEEDED: ")
    assert address in result.stderr


def test_the_module_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "executor_service.cli.app", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in ("templates", "plan", "run", "runs"):
        assert command in result.stdout
