"""`attune`: the command line of the executor service, over gRPC.

Answers are typed here by the template's form; validity is the executor's to
judge, and every violation it reports is shown at once. See cli_client for
the exit codes.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

import typer
from google.protobuf import json_format
from rich.console import Console
from rich.markdown import Markdown
from rich.text import Text

from attune.common.v1 import common_pb2
from attune.executor.v1 import executor_pb2
from executor_service.cli.client import EXIT_INVALID, connect, reported_failures, use_tls
from executor_service.cli.insights import register_insights
from executor_service.cli.live import final_run, follow
from executor_service.cli.options import (
    DEFAULT_ADDRESS,
    Address,
    Answers,
    AnswersFile,
    Interactive,
    TemplateId,
    Timeout,
    TlsCa,
    TlsCert,
    TlsKey,
    TlsServerName,
    Token,
    resolve_cli_answers,
)
from executor_service.cli.reattach import reattaching, watched
from executor_service.cli.render import (
    make_console,
    print_plan,
    print_run_summary,
    print_template,
    runs_table,
    templates_table,
)
from executor_service.runs.report_md import render_report
from memory_service.servicekit.tls import TlsConfigError, client_tls_from_files

MAX_TEMPLATE_PAGES = 100  # A guard against a server that never stops paging.

app = typer.Typer(
    help=(
        "Plan, run and inspect Attune workflows on an executor.\n\n"
        "With --token (or the ATTUNE_TOKEN variable), every call carries "
        "'authorization: Bearer <token>', which authenticates you to the executor: a viewer "
        "reads templates, plans and runs, a runner also runs workflows."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
templates_app = typer.Typer(help="Browse the workflow templates.", no_args_is_help=True)
runs_app = typer.Typer(help="List and read past runs.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
app.add_typer(runs_app, name="runs")
register_insights(app)


@app.callback()
def transport(
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_server_name: TlsServerName = None,
) -> None:
    """Plaintext by default; any --tls-* option (or ATTUNE_TLS_* variable) connects over TLS."""
    if tls_ca is None and tls_cert is None and tls_key is None:
        use_tls(None)
        return
    try:
        tls = client_tls_from_files(
            tls_ca, tls_cert, tls_key, tls_server_name, ("--tls-ca", "--tls-cert", "--tls-key")
        )
    except TlsConfigError as error:
        make_console(stderr=True).print(f"invalid TLS option (nothing was sent): {error}")
        raise typer.Exit(EXIT_INVALID) from None
    use_tls(tls)


class Strategy(StrEnum):
    """--strategy: overrides every agent's tier strategy."""

    cheap_only = "cheap_only"
    progressive = "progressive"
    capable_first = "capable_first"
    premium_only = "premium_only"
    learned = "learned"


class RunnerChoice(StrEnum):
    """--runner: which runner executes the attempts."""

    simulated = "simulated"
    anthropic = "anthropic"
    openai = "openai"


StrategyOption = Annotated[
    Strategy | None,
    typer.Option("--strategy", case_sensitive=False, help="Override every agent's strategy."),
]


def _strategy(strategy: Strategy | None) -> common_pb2.TierStrategy.ValueType:
    if strategy is None:
        return common_pb2.TIER_STRATEGY_UNSPECIFIED
    return common_pb2.TierStrategy.Value("TIER_STRATEGY_" + strategy.value.upper())


def _runner(runner: RunnerChoice | None) -> common_pb2.Runner.ValueType:
    if runner is None:
        return common_pb2.RUNNER_UNSPECIFIED
    return common_pb2.Runner.Value("RUNNER_" + runner.value.upper())


@templates_app.command("list")
def templates_list(
    address: Address = DEFAULT_ADDRESS, token: Token = None, timeout: Timeout = 10.0
) -> None:
    """List the template catalog."""
    out, err = make_console(), make_console(stderr=True)
    templates: list[executor_pb2.Template] = []
    with reported_failures(address, err), connect(address, token) as stub:
        page_token = ""
        for _ in range(MAX_TEMPLATE_PAGES):
            page = stub.ListTemplates(
                executor_pb2.ListTemplatesRequest(page_token=page_token), timeout=timeout
            )
            templates += page.templates
            page_token = page.next_page_token
            if not page_token:
                break
    out.print(templates_table(templates))


@templates_app.command("show")
def templates_show(
    template_id: TemplateId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    timeout: Timeout = 10.0,
) -> None:
    """Show a template: its questions and its agent rules."""
    out, err = make_console(), make_console(stderr=True)
    with reported_failures(address, err), connect(address, token) as stub:
        request = executor_pb2.GetTemplateRequest(template_id=template_id)
        template = stub.GetTemplate(request, timeout=timeout).template
    print_template(out, template)


@app.command()
def plan(
    template_id: TemplateId,
    answer: Answers = None,
    answers_file: AnswersFile = None,
    interactive: Interactive = False,
    strategy: StrategyOption = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    timeout: Timeout = 10.0,
) -> None:
    """Plan a workflow: resolved answers, the team in order and the cost estimate."""
    out, err = make_console(), make_console(stderr=True)
    with reported_failures(address, err, "question"), connect(address, token) as stub:
        given = resolve_cli_answers(
            stub, template_id, answer, answers_file, interactive, timeout, out
        )
        request = executor_pb2.PlanWorkflowRequest(
            template_id=template_id, answers=given, tier_strategy=_strategy(strategy)
        )
        response = stub.PlanWorkflow(request, timeout=timeout)
    print_plan(out, response, given)


@app.command()
def run(
    template_id: TemplateId,
    answer: Answers = None,
    answers_file: AnswersFile = None,
    interactive: Interactive = False,
    runner: Annotated[
        RunnerChoice | None, typer.Option(help="The runner; default: the executor's.")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(min=0, max=2**64 - 1, metavar="N", help="Seed of the simulated runner."),
    ] = None,
    strategy: StrategyOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print only the finished run as JSON.")
    ] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    timeout: Timeout = 10.0,
    run_timeout: Annotated[
        float, typer.Option(min=1.0, help="Deadline of the whole run, in seconds.")
    ] = 1800.0,
) -> None:
    """Run a workflow, showing each agent's progress live, then the run's summary."""
    out, err = make_console(), make_console(stderr=True)
    # With --json stdout is for the JSON alone, so questions go to stderr.
    prompts = err if json_output else out
    # Leaving `connect` closes the channel, which cancels the stream and so the run.
    interrupted = "interrupted: the run is cancelled, and recorded as cancelled"
    with reported_failures(address, err, "question", interrupted), connect(address, token) as stub:
        given = resolve_cli_answers(
            stub, template_id, answer, answers_file, interactive, timeout, prompts
        )
        request = executor_pb2.RunWorkflowRequest(
            template_id=template_id,
            answers=given,
            runner=_runner(runner),
            tier_strategy=_strategy(strategy),
        )
        if seed is not None:
            request.seed = seed
        # A broken stream is re-attached to (WatchRun); the run goes on meanwhile.
        events = reattaching(
            stub, stub.RunWorkflow(request, timeout=run_timeout), run_timeout, _notice(err)
        )
        if json_output:
            finished = final_run(events)
            typer.echo(
                json_format.MessageToJson(
                    finished,
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                )
            )
            return
        finished = follow(events, out)
    print_run_summary(out, finished)


@runs_app.command("list")
def runs_list(
    filter_: Annotated[
        str,
        typer.Option(
            "--filter", help='e.g. template_id = "x" AND status = "SUCCEEDED"; default: all.'
        ),
    ] = "",
    page_size: Annotated[int, typer.Option(min=1, help="Runs per page.")] = 20,
    page_token: Annotated[str, typer.Option(help="The token a previous page printed.")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    timeout: Timeout = 10.0,
) -> None:
    """List runs, newest first."""
    out, err = make_console(), make_console(stderr=True)
    with reported_failures(address, err), connect(address, token) as stub:
        request = executor_pb2.ListRunsRequest(
            filter=filter_, page_size=page_size, page_token=page_token
        )
        response = stub.ListRuns(request, timeout=timeout)
    if response.runs:
        out.print(runs_table(response.runs))
    else:
        out.print("no runs match")
    if response.next_page_token:
        out.print(f"next page token: {response.next_page_token}", soft_wrap=True)


@runs_app.command("watch")
def runs_watch(
    run_id: Annotated[str, typer.Argument(help="The run id.")],
    after: Annotated[
        int, typer.Option("--after", min=0, metavar="N", help="Only events after sequence N.")
    ] = 0,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    run_timeout: Annotated[
        float, typer.Option(min=1.0, help="How long to follow the run, in seconds.")
    ] = 1800.0,
) -> None:
    """Follow a run, finished or in progress: its events so far, then live to its end."""
    out, err = make_console(), make_console(stderr=True)
    # Leaving stops the watching only: the run goes on.
    interrupted = "interrupted: stopped watching; the run goes on"
    with reported_failures(address, err, interrupted=interrupted), connect(address, token) as stub:
        events = watched(stub, run_id, after, run_timeout)
        events = reattaching(stub, events, run_timeout, _notice(err), run_id, after)
        finished = follow(events, out)
    print_run_summary(out, finished)


def _notice(console: Console) -> Callable[[str], None]:
    """Tells the user of a re-attachment, on stderr."""
    return lambda line: console.print(Text(line, style="yellow"), soft_wrap=True)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run id.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    timeout: Timeout = 10.0,
) -> None:
    """Show a run's report: answers, team, attempts and cost by tier."""
    out, err = make_console(), make_console(stderr=True)
    with reported_failures(address, err), connect(address, token) as stub:
        found = stub.GetRun(executor_pb2.GetRunRequest(run_id=run_id), timeout=timeout).run
    out.print(Markdown(render_report(found)))


if __name__ == "__main__":
    app()
