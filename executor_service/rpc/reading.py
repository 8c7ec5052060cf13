"""GetRun and ListRuns: the caller's runs, read from the run files, as they may see them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import grpc

from attune.executor.v1 import executor_pb2
from executor_service.rpc.base import MAX_PAGE_BYTES, Context, RpcBase
from executor_service.rpc.gate import gated
from executor_service.runs.as_pattern import run_owner
from executor_service.runs.event_log import journal_dir, started_run
from executor_service.runs.journal import CorruptJournalError, RunJournal
from executor_service.runs.privacy import served_run
from executor_service.runs.query import RUN_SCHEMA, run_record
from executor_service.runs.store import RUN_ID_PATTERN, CorruptRunError
from executor_service.runs.visibility import Viewer, is_sensitive_run
from executor_service.runs.workflow_run import IN_PROGRESS
from memory_service.access.audit import AuditAction
from memory_service.search.filter import FilterError, compile_filter, matches
from memory_service.security.identity import Action, Principal
from memory_service.servicekit.errors import ServiceError, invalid_argument, not_found
from memory_service.servicekit.paging import decode_cursor, encode_cursor, page_bounds


def _run_read(
    request: executor_pb2.GetRunRequest, response: executor_pb2.GetRunResponse
) -> tuple[Sequence[str], int]:
    return (response.run.run_id,), 1


def _runs_listed(
    request: executor_pb2.ListRunsRequest, response: executor_pb2.ListRunsResponse
) -> tuple[Sequence[str], int]:
    return [run.run_id for run in response.runs], len(response.runs)


class ReadingRpcs(RpcBase):
    """Reads runs one at a time or a page at a time."""

    @gated(AuditAction.GET, Action.READ, _run_read)
    async def GetRun(
        self, request: executor_pb2.GetRunRequest, context: Context, principal: Principal
    ) -> executor_pb2.GetRunResponse:
        if not request.run_id:
            raise invalid_argument([("run_id", "required")])
        if not RUN_ID_PATTERN.fullmatch(request.run_id):
            raise invalid_argument(
                [("run_id", "not a run id (UTC date-time, then a ULID: 20260117-052959-01kf...)")]
            )
        # Another owner's SENSITIVE run answers exactly as an unknown id:
        # its existence is not the caller's to learn.
        viewer = Viewer.of(principal)
        if (in_progress := IN_PROGRESS.get(request.run_id)) is not None:
            snapshot = in_progress.snapshot()
            if not viewer.sees(run_owner(snapshot)) and await asyncio.to_thread(
                is_sensitive_run, snapshot, self._catalog.get(snapshot.template_id)
            ):
                raise not_found("run", request.run_id)
            served = await asyncio.to_thread(served_run, snapshot)
            return executor_pb2.GetRunResponse(run=served)
        root = self._runs.root
        if (
            elsewhere := await asyncio.to_thread(running_elsewhere, root, request.run_id)
        ) is not None:
            # In progress on another replica sharing the runs root (or
            # suspended): answered from its journal, as it stands.
            if not viewer.sees(run_owner(elsewhere)) and await asyncio.to_thread(
                self._classify, elsewhere
            ):
                raise not_found("run", request.run_id)
            return executor_pb2.GetRunResponse(run=await asyncio.to_thread(served_run, elsewhere))
        if not self._local_index.visible(request.run_id, viewer):
            raise not_found("run", request.run_id)
        try:
            run = await asyncio.to_thread(self._runs.load, request.run_id)
        except CorruptRunError as error:
            raise ServiceError(grpc.StatusCode.DATA_LOSS, str(error)) from None
        if run is None or not await asyncio.to_thread(self._shown, run, viewer):
            raise not_found("run", request.run_id)
        outbox = self._deliverer.outbox
        # On disk, not this replica's queue: another replica may have queued it.
        if await asyncio.to_thread(outbox.waits, run.run_id):
            run.pattern_delivery = executor_pb2.PATTERN_DELIVERY_QUEUED
        elif await asyncio.to_thread(outbox.is_rejected, run.run_id):
            run.pattern_delivery = executor_pb2.PATTERN_DELIVERY_REJECTED
        else:
            run.pattern_delivery = executor_pb2.PATTERN_DELIVERY_STORED
        return executor_pb2.GetRunResponse(run=run)

    def _classify(self, run: executor_pb2.Run) -> bool:
        """Whether the run (as recorded) is SENSITIVE. Any thread."""
        return is_sensitive_run(run, self._catalog.get(run.template_id))

    def _shown(self, run: executor_pb2.Run, viewer: Viewer) -> bool:
        """Whether the viewer may see this finished run. Classified from its
        files when the viewer is not its owner: another replica's run may
        not be in this replica's local index yet. Any thread."""
        return viewer.sees(run_owner(run)) or not self._runs.is_sensitive(
            run.run_id, self._classify
        )

    @gated(AuditAction.LIST, Action.READ, _runs_listed)
    async def ListRuns(
        self, request: executor_pb2.ListRunsRequest, context: Context, principal: Principal
    ) -> executor_pb2.ListRunsResponse:
        try:
            condition = compile_filter(request.filter, RUN_SCHEMA)
        except FilterError as error:
            raise invalid_argument([("filter", str(error))]) from None
        size = page_bounds(request.page_size, 50, 500)
        scope = f"runs:{request.filter}"
        # Keyset paging on the run id: runs finishing meanwhile never shift a
        # page, and runs the caller may not see are skipped like non-matches.
        after = decode_cursor(request.page_token, scope)
        viewer = Viewer.of(principal)

        def page() -> tuple[list[executor_pb2.Run], bool]:
            # The filter is applied before paging, so no match is skipped.
            found: list[executor_pb2.Run] = []
            room = MAX_PAGE_BYTES
            for run_id in self._runs.run_ids():
                if after and run_id >= after:
                    continue
                if not self._local_index.visible(run_id, viewer) or _being_indexed(run_id, viewer):
                    continue
                run = self._runs.readable(run_id)
                if run is None or not matches(condition, run_record(run), RUN_SCHEMA):
                    continue
                if not self._shown(run, viewer):
                    continue
                room -= run.ByteSize()
                if len(found) == size or (found and room < 0):
                    return found, True
                found.append(run)
            return found, False

        runs, more = await asyncio.to_thread(page)
        token = encode_cursor(runs[-1].run_id, scope) if more else ""
        return executor_pb2.ListRunsResponse(runs=runs, next_page_token=token)


def running_elsewhere(root: Path, run_id: str) -> executor_pb2.Run | None:
    """A run in progress that is not this process's (another replica's, or
    suspended), as its journal has it: the run as it started, RUNNING, with
    the agents' results recorded so far; None when it is not in progress."""
    started = started_run(root, run_id)
    if started is None or (root / run_id).exists():
        return None  # Not in progress, or finished with its journal not yet gone.
    try:
        agents = RunJournal(journal_dir(root, run_id)).agents()
    except CorruptJournalError:
        agents = {}  # Being written: the run as it started still answers.
    started.status = executor_pb2.RUN_STATUS_RUNNING
    started.agents.extend(agents.values())
    return started


def _being_indexed(run_id: str, viewer: Viewer) -> bool:
    """Whether the run is on disk but maybe not in the local index yet (it is
    in progress until indexed) and started by someone else: left out of a
    list for that moment rather than shown unclassified. Any thread."""
    in_progress = IN_PROGRESS.get(run_id)
    return in_progress is not None and not viewer.sees(run_owner(in_progress.run))
