"""The `attune` CLI invoked in-process, as the e2e tests drive it."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from executor_service.cli.app import app


def invoke(cli: CliRunner, *args: str, stdin: str | None = None) -> Result:
    """Runs `attune ARGS`; a failure must be reported, never raised as a traceback."""
    result = cli.invoke(app, list(args), input=stdin)
    # SystemExit is how typer exits, with any code.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result
