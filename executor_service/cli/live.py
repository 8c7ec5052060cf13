"""The live per-agent progress of `attune run`, driven by RunWorkflow events."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from attune.executor.v1 import executor_pb2
from executor_service.cli.render import agent_status, runner_name, usd
from executor_service.convert.enums import tier_name

_STATUS_STYLES = {"succeeded": "green", "failed": "red", "running": "cyan", "skipped": "yellow"}


class StreamEndedError(Exception):
    """The stream ended without its run_finished event."""


@dataclass
class AgentRow:
    """What the table shows of one agent."""

    role: str
    stage: int
    status: str = "pending"
    tier: str = "-"
    attempt: int = 0
    cost_usd: float = 0.0
    note: str = ""


class RunProgress:
    """The run's state as far as the events so far tell."""

    def __init__(self) -> None:
        self.run_id = ""
        self.runner = "unspecified"
        self.agents: dict[str, AgentRow] = {}
        self.run: executor_pb2.Run | None = None

    def _row(self, role: str) -> AgentRow:
        # An event may name an agent the run_started team did not list.
        return self.agents.setdefault(role, AgentRow(role, stage=0))

    def apply(self, event: executor_pb2.RunWorkflowResponse) -> str | None:
        """Updates the state; returns a line for the log, if the event deserves one."""
        self.run_id = event.run_id or self.run_id
        kind = event.WhichOneof("event")
        if kind == "run_started":
            started = event.run_started
            self.runner = runner_name(started.runner)
            for agent in started.team:
                self.agents[agent.role] = AgentRow(agent.role, agent.stage)
            seed = f", seed {started.seed}" if self.runner == "simulated" else ""
            return f"run {event.run_id} started (runner={self.runner}{seed})"
        if kind == "agent_started":
            self._row(event.agent_started.role).status = "running"
        elif kind == "attempt_started":
            row = self._row(event.attempt_started.role)
            row.status, row.attempt = "running", event.attempt_started.number
            row.tier = tier_name(event.attempt_started.tier)
        elif kind == "attempt_finished":
            attempt = event.attempt_finished.attempt
            row = self._row(event.attempt_finished.role)
            row.cost_usd += attempt.cost_usd
            row.note = "ok" if attempt.success else f"failed: {attempt.error}"
            return (
                f"{row.role}: attempt {attempt.number} at {tier_name(attempt.tier)}, "
                f"{usd(attempt.cost_usd)}, {row.note}"
            )
        elif kind == "agent_finished":
            result = event.agent_finished.agent
            row = self._row(result.role)
            row.status, row.cost_usd = agent_status(result.status), result.cost_usd
        elif kind == "agent_skipped":
            row = self._row(event.agent_skipped.role)
            row.status, row.note = "skipped", event.agent_skipped.reason
            return f"{row.role}: skipped, {row.note}"
        elif kind == "run_persisted":
            return f"run files written to {event.run_persisted.run_dir}"
        elif kind == "pattern_stored":
            return f"pattern {event.pattern_stored.pattern_id} stored in the memory service"
        elif kind == "pattern_queued":
            return f"pattern queued in the outbox: {event.pattern_queued.reason}"
        elif kind == "pattern_rejected":
            return f"pattern refused by the memory service: {event.pattern_rejected.reason}"
        elif kind == "run_finished":
            self.run = event.run_finished.run
        return None

    def table(self) -> Table:
        """The per-agent table as it stands."""
        table = Table(title=f"run {self.run_id or '...'}  runner={self.runner}")
        table.add_column("stage")
        table.add_column("agent", no_wrap=True)  # Roles are what the table is read by.
        for header in ("status", "tier", "attempt", "cost"):
            table.add_column(header, no_wrap=True)
        table.add_column("outcome")
        for row in sorted(self.agents.values(), key=lambda r: r.stage):
            table.add_row(
                str(row.stage),
                Text(row.role, style="bold"),
                Text(row.status, style=_STATUS_STYLES.get(row.status, "")),
                row.tier,
                str(row.attempt or "-"),
                usd(row.cost_usd),
                row.note,
            )
        total = sum(row.cost_usd for row in self.agents.values())
        table.caption = f"total {usd(total)}"
        if self.runner == "simulated":
            table.caption += "; simulated results, not model output"
        return table


def follow(
    events: Iterable[executor_pb2.RunWorkflowResponse], console: Console
) -> executor_pb2.Run:
    """Shows the run live, logging notable events above the table; returns the run."""
    stream = iter(events)
    # The first event comes before the display: a rejected request shows no empty table.
    first = next(stream, None)
    if first is None:
        raise StreamEndedError("the run stream ended without a run_finished event")
    progress = RunProgress()
    # Refreshed on each event rather than by a timer: nothing changes in between.
    with Live(progress.table(), console=console, auto_refresh=False) as live:
        for event in itertools.chain([first], stream):
            line = progress.apply(event)
            if line:
                live.console.print(Text(line, style="dim"), soft_wrap=True)
            live.update(progress.table(), refresh=True)
    if not console.is_terminal:
        console.line()  # Off a terminal, Live's one final render ends without a newline.
    if progress.run is None:
        raise StreamEndedError("the run stream ended without a run_finished event")
    return progress.run


def final_run(events: Iterable[executor_pb2.RunWorkflowResponse]) -> executor_pb2.Run:
    """The run of the stream's run_finished event, with no display."""
    for event in events:
        if event.HasField("run_finished"):
            return event.run_finished.run
    raise StreamEndedError("the run stream ended without a run_finished event")
