"""One workflow run as a task of its own, relaying its events to a stream.

The run does not live in the RPC's generator: when the client cancels, the
generator is closed or its task cancelled, and the run task is cancelled in
turn. It records its agents as cancelled and still persists the run, so a
run never disappears with its caller.

A stopping executor cancels nothing (see InFlight): runs and their streams
go on until the drain deadline; the streams of runs still running then end
with UNAVAILABLE, telling callers to re-attach, and those runs are
suspended, not cancelled: their journal (runs/journal.py) stays, and the
next start resumes them.

Every event is also recorded: appended to the run's event log (event_log.py)
and handed to live watchers (WatchRun), in the same step and in order, so a
watcher that subscribes before it reads the log misses nothing. A resumed run
goes on numbering its events where its log stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from attune.executor.v1 import executor_pb2
from executor_service.runners.base import Runner
from executor_service.runners.factory import close_runner
from executor_service.runs.composition import PlannedAgent
from executor_service.runs.engine import OnAttempt, TeamExecution
from executor_service.runs.event_log import EventLog
from executor_service.runs.journal import RunJournal
from memory_service.servicekit.errors import ServiceError
from memory_service.servicekit.tracing import set_attributes, span

log = logging.getLogger("attune.executor.run")

# finish(run, remaining seconds or None) persists the run, delivers its pattern,
# and returns the events to report.
Finish = Callable[[executor_pb2.Run, float | None], Awaitable[list[tuple[str, Message]]]]

T = TypeVar("T")
# Runs whose callers are gone keep a strong reference here until they finish.
_BACKGROUND: set[asyncio.Future[Any]] = set()
# Runs in progress, by run id, so GetRun can show them before they are on disk.
IN_PROGRESS: dict[str, WorkflowRun] = {}


async def drain_runs(within: float) -> None:
    """Waits, at most `within` seconds, for runs still finishing (persisting a
    cancelled run, offering its pattern) before the executor closes up."""
    pending = set(_BACKGROUND)
    if pending:
        await asyncio.wait(pending, timeout=within)


_STOPPING = None  # In a run's event queue: the executor stops; the stream ends.


class InFlight:
    """The runs one executor is running, and whether it is stopping."""

    def __init__(self) -> None:
        self.stopping = False  # No new run starts.
        self._closed = False  # Past the drain deadline: whatever still runs is suspended.
        self.runs: dict[str, WorkflowRun] = {}

    async def stop(self, deadline: float) -> None:
        """Starts no new run, lets runs (and their streams) go on for
        `deadline` seconds, then ends the streams of the rest (UNAVAILABLE:
        re-attach) and suspends them: their journals stay, so the next
        start resumes them. Nothing is cancelled."""
        self.stopping = True
        tasks = {run.task for run in self.runs.values() if run.task is not None}
        if tasks:
            await asyncio.wait(tasks, timeout=deadline)
        self._closed = True
        suspended = list(self.runs.values())
        for run in suspended:
            run.detach()
            run.suspend()
        for run in suspended:
            if run.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task
        if suspended:
            log.info(
                "runs suspended at the drain deadline, to resume at the next start",
                extra={"runs": len(suspended)},
            )

    def admit(self, run: WorkflowRun) -> None:
        """Registers a run whose task exists; one starting past the drain
        deadline is suspended at once (its journal is written: it resumes)."""
        self.runs[run.run.run_id] = run
        if self._closed:
            run.detach()
            run.suspend()


class WorkflowRun:
    """Executes a team for a run and streams the run's events."""

    def __init__(
        self,
        run: executor_pb2.Run,
        team: list[PlannedAgent],
        runner: Runner,
        concurrency: int,
        finish: Finish,
        on_task: Callable[[asyncio.Task[None]], None] | None = None,
        on_attempt: OnAttempt | None = None,
        *,
        journal: RunJournal | None = None,
        recorded: dict[str, executor_pb2.AgentResult] | None = None,
        in_flight: InFlight | None = None,
        event_log: EventLog | None = None,
        first_sequence: int = 0,
    ) -> None:
        self.run = run
        self._on_task = on_task  # Told of the run's task as soon as it exists.
        self._team = team
        self._runner = runner
        self._journal = journal
        self._execution = TeamExecution(
            team,
            runner,
            concurrency,
            self._emit,
            on_attempt,
            self._checkpoint if journal is not None else None,
            recorded,
        )
        self._finish = finish
        self._events: asyncio.Queue[executor_pb2.RunWorkflowResponse | None] = asyncio.Queue()
        self._sequence = first_sequence  # A resumed run numbers on from its log.
        self._log = event_log
        # Live watchers' queues; None, put last, says the run's stream has ended.
        self._watchers: set[asyncio.Queue[executor_pb2.RunWorkflowResponse | None]] = set()
        self._over = False  # The last event is recorded: late watchers get None at once.
        self._in_flight = in_flight or InFlight()
        self._listening = True  # A stream relays the events (none once detached).
        self._suspended = False
        self.task: asyncio.Task[None] | None = None

    def event(self, field: str, message: Message) -> executor_pb2.RunWorkflowResponse:
        """A stream event of this run, numbered and timestamped."""
        self._sequence += 1
        response = executor_pb2.RunWorkflowResponse(run_id=self.run.run_id, sequence=self._sequence)
        response.event_time.GetCurrentTime()
        getattr(response, field).CopyFrom(message)
        return response

    def snapshot(self) -> executor_pb2.Run:
        """The run as it stands: RUNNING, with the agents' results so far."""
        current = executor_pb2.Run()
        current.CopyFrom(self.run)
        if not current.agents:
            current.agents.extend(self._execution.results[agent.role] for agent in self._team)
        return current

    def watch(self) -> asyncio.Queue[executor_pb2.RunWorkflowResponse | None]:
        """A queue of every event recorded from now on, then None when the run ends."""
        queue: asyncio.Queue[executor_pb2.RunWorkflowResponse | None] = asyncio.Queue()
        if self._over:
            queue.put_nowait(None)
        else:
            self._watchers.add(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue[executor_pb2.RunWorkflowResponse | None]) -> None:
        """Stops feeding a watcher's queue."""
        self._watchers.discard(queue)

    def _record(self, field: str, message: Message) -> executor_pb2.RunWorkflowResponse:
        """A new event, logged and handed to the watchers."""
        event = self.event(field, message)
        if self._log is not None:
            self._log.append(event)
        for queue in self._watchers:
            queue.put_nowait(event)
        return event

    async def _emit(self, field: str, message: Message) -> None:
        event = self._record(field, message)
        if self._listening:
            await self._events.put(event)

    def _ended(self) -> None:
        """The run's task is over: its log kept with the run (or, for a run
        suspended at shutdown, left in the journal for its resumption), and
        watchers told."""
        self._over = True
        if self._log is not None:
            if self._suspended:
                self._log.keep()
            else:
                self._log.close(self.run.run_dir)
        for queue in self._watchers:
            queue.put_nowait(None)
        self._watchers.clear()

    async def _checkpoint(self, result: executor_pb2.AgentResult) -> None:
        assert self._journal is not None
        # Shielded and kept: once an attempt is paid for, its record is written.
        await asyncio.shield(_kept(asyncio.to_thread(self._journal.record_agent, result)))

    def detach(self) -> None:
        """Ends the stream (the executor is stopping) without cancelling the run."""
        if self._listening:
            self._listening = False
            self._events.put_nowait(_STOPPING)

    def suspend(self) -> None:
        """Stops the run at shutdown: not cancelled, not persisted; resumed later."""
        self._suspended = True
        if self.task is not None:
            self.task.cancel()

    def _launch(self, deadline: float | None) -> asyncio.Task[None]:
        task = self.task = asyncio.create_task(self._execute(deadline))
        if self._on_task is not None:
            self._on_task(task)
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
        IN_PROGRESS[self.run.run_id] = self
        task.add_done_callback(lambda _: IN_PROGRESS.pop(self.run.run_id, None))
        task.add_done_callback(lambda _: self._in_flight.runs.pop(self.run.run_id, None))
        self._in_flight.admit(self)
        return task

    def resume(self) -> asyncio.Task[None]:
        """Runs the rest of a run in the background, with no caller to stream to."""
        self._listening = False
        task = self._launch(None)
        task.add_done_callback(lambda _: _closed_later(self._runner))
        return task

    async def stream(
        self, started: executor_pb2.RunStarted, deadline: float | None
    ) -> AsyncIterator[executor_pb2.RunWorkflowResponse]:
        """Starts the run and yields its events until run_finished.

        The run task exists before the first event is sent, so a stream that
        fails at once still leaves a run recorded (as cancelled).
        """
        task = self._launch(deadline)
        task.add_done_callback(lambda _: self._events.put_nowait(None))
        try:
            yield self._record("run_started", started)
            while (item := await self._events.get()) is not None:
                yield item
            # Detached (the executor is stopping) before the run finished.
            if not self._listening and (not task.done() or task.cancelled()):
                raise ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the executor is stopping; run {self.run.run_id} goes on and, if "
                    "unfinished, resumes when the executor starts again: re-attach with "
                    "WatchRun or look it up with GetRun",
                )
            await task
        finally:
            if not task.done() and self._listening:
                # The caller cancelled (or left): the only way a run is cancelled.
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if task.done():
                await close_runner(self._runner)
            else:
                task.add_done_callback(lambda _: _closed_later(self._runner))

    async def _execute(self, deadline: float | None) -> None:
        # The run's own task, so its span is a child of the RPC's (the task
        # copies the context it was created in), or a root when resumed.
        run = self.run
        with span("attune.run", run_id=run.run_id, template_id=run.template_id) as current:
            try:
                await self._execute_team(deadline)
            finally:
                self._ended()
                set_attributes(
                    current,
                    status=executor_pb2.RunStatus.Name(run.status),
                    suspended=self._suspended,
                )

    async def _execute_team(self, deadline: float | None) -> None:
        try:
            agents = await self._execution.run()
        except asyncio.CancelledError:
            if self._suspended:
                # The executor stops: nothing recorded as cancelled, the journal stays.
                log.info("run suspended", extra={"run_id": self.run.run_id})
                raise
            self.run.status = executor_pb2.RUN_STATUS_CANCELLED
            self.run.agents.extend(self._execution.results[agent.role] for agent in self._team)
            # The caller is gone, but the run is still recorded, as cancelled.
            events = await asyncio.shield(_kept(self._finish(self.run, None)))
            # Nobody reads the caller's stream now; watchers still see the end.
            for name, message in events:
                self._record(name, message)
            self._record("run_finished", executor_pb2.RunFinished(run=self.run))
            log.info("run cancelled", extra={"run_id": self.run.run_id})
            raise
        self.run.agents.extend(agents)
        succeeded = all(agent.status == executor_pb2.AGENT_STATUS_SUCCEEDED for agent in agents)
        self.run.status = (
            executor_pb2.RUN_STATUS_SUCCEEDED if succeeded else executor_pb2.RUN_STATUS_FAILED
        )
        remaining = None if deadline is None else deadline - time.monotonic()
        # Shielded: a caller leaving now must not stop the run between its
        # write and its pattern's queueing and offer; those finish together.
        for name, message in await asyncio.shield(_kept(self._finish(self.run, remaining))):
            await self._emit(name, message)
        await self._emit("run_finished", executor_pb2.RunFinished(run=self.run))


def _closed_later(runner: Runner) -> None:
    """Closes the runner of a run that ended after its stream did."""
    _kept(close_runner(runner))


def _kept(work: Awaitable[T]) -> asyncio.Future[T]:
    """The work as a task held until done: the loop keeps only weak references
    to tasks, and a shielded one outlives the call that awaited it."""
    task = asyncio.ensure_future(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task
