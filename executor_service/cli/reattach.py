"""A run's events that outlive a broken stream: re-attached with WatchRun.

When the stream breaks (UNAVAILABLE: the connection was lost, the executor
went away) or ends before run_finished, after the run has started, the
events go on from WatchRun after the last sequence seen, on any replica
that answers, a few times with a growing pause. A plain loop rather than
tenacity: the retry resumes a generator half-way, with the last sequence as
its state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import grpc

from attune.executor.v1 import executor_pb2, executor_pb2_grpc

Event = executor_pb2.RunWorkflowResponse
RETRIES = 5  # Re-attachments in a row that bring no new event, before giving up.
FIRST_PAUSE_SECONDS = 0.2
MAX_PAUSE_SECONDS = 5.0


def watched(
    stub: executor_pb2_grpc.ExecutorServiceStub, run_id: str, after: int, timeout: float
) -> Iterator[Event]:
    """A WatchRun stream's events."""
    request = executor_pb2.WatchRunRequest(run_id=run_id, after_sequence=after)
    return (response.event for response in stub.WatchRun(request, timeout=timeout))


def reattaching(
    stub: executor_pb2_grpc.ExecutorServiceStub,
    events: Iterable[Event],
    timeout: float,
    notice: Callable[[str], None],
    run_id: str = "",
    after: int = 0,
) -> Iterator[Event]:
    """The events of `events`, then, should it break after the run started,
    of WatchRun from the last one seen, until run_finished or `timeout`
    seconds from now. `notice` is told of each re-attachment. A watch knows
    its run (`run_id`) and where it starts (`after`) before any event."""
    deadline = time.monotonic() + timeout
    last, failures = after, 0
    broken: grpc.RpcError | None = None  # The last break, reported on giving up.
    while True:
        try:
            for event in events:
                run_id = event.run_id or run_id
                if event.sequence <= last:
                    continue
                last, failures = event.sequence, 0
                yield event
                if event.HasField("run_finished"):
                    return
            why, broken = "the stream ended before the run finished", None
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            if code != grpc.StatusCode.UNAVAILABLE or not run_id:
                raise
            why, broken = f"the stream broke ({error.details() or code.name})", error
        failures += 1
        pause = min(FIRST_PAUSE_SECONDS * 2 ** (failures - 1), MAX_PAUSE_SECONDS)
        if not run_id or failures > RETRIES or time.monotonic() + pause >= deadline:
            if broken is not None:
                raise broken
            return  # The caller reports a stream without run_finished.
        notice(
            f"{why}: re-attaching to run {run_id} after event {last} "
            f"in {pause:.1f} s (try {failures} of {RETRIES})"
        )
        time.sleep(pause)  # Backing off: the executor may be restarting.
        events = watched(stub, run_id, last, deadline - time.monotonic())
