"""Request decoding every handler relies on: known fields only, and no crash on bad bytes.

gRPC parses a request before any handler or interceptor code runs, and a
parse failure there surfaces as UNKNOWN with the exception's class name and
an ERROR traceback. The interceptor swaps each handler's deserializer for
`tolerant(...)`: bytes that do not parse become an `Undecodable` marker the
wrapped handler answers with INVALID_ARGUMENT, and a message that parses has
its unknown fields dropped (recursively) before anything reads, validates,
stores or echoes it, so fields this server does not know cannot slip past
the pipeline (and its size limits) on their way to disk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2

from memory_service.servicekit.errors import ServiceError, invalid_argument

Deserializer = Callable[[bytes], Any]
# Told of every undecodable call, with the method and its context (metadata, peer).
UndecodableHook = Callable[[str, grpc.aio.ServicerContext[Any, Any]], None]

ERROR_DOMAIN = "attune"
UNDECODABLE_REASON = "UNDECODABLE_REQUEST"


class Undecodable:
    """Stands in for a request whose bytes are not a valid message of its type."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


def tolerant(deserializer: Deserializer) -> Deserializer:
    """`deserializer`, returning `Undecodable` instead of raising and dropping unknown fields."""

    def parse(data: bytes) -> Any:
        try:
            request = deserializer(data)
        except DecodeError:
            # Garbage, invalid UTF-8 in a string field, nesting past the limit.
            return Undecodable(len(data))
        if isinstance(request, Message):
            request.DiscardUnknownFields()
        return request

    return parse


def undecodable_error(method: str) -> ServiceError:
    """INVALID_ARGUMENT for an undecodable request: BadRequest and ErrorInfo, no internals."""
    error = invalid_argument(
        [("", "the request bytes are not a valid protobuf message of the request type")],
        summary=f"undecodable request for {method.lstrip('/')}: not a valid protobuf message "
        "of its request type (corrupt bytes, invalid UTF-8 in a string field, or nesting "
        "deeper than 100 levels)",
    )
    info = error_details_pb2.ErrorInfo(
        reason=UNDECODABLE_REASON, domain=ERROR_DOMAIN, metadata={"method": method.lstrip("/")}
    )
    return ServiceError(error.code, error.message, [*error.details, info])
