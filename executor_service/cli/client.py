"""The CLI's connection to the executor, and how failures become exit codes.

Exit codes: 0 done, 1 the executor failed or is unreachable, 2 invalid
input (local or INVALID_ARGUMENT), 130 interrupted.

With a token (--token or ATTUNE_TOKEN), every call carries
`authorization: Bearer <token>`: it authenticates the caller to the
executor (EXECUTOR_TOKENS_FILE). The token is never printed, not even when
malformed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import typer
from rich.console import Console
from rich.text import Text

from attune.executor.v1 import executor_pb2_grpc
from executor_service.cli.answers import AnswerError
from executor_service.cli.live import StreamEndedError
from executor_service.cli.render import violations_table
from memory_service.security.identity import bearer_token
from memory_service.servicekit.errors import ServiceError, field_violations
from memory_service.servicekit.tls import ClientTls

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


class TokenError(ValueError):
    """A --token (or ATTUNE_TOKEN) no server could accept; the message omits it."""


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    # A concrete ClientCallDetails: gRPC's is abstract, and interceptors
    # hand on a changed copy rather than mutate the one they were given.
    method: str
    timeout: float | None
    metadata: tuple[tuple[str, str | bytes], ...] | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call on the channel.

    An interceptor rather than a metadata argument at each call site, so no
    command (present or future) can forget it. Call credentials would need
    TLS, which a development executor on loopback does not speak.
    """

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        return _CallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=(*(details.metadata or ()), self._header),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
            compression=details.compression,
        )

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        return continuation(self._details(client_call_details), request)


def checked_token(token: str) -> str:
    """The token without surrounding whitespace; TokenError if it cannot be sent.

    Checked with the memory service's own header parser, before anything is
    sent: a malformed token would otherwise fail inside gRPC or come back as
    an UNAUTHENTICATED that hides the real mistake.
    """
    token = token.strip()
    if not token:
        raise TokenError("the token is empty")
    try:
        bearer_token((("authorization", f"Bearer {token}"),))
    except ServiceError as error:
        raise TokenError(error.message) from None
    return token


class _Transport:
    # Set once per invocation by the top-level --tls-* options, before any
    # command connects; None is plaintext.
    tls: ClientTls | None = None


def use_tls(tls: ClientTls | None) -> None:
    """Every later `connect` uses this TLS (None: plaintext)."""
    _Transport.tls = tls


def _channel(address: str) -> grpc.Channel:
    tls = _Transport.tls
    if tls is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, tls.credentials(), options=tls.options())


@contextmanager
def connect(
    address: str, token: str | None = None
) -> Iterator[executor_pb2_grpc.ExecutorServiceStub]:
    """A stub on a channel that is closed afterwards; every call carries the token, if any."""
    header = checked_token(token) if token is not None else None
    with _channel(address) as channel:
        calls = grpc.intercept_channel(channel, _BearerToken(header)) if header else channel
        yield executor_pb2_grpc.ExecutorServiceStub(calls)


def _report_rpc_error(
    error: grpc.RpcError, address: str, field_label: str, console: Console
) -> int:
    """Prints the error readably; returns the exit code."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        violations = field_violations(error)
        console.print(Text("INVALID_ARGUMENT: the executor rejected the request", style="red"))
        if violations:
            console.print(violations_table(violations, field_label))
        else:
            console.print(details)
        return EXIT_INVALID
    if code == grpc.StatusCode.UNAUTHENTICATED:
        console.print(Text(f"{code.name}: {details}", style="red"), soft_wrap=True)
        console.print("pass a valid token with --token or in the ATTUNE_TOKEN variable")
        return EXIT_FAILED
    if code == grpc.StatusCode.UNAVAILABLE:
        console.print(
            Text(f"the executor is unreachable at {address}: {details}", style="red"),
            soft_wrap=True,
        )
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        console.print(
            Text(
                f"DEADLINE_EXCEEDED: no answer in time from the executor at {address}", style="red"
            )
        )
    else:
        console.print(Text(f"{code.name}: {details}", style="red"), soft_wrap=True)
    return EXIT_FAILED


@contextmanager
def reported_failures(
    address: str, console: Console, field_label: str = "field", interrupted: str = "interrupted"
) -> Iterator[None]:
    """Turns expected failures into a message on stderr and an exit code: no traceback."""
    try:
        yield
    except AnswerError as error:
        console.print(Text("invalid answers (nothing was sent)", style="red"))
        console.print(violations_table(error.violations, "question"))
        raise typer.Exit(EXIT_INVALID) from None
    except TokenError as error:
        message = f"invalid --token / ATTUNE_TOKEN (nothing was sent): {error}"
        console.print(Text(message, style="red"))
        raise typer.Exit(EXIT_INVALID) from None
    except grpc.RpcError as error:
        raise typer.Exit(_report_rpc_error(error, address, field_label, console)) from None
    except StreamEndedError as error:
        console.print(Text(str(error), style="red"))
        raise typer.Exit(EXIT_FAILED) from None
    except EOFError:
        console.print(Text("input ended before every question was answered", style="red"))
        raise typer.Exit(EXIT_INVALID) from None
    except KeyboardInterrupt:
        console.print(Text(interrupted, style="red"))
        raise typer.Exit(EXIT_INTERRUPTED) from None
