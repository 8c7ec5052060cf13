"""The CLI's connection to the executor, and how failures become exit codes.

Exit codes: 0 done, 1 the executor failed or is unreachable, 2 invalid
input (local or INVALID_ARGUMENT), 130 interrupted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import typer
from rich.console import Console
from rich.text import Text

from attune.executor.v1 import executor_pb2_grpc
from executor_service.cli_answers import AnswerError
from executor_service.cli_live import StreamEndedError
from executor_service.cli_render import violations_table
from memory_service.servicekit.errors import field_violations

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


@contextmanager
def connect(address: str) -> Iterator[executor_pb2_grpc.ExecutorServiceStub]:
    """A stub on a channel that is closed afterwards."""
    with grpc.insecure_channel(address) as channel:
        yield executor_pb2_grpc.ExecutorServiceStub(channel)


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
