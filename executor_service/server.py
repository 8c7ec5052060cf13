"""`python -m executor_service`: serve the executor until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import grpc

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service import metrics
from executor_service.memory.breaker import State
from executor_service.memory.client import MemoryClient
from executor_service.memory.delivery import PatternDeliverer
from executor_service.memory.local_index import INDEX_DIR, LocalIndex
from executor_service.memory.outbox import Outbox
from executor_service.rpc.servicer import ExecutorServicer
from executor_service.runners.factory import Runners
from executor_service.runs.store import RunStore
from executor_service.runs.workflow_run import drain_runs
from executor_service.settings import ExecutorSettings
from executor_service.templates.catalog import load_catalog
from memory_service.access.wiring import access_control, authenticator_from
from memory_service.security.identity import EXECUTOR_ROLE_NAMES, AuthConfigError, Authenticator
from memory_service.servicekit.lifecycle import ManagedServer, RunningService
from memory_service.servicekit.logging import configure_logging
from memory_service.servicekit.private_files import private_opener, restrict_umask
from memory_service.servicekit.settings import settings_or_exit
from memory_service.servicekit.tracing import configure_tracing

# Under the runs root: whoever holds it replays the outbox (memory/delivery.py).
OUTBOX_LOCK = ".outbox.lock"

SERVICE_NAME = executor_pb2.DESCRIPTOR.services_by_name["ExecutorService"].full_name

log = logging.getLogger("attune.executor")


class ConfigurationError(Exception):
    """The settings cannot make a safe executor; the message says what to set."""


def authenticator_for(settings: ExecutorSettings) -> Authenticator:
    """Tokens from the tokens file, or nobody checked when explicitly turned off."""
    try:
        return authenticator_from(settings, "EXECUTOR_", EXECUTOR_ROLE_NAMES)
    except AuthConfigError as error:
        raise ConfigurationError(str(error)) from None


async def start(settings: ExecutorSettings) -> RunningService:
    """Loads templates and runs, starts the outbox replay, starts serving;
    ConfigurationError if the settings are unsafe."""
    authenticator = authenticator_for(settings)
    loaded = load_catalog(settings.templates_dir)
    for problem in loaded.problems:
        log.warning("template not served", extra={"problem": str(problem)})
    catalog = loaded.catalog
    # The runs root may be shared by replicas (EXECUTOR_RUNS_DIR): the
    # staging folder, journals and replay lock keep them out of each other's way.
    runs = RunStore(settings.runs_root, settings.replica)
    client = MemoryClient.from_settings(settings)
    deliverer = PatternDeliverer(Outbox(runs.root), client, runs.root / OUTBOX_LOCK)
    # A cache beside the runs: reused when it matches them, rebuilt otherwise.
    local_index = LocalIndex(settings.data_dir / INDEX_DIR, settings.memory_namespace)
    await asyncio.to_thread(local_index.open, runs, catalog)
    # The queue is on disk: patterns queued before a restart replay from the first pass.
    replay = asyncio.create_task(
        deliverer.replay_forever(
            settings.outbox_replay_interval_seconds, settings.outbox_replay_max_interval_seconds
        )
    )
    watch = asyncio.create_task(client.probe_forever(settings.readiness_interval_seconds))

    def on_breaker(state: State) -> None:
        # The memory service answers again: drain now, not at the end of a backoff.
        if state is State.CLOSED:
            deliverer.memory_seen_back()

    client.breaker.subscribe(on_breaker)

    access = access_control(settings, authenticator, settings.data_dir)
    runners = Runners(settings)  # Shared by every run; closed after they drain.
    servicers: list[ExecutorServicer] = []

    def register(server: grpc.aio.Server) -> None:
        servicer = ExecutorServicer(
            settings,
            catalog,
            runs,
            deliverer,
            local_index,
            authenticator=access.authenticator,
            audit_log=access.audit_log,
            denials=access.denials,
            runners=runners,
        )
        executor_pb2_grpc.add_ExecutorServiceServicer_to_server(servicer, server)
        servicers.append(servicer)

    memory_detail = MemoryDetail(client)

    async def runs_writable() -> bool:
        # The executor needs only its own disk; memory outages degrade, not fail.
        # A real write, since permission bits say nothing to root or a full disk.
        writable = await asyncio.to_thread(_probe_write, runs.root, settings.replica)
        memory_detail.report()
        return writable

    async def stop_replay() -> None:
        for task in (replay, watch):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    undecodable = access.undecodable_hook(SERVICE_NAME)
    managed = ManagedServer(
        settings, SERVICE_NAME, register, runs_writable, undecodable, metrics.SERVICE
    )
    (servicer,) = servicers
    outbox = deliverer.outbox
    unbind_metrics = metrics.bind_state(
        outbox_depth=outbox.depth,
        outbox_oldest_age=outbox.oldest_age_seconds,
        breaker_state=lambda: client.breaker.state,
        memory_reachable=lambda: client.reachable,
        runs_in_flight=lambda: len(servicer.in_flight.runs),
    )
    # Runs this executor had not finished when it last stopped go on first.
    resumed = await servicer.resume_unfinished()
    await managed.start()
    log.info(
        "executor ready",
        extra={
            "runs_dir": str(runs.root),
            "replica": settings.replica,
            "memory_address": settings.memory_address,
            "runs_resumed": resumed,
        },
    )

    async def drain_runs_first() -> None:
        # Before the server stops, while it serves: no new run, readiness
        # NOT_SERVING, runs and their streams go on up to the drain deadline,
        # and the rest are suspended (resumed at the next start), not cancelled.
        log.info("draining runs", extra={"drain_deadline_seconds": settings.drain_deadline_seconds})
        servicer.in_flight.stopping = True
        await managed.withdraw()
        await servicer.in_flight.stop(settings.drain_deadline_seconds)

    async def drain() -> None:
        # What runs left (their patterns' offers) and background memory writes
        # drain together, so this takes one grace period at most.
        await asyncio.gather(
            drain_runs(settings.grace_period_seconds), client.drain(settings.grace_period_seconds)
        )

    async def close_index() -> None:
        await asyncio.to_thread(local_index.close)  # Checkpoints its WAL.

    async def release_metrics() -> None:
        unbind_metrics()  # The gauges no longer read this executor's objects.

    return RunningService(
        managed,
        drain,
        stop_replay,
        runners.aclose,
        client.close,
        close_index,
        access.close,
        release_metrics,
        before_stop=drain_runs_first,
    )


class MemoryDetail:
    """The memory side of the executor's readiness, logged when it changes.

    Not a condition of readiness (the executor degrades instead), but an
    operator reading why searches are degraded and patterns queue finds it
    beside readiness: reachability, the circuit breaker's state, the error.
    """

    def __init__(self, client: MemoryClient) -> None:
        self._client = client
        self._last: tuple[bool | None, State] | None = None

    def report(self) -> None:
        """Logs the memory state if it changed since the last report."""
        reachable, breaker = self._client.reachable, self._client.breaker.state
        if (reachable, breaker) == self._last:
            return
        self._last = (reachable, breaker)
        log.log(
            # None: not probed yet, nothing to warn about.
            logging.WARNING if reachable is False or breaker is not State.CLOSED else logging.INFO,
            "readiness detail: memory service",
            extra={
                "memory_reachable": reachable,
                "memory_breaker": breaker.value,
                "last_memory_error": self._client.last_error,
            },
        )


def _probe_write(folder: Path, replica: str) -> bool:
    # One probe file per replica: a shared runs root is probed by each.
    probe = folder / f".readiness-probe-{replica}"
    try:
        with open(probe, "wb", opener=private_opener) as handle:
            handle.write(b"ok")
            handle.flush()
            os.fsync(handle.fileno())
        probe.unlink()
    except OSError:
        return False
    return True


async def serve(settings: ExecutorSettings) -> None:
    """Serves until a termination signal, then drains."""
    await (await start(settings)).serve_until_signal()


def main() -> None:
    """Console entry point."""
    restrict_umask()  # Before anything is written: run files are the owner's only.
    settings = settings_or_exit(ExecutorSettings, "EXECUTOR_")
    configure_logging("executor", settings.log_level)
    flush_spans = configure_tracing("attune-executor")  # The graceful stop flushes too.
    try:
        asyncio.run(serve(settings))
    except ConfigurationError as error:
        log.critical("cannot start: %s", error)
        raise SystemExit(2) from None
    finally:
        flush_spans()  # The spans of a start that failed, or of a stop that raised.


if __name__ == "__main__":
    main()
