"""`attune search`, `analytics`, `recommend` and `status` against real processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from executor_service.dev.stack import ServiceProcess, executor_process, memory_process
from tests.support.cli_runs import invoke

pytestmark = pytest.mark.e2e

TEMPLATE = "python_package_publish"


@dataclass
class Pair:
    root: Path
    memory: ServiceProcess
    executor: ServiceProcess
    run_ids: list[str]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Both services as processes, with a few runs of two templates made through the CLI."""
    root = tmp_path_factory.mktemp("insights")
    with (
        (root / "memory.log").open("w") as memory_log,
        (root / "executor.log").open("w") as executor_log,
    ):
        memory = memory_process(root, log=memory_log).start()
        executor: ServiceProcess | None = None
        try:
            executor = executor_process(root, memory.address, log=executor_log).start()
            cli = CliRunner(env={"ATTUNE_EXECUTOR_ADDRESS": executor.address, "COLUMNS": "220"})
            run_ids = []
            for template, answers in (
                (TEMPLATE, ["package_name=zebrapkg", "test_coverage_required=85"]),
                (TEMPLATE, ["package_name=otterpkg", "test_coverage_required=60"]),
                ("code_review", ["pull_request_url=https://example.com/pr/1"]),
            ):
                args = ["run", template, "--json", "--seed", "7"]
                for answer in answers:
                    args += ["--answer", answer]
                result = invoke(cli, *args)
                assert result.exit_code == 0, result.output
                run_ids.append(str(json.loads(result.stdout)["run_id"]))
            yield Pair(root, memory, executor, run_ids)
        finally:
            if executor is not None:
                executor.kill()
            memory.kill()


@pytest.fixture
def cli(pair: Pair) -> CliRunner:
    return CliRunner(env={"ATTUNE_EXECUTOR_ADDRESS": pair.executor.address, "COLUMNS": "220"})


def test_search_shows_the_source_the_interpretation_and_the_hits(
    cli: CliRunner, pair: Pair
) -> None:
    result = invoke(cli, "search", "zebrapkg runs with test coverage > 80%", "--explain")
    assert result.exit_code == 0, result.output
    assert "source: memory" in result.output
    assert "form_responses.test_coverage_required > 80" in result.output
    assert "searched words: zebrapkg" in result.output
    assert "not searched (common words): runs with" in result.output
    assert pair.run_ids[0] in result.output
    assert pair.run_ids[1] not in result.output
    assert "score" in result.output


def test_search_from_files_and_with_a_filter(cli: CliRunner, pair: Pair) -> None:
    result = invoke(
        cli, "search", "--filter", f'template_id = "{TEMPLATE}"', "--mode", "files", "--limit", "5"
    )
    assert result.exit_code == 0, result.output
    assert "source: local_files" in result.output
    assert pair.run_ids[0] in result.output
    assert pair.run_ids[1] in result.output
    assert pair.run_ids[2] not in result.output


def test_search_needs_a_query_or_a_filter(cli: CliRunner) -> None:
    result = invoke(cli, "search")
    assert result.exit_code == 2
    assert "give a query" in result.output


def test_a_bad_filter_exits_2_naming_the_field(cli: CliRunner) -> None:
    result = invoke(cli, "search", "--filter", "no_such_field = 1")
    assert result.exit_code == 2, result.output
    assert "no_such_field" in result.output


def test_status_shows_memory_breaker_outbox_and_runs(cli: CliRunner, pair: Pair) -> None:
    result = invoke(cli, "status")
    assert result.exit_code == 0, result.output
    assert f"{pair.memory.address} (reachable)" in result.output
    assert "circuit breaker" in result.output
    assert "0 queued" in result.output
    assert "runs on disk" in result.output


def test_analytics_renders_totals_roles_and_trend(cli: CliRunner) -> None:
    result = invoke(cli, "analytics", TEMPLATE)
    assert result.exit_code == 0, result.output
    assert f"Analytics: {TEMPLATE}, 2 runs" in result.output
    assert "success rate:" in result.output
    assert "Roles" in result.output
    assert "test_runner" in result.output
    assert "Trend" in result.output


def test_analytics_of_an_empty_window_says_there_is_nothing(cli: CliRunner) -> None:
    result = invoke(cli, "analytics", "--until", "2000-01-01")
    assert result.exit_code == 0, result.output
    assert "0 runs" in result.output
    assert "nothing to learn from" in result.output


def test_recommend_says_when_the_data_is_too_thin(cli: CliRunner, pair: Pair) -> None:
    result = invoke(cli, "recommend", TEMPLATE, "--answer", "package_name=zebrapkg")
    assert result.exit_code == 0, result.output
    assert f"Recommendations: {TEMPLATE} (target success 90%)" in result.output
    assert "too little data" in result.output
    assert "(template's)" in result.output
    assert "Similar past runs" in result.output
    assert pair.run_ids[0] in result.output


def test_recommend_validates_answers_like_run(cli: CliRunner) -> None:
    result = invoke(cli, "recommend", TEMPLATE, "--answer", "test_coverage_required=lots")
    assert result.exit_code == 2, result.output
    assert "test_coverage_required" in result.output
