"""What the `attune` CLI tells its user the token is for."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from executor_service.cli.app import app


@pytest.mark.parametrize("command", [[], ["run"], ["templates", "list"], ["search"]])
def test_the_token_authenticates_the_caller_to_the_executor(command: list[str]) -> None:
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    # Help is wrapped into boxes: read it as one line.
    text = " ".join(result.output.replace("│", " ").split())
    assert "authenticates you to the executor" in text
    assert "on to the memory service" not in text, "the token is not the memory service's"
