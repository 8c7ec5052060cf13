"""WatchRun: re-attaching to a run, from its event log and then live.

Three cases, by where the run is:
- in progress in this process: the watcher subscribes to the run first, then
  replays the log, then takes the live events, skipping any sequence already
  sent (events are logged and handed to watchers in one step, so nothing
  falls between the two);
- in progress in another process sharing the runs root: the journal's log is
  tailed (polled: the wait is for another process's writes) until
  run_finished, or until the log moves into the run directory, or until the
  caller's deadline;
- finished: the log in the run directory, replayed.

Who may watch is GetRun's rule: another owner's SENSITIVE run is NOT_FOUND.
The run's owner gets the events exactly as RunWorkflow streamed them; anyone
else gets their free text scrubbed, as GetRun serves the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from google.protobuf import json_format

from attune.executor.v1 import executor_pb2
from executor_service.rpc.base import Context, RpcBase
from executor_service.rpc.gate import gated_stream
from executor_service.runs.as_pattern import run_owner
from executor_service.runs.event_log import (
    EVENTS,
    journal_dir,
    log_paths,
    parse_lines,
    started_run,
)
from executor_service.runs.privacy import served_event
from executor_service.runs.store import RUN_ID_PATTERN
from executor_service.runs.visibility import Viewer, is_sensitive_run
from executor_service.runs.workflow_run import IN_PROGRESS, WorkflowRun
from memory_service.access.audit import AuditAction
from memory_service.security.identity import Action, Principal
from memory_service.servicekit.errors import ServiceError, invalid_argument, not_found

# How often another process's log is read again while its run goes on.
TAIL_INTERVAL_SECONDS = 0.05

Event = executor_pb2.RunWorkflowResponse


def _watched_run_id(response: executor_pb2.WatchRunResponse) -> str:
    return response.event.run_id


def _read_log(root: Path, run_id: str) -> list[Event] | None:
    """Every event logged so far (journal, else run directory), or None when
    the run has no log. Any thread."""
    for path in log_paths(root, run_id):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        return parse_lines(data)[0]
    return None


def _finished_run(root: Path, run_id: str) -> executor_pb2.Run | None:
    """A finished run as it ran (not as served: visibility classifies that), or None."""
    try:
        text = (root / run_id / "result.json").read_text(encoding="utf-8")
        return json_format.Parse(text, executor_pb2.Run(), ignore_unknown_fields=True)
    except (OSError, json_format.ParseError):
        return None


class WatchingRpcs(RpcBase):
    """Streams a run's events to a caller re-attaching to it."""

    @gated_stream(AuditAction.GET, Action.READ, _watched_run_id)
    async def WatchRun(
        self, request: executor_pb2.WatchRunRequest, context: Context, principal: Principal
    ) -> AsyncIterator[executor_pb2.WatchRunResponse]:
        run_id = request.run_id
        if not run_id:
            raise invalid_argument([("run_id", "required")])
        if not RUN_ID_PATTERN.fullmatch(run_id):
            raise invalid_argument([("run_id", "not a run id")])
        if request.after_sequence < 0:
            raise invalid_argument([("after_sequence", "must not be negative")])
        live = IN_PROGRESS.get(run_id)
        # Subscribed before anything is read: no event can fall in between.
        queue = live.watch() if live is not None else None
        try:
            viewer = Viewer.of(principal)
            mine = viewer.sees(await self._watchable_owner(run_id, viewer, live))
            events = (
                self._live(run_id, queue, request.after_sequence)
                if queue is not None
                else self._tailed(run_id, request.after_sequence)
            )
            async for event in events:
                yield executor_pb2.WatchRunResponse(event=event if mine else served_event(event))
        finally:
            if live is not None and queue is not None:
                live.unwatch(queue)

    async def _watchable_owner(self, run_id: str, viewer: Viewer, live: WorkflowRun | None) -> str:
        """The run's owner, if the viewer may watch the run; else NOT_FOUND,
        as for an unknown id (GetRun's rule)."""
        root = self._runs.root
        run = live.snapshot() if live is not None else None
        if run is None:
            run = await asyncio.to_thread(started_run, root, run_id)
        if run is None:
            if not self._local_index.visible(run_id, viewer):
                raise not_found("run", run_id)
            run = await asyncio.to_thread(_finished_run, root, run_id)
        if run is None:
            raise not_found("run", run_id)
        owner = run_owner(run)
        # Another replica's runs are not in this one's index: classified here.
        if not viewer.sees(owner) and await asyncio.to_thread(
            is_sensitive_run, run, self._catalog.get(run.template_id)
        ):
            raise not_found("run", run_id)
        return owner

    async def _live(
        self,
        run_id: str,
        queue: asyncio.Queue[Event | None],
        after: int,
    ) -> AsyncIterator[Event]:
        """A run of this process: its log so far, then its events as they come."""
        last = after
        for logged in await asyncio.to_thread(_read_log, self._runs.root, run_id) or []:
            if logged.sequence > last:
                last = logged.sequence
                yield logged
        while (event := await queue.get()) is not None:
            if event.sequence > last:
                last = event.sequence
                yield event

    async def _tailed(self, run_id: str, after: int) -> AsyncIterator[Event]:
        """A run of another process (or finished): its log, followed until
        run_finished, or until the log is moved into the run directory."""
        journal = journal_dir(self._runs.root, run_id) / EVENTS
        offset, last = 0, after
        while True:
            data = await asyncio.to_thread(_tail, journal, offset)
            if data is None:
                break  # The run has ended: its whole log is in its directory.
            events, used = parse_lines(data)
            offset += used
            for event in events:
                if event.sequence > last:
                    last = event.sequence
                    yield event
                if event.WhichOneof("event") == "run_finished":
                    return
            await asyncio.sleep(TAIL_INTERVAL_SECONDS)
        final = await asyncio.to_thread(_tail, self._runs.root / run_id / EVENTS, 0)
        if final is None:
            if offset == 0:
                raise ServiceError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"run {run_id} kept no event log (it finished before runs kept one)",
                )
            return
        for event in parse_lines(final)[0]:
            if event.sequence > last:
                last = event.sequence
                yield event


def _tail(path: Path, offset: int) -> bytes | None:
    """The file's bytes from `offset`, or None when it is gone. Any thread."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read()
    except FileNotFoundError:
        return None
