"""`attune search`, `analytics`, `recommend` and `status`: what the executor has learned."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer

from attune.executor.v1 import executor_pb2
from executor_service.cli.client import connect, reported_failures
from executor_service.cli.options import (
    DEFAULT_ADDRESS,
    Address,
    Answers,
    AnswersFile,
    ExecutorMetrics,
    Interactive,
    MemoryMetrics,
    Timeout,
    Token,
    resolve_cli_answers,
)
from executor_service.cli.pair_health import show_pair_health
from executor_service.cli.render import make_console
from executor_service.cli.render_insights import (
    print_analytics,
    print_recommendations,
    print_search,
    print_status,
)


class SearchMode(StrEnum):
    """--mode: where SearchRuns looks."""

    auto = "auto"
    memory = "memory"
    files = "files"
    hybrid = "hybrid"


MODES = {
    SearchMode.auto: executor_pb2.SEARCH_RUNS_MODE_AUTO,
    SearchMode.memory: executor_pb2.SEARCH_RUNS_MODE_MEMORY,
    SearchMode.files: executor_pb2.SEARCH_RUNS_MODE_LOCAL_FILES,
    SearchMode.hybrid: executor_pb2.SEARCH_RUNS_MODE_HYBRID,
}


def search(
    query: Annotated[str, typer.Argument(help='Free text, e.g. "successful runs with mypy".')] = "",
    filter_: Annotated[
        str, typer.Option("--filter", help="An AIP-160 filter, e.g. total_cost_usd < 0.5.")
    ] = "",
    mode: Annotated[
        SearchMode, typer.Option("--mode", case_sensitive=False, help="Where to look.")
    ] = SearchMode.auto,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Hits to show.")] = 10,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show scores and what the query became.")
    ] = False,
    literal: Annotated[
        bool, typer.Option("--literal", help="Turn query understanding off.")
    ] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    timeout: Timeout = 10.0,
) -> None:
    """Search past runs: the memory service, or the executor's run files when it is away."""
    out, err = make_console(), make_console(stderr=True)
    if not query and not filter_:
        err.print("give a query, a --filter, or both")
        raise typer.Exit(2)
    with reported_failures(address, err, field_label="field"), connect(address, token) as stub:
        response = stub.SearchRuns(
            executor_pb2.SearchRunsRequest(
                query=query,
                filter=filter_,
                mode=MODES[mode],
                page_size=limit,
                disable_query_understanding=literal,
                explain=explain,
            ),
            timeout=timeout,
        )
    print_search(out, query, response, explain)


def _timestamp(text: str | None, option: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        make_console(stderr=True).print(f"{option}: not an ISO 8601 date or time: {text!r}")
        raise typer.Exit(2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def analytics(
    template_id: Annotated[
        str, typer.Argument(help="Only this template's runs; default: every template.")
    ] = "",
    since: Annotated[
        str | None, typer.Option("--since", help="Runs from this time on (ISO 8601, UTC).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Runs before this time (ISO 8601, UTC).")
    ] = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    timeout: Timeout = 10.0,
) -> None:
    """Success, cost and tier performance over past runs."""
    out, err = make_console(), make_console(stderr=True)
    request = executor_pb2.GetAnalyticsRequest(template_id=template_id)
    if (start := _timestamp(since, "--since")) is not None:
        request.start_time.FromDatetime(start)
    if (end := _timestamp(until, "--until")) is not None:
        request.end_time.FromDatetime(end)
    with reported_failures(address, err), connect(address, token) as stub:
        response = stub.GetAnalytics(request, timeout=timeout)
    print_analytics(out, template_id, response)


def recommend(
    template_id: Annotated[str, typer.Argument(help="The template to plan, e.g. code_review.")],
    answer: Answers = None,
    answers_file: AnswersFile = None,
    interactive: Interactive = False,
    session: Annotated[
        str, typer.Option("--session", help="Your session id, for suggestions from recent runs.")
    ] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    timeout: Timeout = 10.0,
) -> None:
    """Which tier each role needs, similar past runs, and suggested answers."""
    out, err = make_console(), make_console(stderr=True)
    with reported_failures(address, err, field_label="question"), connect(address, token) as stub:
        given = resolve_cli_answers(
            stub, template_id, answer, answers_file, interactive, timeout, err
        )
        response = stub.GetRecommendations(
            executor_pb2.GetRecommendationsRequest(
                template_id=template_id, answers=given, session_id=session
            ),
            timeout=timeout,
        )
    print_recommendations(out, template_id, response)


def status(
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    timeout: Timeout = 10.0,
    executor_metrics: ExecutorMetrics = None,
    memory_metrics: MemoryMetrics = None,
) -> None:
    """The executor's view of memory, its outbox and its runs; with metrics URLs, the
    pair's health from their figures (readiness, breaker, errors, search latency)."""
    out, err = make_console(), make_console(stderr=True)
    exit_code = 0
    try:
        with reported_failures(address, err), connect(address, token) as stub:
            response = stub.GetStatus(executor_pb2.GetStatusRequest(), timeout=timeout)
        print_status(out, address, response)
    except typer.Exit as failed:
        if executor_metrics is None and memory_metrics is None:
            raise
        exit_code = failed.exit_code  # Reported; the metrics may still say why.
    if executor_metrics is not None or memory_metrics is not None:
        read = show_pair_health(out, err, executor_metrics, memory_metrics, timeout)
        exit_code = exit_code or read
    if exit_code:
        raise typer.Exit(exit_code)


def register_insights(app: typer.Typer) -> None:
    """Adds the commands to the `attune` app."""
    app.command()(search)
    app.command()(analytics)
    app.command()(recommend)
    app.command()(status)
