"""Rich output of the pair's health figures (`attune status` with metrics URLs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from executor_service.cli.health_figures import (
    ExecutorFigures,
    MemoryFigures,
    MethodCalls,
)

MISSING = "not exported"


def _yes_no(value: bool | None, yes: str = "yes", no: str = "NO") -> Text:
    if value is None:
        return Text(MISSING, style="dim")
    return Text(yes, style="green") if value else Text(no, style="red")


def _number(value: float | None) -> str:
    return MISSING if value is None else f"{value:g}"


def _counts(counts: Mapping[str, float]) -> str:
    # Services create a child per known label value up front: zeros say nothing.
    shown = [f"{key or '-'} {value:g}" for key, value in counts.items() if value]
    return ", ".join(shown) or "none"


def _quantiles(p95: Mapping[str, float | None]) -> str:
    if not p95:
        return "no searches"
    shown = [(key, value) for key, value in p95.items() if key != "all"] + [("all", p95["all"])]
    return ", ".join(
        f"{key or '-'} {'-' if value is None else f'{value * 1000:.0f} ms'}" for key, value in shown
    )


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def methods_table(title: str, methods: Sequence[MethodCalls]) -> Table:
    """Calls per method since start: all, not OK, and server-side failures."""
    table = Table("method", "calls", "not OK", "server errors", title=title)
    for calls in methods:
        table.add_row(
            f"{calls.service.rsplit('.', 1)[-1]}/{calls.method}",
            f"{calls.total:g}",
            f"{calls.not_ok:g} ({_ratio(calls.not_ok_ratio)})",
            f"{calls.server_errors:g} ({_ratio(calls.server_error_ratio)})",
        )
    return table


def print_executor_figures(console: Console, url: str, figures: ExecutorFigures) -> None:
    table = Table("", "", title=f"Executor metrics {url}")
    breaker = figures.breaker
    style = "green" if breaker == "closed" else "red"
    table.add_row("circuit breaker", Text(breaker or MISSING, style=style if breaker else "dim"))
    table.add_row("memory reachable", _yes_no(figures.memory_reachable))
    age = figures.outbox_oldest_age_seconds
    table.add_row(
        "outbox",
        f"{_number(figures.outbox_depth)} waiting, oldest {_number(age)}"
        + ("" if age is None else " s"),
    )
    table.add_row("runs by status (since start)", _counts(figures.runs_by_status))
    table.add_row("attempts by tier (since start)", _counts(figures.attempts_by_tier))
    table.add_row("SearchRuns p95 by source", _quantiles(figures.search_p95_seconds))
    console.print(table)
    console.print(methods_table("Executor calls since start", figures.methods))


def print_memory_figures(console: Console, url: str, figures: MemoryFigures) -> None:
    table = Table("", "", title=f"Memory metrics {url}")
    table.add_row("ready", _yes_no(figures.ready))
    table.add_row("encryption key available", _yes_no(figures.encryption_key_available))
    refused = sum(figures.secrets_refused.values())
    kinds = f" ({_counts(figures.secrets_refused)})" if refused else ""
    table.add_row("secrets refused (since start)", f"{refused:g}{kinds}")
    table.add_row("SearchPatterns p95 by mode", _quantiles(figures.search_p95_seconds))
    console.print(table)
    console.print(methods_table("Memory calls since start", figures.methods))


def print_verdict(console: Console, problems: Sequence[str], unread: Sequence[str]) -> None:
    """One line for a healthy pair; otherwise each problem, and what could not be read."""
    if not problems and not unread:
        console.print(Text("health: OK (from the figures read)", style="green"))
        return
    for line in unread:
        console.print(Text(f"unknown: {line}", style="yellow"), soft_wrap=True)
    for line in problems:
        console.print(Text(f"problem: {line}", style="red"), soft_wrap=True)
