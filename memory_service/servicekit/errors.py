"""Errors with precise gRPC status codes and google.rpc details.

Domain code raises `ServiceError`; the server interceptor turns it into a
status with details, so no servicer hand-builds trailers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


class ServiceError(Exception):
    """An error meant for the client: a status code, a message, details."""

    def __init__(
        self, code: grpc.StatusCode, message: str, details: Sequence[Message] = ()
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = tuple(details)

    def to_status(self) -> grpc.Status:
        """The rich status carrying this error's details."""
        packed = []
        for detail in self.details:
            holder = any_pb2.Any()
            holder.Pack(detail)
            packed.append(holder)
        proto = status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)
        status: grpc.Status = rpc_status.to_status(proto)
        return status


MAX_VIOLATIONS = 50  # Error trailers are capped (16 KiB): report this many at most.
# A status code's name by its number (google.rpc.Code), as statuses and spans carry it.
CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def invalid_argument(violations: Iterable[tuple[str, str]], summary: str = "") -> ServiceError:
    """INVALID_ARGUMENT with a BadRequest detail listing every (field, description).

    Beyond MAX_VIOLATIONS, the rest are counted in one last violation.
    """
    pairs = list(violations)
    if len(pairs) > MAX_VIOLATIONS:
        extra = len(pairs) - MAX_VIOLATIONS + 1
        pairs = [*pairs[: MAX_VIOLATIONS - 1], ("", f"and {extra} more problems")]
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in pairs
        ]
    )
    # The message is a short summary; the details carry every violation.
    shown = "; ".join(f"{field}: {description}" for field, description in pairs[:3])
    more = f" (and {len(pairs) - 3} more)" if len(pairs) > 3 else ""
    text = summary or (shown[:500] + more)
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, text, [bad_request])


def not_found(resource_type: str, resource_name: str, message: str = "") -> ServiceError:
    """NOT_FOUND with a ResourceInfo detail (names are clipped, never echoed whole)."""
    if len(resource_name) > 200:
        resource_name = resource_name[:199] + "…"
    info = error_details_pb2.ResourceInfo(resource_type=resource_type, resource_name=resource_name)
    return ServiceError(
        grpc.StatusCode.NOT_FOUND, message or f"{resource_type} {resource_name!r} not found", [info]
    )


def unavailable(message: str, retry_after_seconds: float | None = None) -> ServiceError:
    """UNAVAILABLE, with a RetryInfo detail when a retry delay is known."""
    details: list[Message] = []
    if retry_after_seconds is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(retry_after_seconds * 1e9))
        details.append(retry)
    return ServiceError(grpc.StatusCode.UNAVAILABLE, message, details)


def field_violations(error: grpc.aio.AioRpcError | grpc.RpcError) -> list[tuple[str, str]]:
    """The BadRequest field violations carried by a received error, if any."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return []
    found: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found


def error_infos(error: grpc.aio.AioRpcError | grpc.RpcError) -> list[error_details_pb2.ErrorInfo]:
    """The google.rpc.ErrorInfo details carried by a received error, if any."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return []
    infos: list[error_details_pb2.ErrorInfo] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    return infos


def error_reasons(error: grpc.aio.AioRpcError | grpc.RpcError) -> list[str]:
    """The ErrorInfo reasons carried by a received error, if any."""
    return [info.reason for info in error_infos(error)]
