"""Requests whose bytes do not decode: INVALID_ARGUMENT on every RPC, a warning, an audit record.

gRPC parses a request before any handler runs; a parse failure used to leave
the server as UNKNOWN "Unexpected <class '...DecodeError'>" with an ERROR
traceback and no audit record. Every RPC of both services is taken from the
proto descriptors and sent corrupt bytes, a string field holding invalid
UTF-8, and groups nested deeper than protobuf's limit of 100.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from attune.memory.v1 import memory_pb2
from memory_service.servicekit.decoding import UNDECODABLE_REASON
from tests.support.proto_strategies import TOO_DEEP
from tests.support.secured_pair import (
    MEMORY,
    SecuredPair,
    every_method,
    length_delimited,
    method_path,
    secured_pair,
)

GARBAGE = b"\xff\xff\xff\xff\x0f\x00"


def bad_utf8(message: Descriptor, depth: int = 0) -> bytes | None:
    """The message with its first string field (searched depth-first) holding invalid UTF-8."""
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            return length_delimited(field.number, b"ok \xc3\x28 bad")
    for field in message.fields:
        if field.message_type is not None and depth < 4:
            inner = bad_utf8(field.message_type, depth + 1)
            if inner is not None:
                return length_delimited(field.number, inner)
    return None


def undecodable_bodies(method: MethodDescriptor) -> dict[str, bytes]:
    bodies = {"garbage": GARBAGE, "too deep": TOO_DEEP}
    if (utf8 := bad_utf8(method.input_type)) is not None:
        bodies["bad utf-8"] = utf8
    return bodies


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[SecuredPair]:
    async with secured_pair(tmp_path) as running:
        yield running


def _assert_clean_refusal(error: grpc.aio.AioRpcError, method: MethodDescriptor) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method.full_name, error)
    text = error.details() or ""
    for leak in ("DecodeError", "class", "Traceback"):
        assert leak not in text
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    kinds = {detail.TypeName() for detail in status.details}
    assert kinds == {"google.rpc.BadRequest", "google.rpc.ErrorInfo"}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.reason == UNDECODABLE_REASON
            assert info.metadata["method"] == method_path(method).lstrip("/")


async def test_every_rpc_answers_undecodable_bytes_with_invalid_argument(
    pair: SecuredPair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    memory_calls = 0
    for method in every_method():
        for kind, body in undecodable_bodies(method).items():
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await pair.call(method, body, pair.auth("root"))
            _assert_clean_refusal(raised.value, method)
            memory_calls += method.containing_service is MEMORY
            assert kind  # Named for the failure message of pytest's rewrite.

    # A warning per call, never an ERROR or a traceback (gRPC's own logger included).
    warnings = [r for r in caplog.records if r.getMessage() == "undecodable request"]
    assert len(warnings) == sum(len(undecodable_bodies(m)) for m in every_method())
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in warnings)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    # Audited on the memory service: one DENIED record per call, naming the caller.
    listed = await pair.memory.stub().ListAuditEvents(
        memory_pb2.ListAuditEventsRequest(
            filter='action = "DENIED" AND outcome = "INVALID_ARGUMENT"', page_size=1000
        ),
        metadata=pair.auth("root"),
        timeout=10,
    )
    assert len(listed.events) == memory_calls
    assert {event.principal for event in listed.events} == {"root"}


async def test_an_undecodable_call_without_a_valid_token_is_audited_without_a_principal(
    pair: SecuredPair,
) -> None:
    method = MEMORY.methods_by_name["StorePattern"]
    for metadata in ((), (("authorization", "Bearer not-a-known-token"),)):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pair.call(method, GARBAGE, metadata)
        _assert_clean_refusal(raised.value, method)
    listed = await pair.memory.stub().ListAuditEvents(
        memory_pb2.ListAuditEventsRequest(filter='outcome = "INVALID_ARGUMENT"'),
        metadata=pair.auth("root"),
        timeout=10,
    )
    assert [event.principal for event in listed.events] == ["", ""]
