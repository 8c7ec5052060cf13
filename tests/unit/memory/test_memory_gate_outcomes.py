"""The outcome the memory gate records for a call that never finishes normally."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from memory_service.access.audit import AuditAction, AuditRecord
from memory_service.rpc.gate import guarded
from memory_service.security.identity import Action, NoAuthentication, Principal


class RecordingAudit:
    """Keeps what the gate submits."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def submit(self, record: AuditRecord) -> None:
        self.records.append(record)


class CallContext:
    """What the gate reads of a grpc.aio servicer context."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


class HangingServicer:
    """A servicer whose one RPC waits until cancelled, as one waiting on a slow store would."""

    def __init__(self) -> None:
        self.authenticator = NoAuthentication()
        self.audit_log = RecordingAudit()
        self.denials = None
        self.started = asyncio.Event()

    @guarded(AuditAction.GET, Action.READ)
    async def GetPattern(self, request: Any, context: Any, principal: Principal) -> None:
        self.started.set()
        await asyncio.Event().wait()


class Request:
    namespace = "team-a"


async def test_a_call_its_caller_cancels_is_audited_as_cancelled_not_internal() -> None:
    servicer = HangingServicer()

    async def handle() -> None:
        await servicer.GetPattern(Request(), CallContext())

    call = asyncio.create_task(handle())
    await servicer.started.wait()
    call.cancel()  # What grpc.aio does to the handler when its caller cancels.
    await asyncio.wait({call})
    assert call.cancelled()
    (record,) = servicer.audit_log.records
    assert record.outcome == grpc.StatusCode.CANCELLED.name
    assert record.principal == "anonymous"
