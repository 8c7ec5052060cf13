"""The metrics half of `attune status`: scrape each endpoint given, show its
figures, then one verdict for the pair."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.text import Text

from executor_service.cli.client import EXIT_FAILED
from executor_service.cli.health_figures import (
    executor_figures,
    executor_problems,
    memory_figures,
    memory_problems,
)
from executor_service.cli.render_health import (
    print_executor_figures,
    print_memory_figures,
    print_verdict,
)
from executor_service.cli.scrape import Exposition, ScrapeError, metrics_url, scrape

# Shows one service's figures; returns the problems they show.
Show = Callable[[Console, str, Exposition], list[str]]


def _show_executor(console: Console, url: str, exposition: Exposition) -> list[str]:
    figures = executor_figures(exposition)
    print_executor_figures(console, url, figures)
    return executor_problems(figures)


def _show_memory(console: Console, url: str, exposition: Exposition) -> list[str]:
    figures = memory_figures(exposition)
    print_memory_figures(console, url, figures)
    return memory_problems(figures)


def show_pair_health(
    out: Console,
    err: Console,
    executor_metrics: str | None,
    memory_metrics: str | None,
    timeout: float,
) -> int:
    """Prints what the given endpoints say; the exit code: 1 if one was unreadable."""
    problems: list[str] = []
    unread: list[str] = []
    endpoints: tuple[tuple[str, str | None, Show], ...] = (
        ("executor", executor_metrics, _show_executor),
        ("memory", memory_metrics, _show_memory),
    )
    for name, given, show in endpoints:
        if given is None:
            continue
        try:
            url = metrics_url(given)
            exposition = scrape(url, timeout)
        except ScrapeError as error:
            # A message, never a traceback: the other endpoint is still shown.
            err.print(Text(f"{name} metrics unreadable: {error}", style="red"), soft_wrap=True)
            unread.append(f"{name} metrics at {given}")
            continue
        problems += show(out, url, exposition)
    print_verdict(out, problems, unread)
    return EXIT_FAILED if unread else 0
