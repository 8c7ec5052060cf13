"""Getting run patterns to the memory service: now, or later from the outbox."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc

from attune.memory.v1 import memory_pb2
from executor_service.memory_client import CREDENTIAL_CODES, EXECUTOR_CREDENTIALS_HINT, MemoryClient
from executor_service.outbox import Outbox

log = logging.getLogger("attune.executor.delivery")

# Answers about the pattern itself: final. Every other failure is transient,
# UNAUTHENTICATED and PERMISSION_DENIED included: they are about the
# executor's token, not the pattern, and the pattern must reach the memory
# service once the token is fixed (invariant 2), so it stays queued.
FINAL_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS})


@dataclass(frozen=True)
class Delivery:
    """What happened to a pattern."""

    stored: bool
    deduped: bool = False
    reason: str = ""
    rejected: bool = False


class PatternDeliverer:
    """Queues each pattern durably, then offers it to the memory service."""

    def __init__(self, outbox: Outbox, client: MemoryClient) -> None:
        self.outbox = outbox
        self.client = client
        self._lock = asyncio.Lock()
        # The code of the credentials refusal being reported, "" when none.
        # The replay meets the same refusal every interval: one error line per
        # episode says it; GetStatus and each queued run keep saying it.
        self._refused = ""

    async def deliver(self, pattern: memory_pb2.Pattern, remaining: float | None) -> Delivery:
        """Tries once to store a pattern already queued with its run."""
        self.outbox.queued(pattern.id)
        return await self._offer(pattern, remaining)

    async def _offer(self, pattern: memory_pb2.Pattern, remaining: float | None) -> Delivery:
        try:
            response = await self.client.store(pattern, remaining)
        except grpc.aio.AioRpcError as error:
            reason = f"{error.code().name}: {error.details()}"
            if error.code() in FINAL_CODES:
                # The memory service judged the pattern itself: retrying the
                # same bytes can never succeed. Anything else stays queued.
                log.error("pattern rejected", extra={"pattern_id": pattern.id, "reason": reason})
                await asyncio.to_thread(self.outbox.set_aside, pattern.id)
                return Delivery(stored=False, reason=reason, rejected=True)
            if error.code() in CREDENTIAL_CODES:
                reason = f"{reason} ({EXECUTOR_CREDENTIALS_HINT})"
                self._report_refusal(error.code(), pattern.id, reason)
            return Delivery(stored=False, reason=reason)
        except grpc.aio.UsageError as error:  # The channel closed under us (shutdown).
            return Delivery(stored=False, reason=f"memory channel closed: {error}")
        if self._refused:
            log.info("the memory service accepts the executor's token again")
            self._refused = ""
        await asyncio.to_thread(self.outbox.remove, pattern.id)
        return Delivery(stored=True, deduped=response.deduped)

    def _report_refusal(self, code: grpc.StatusCode, pattern_id: str, reason: str) -> None:
        """Logs a configuration problem: loudly once, then quietly while it lasts."""
        level = logging.DEBUG if self._refused == code.name else logging.ERROR
        self._refused = code.name
        log.log(
            level,
            "configuration problem: the memory service refused the executor's token "
            "(EXECUTOR_MEMORY_TOKEN); patterns stay queued until it is fixed",
            extra={"pattern_id": pattern_id, "reason": reason},
        )

    async def replay(self) -> int:
        """Offers every queued pattern in order; stops at the first failure."""
        async with self._lock:
            delivered = 0
            for pattern in await asyncio.to_thread(self.outbox.pending):
                outcome = await self._offer(pattern, None)
                if not outcome.stored:
                    break
                delivered += 1
            if delivered:
                log.info("outbox replayed", extra={"delivered": delivered})
            return delivered

    async def replay_forever(self, interval_seconds: float) -> None:
        """Replays the outbox at a fixed interval until cancelled."""
        while True:
            try:
                await self.replay()
            except Exception:
                log.exception("outbox replay failed")
            await asyncio.sleep(interval_seconds)
