"""Options and helpers the `attune` commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from executor_service.cli.answers import FormValue, collect_answers, load_answers_file
from executor_service.cli.prompt import ask_answers

DEFAULT_ADDRESS = "127.0.0.1:50051"

Address = Annotated[
    str,
    typer.Option("--address", envvar="ATTUNE_EXECUTOR_ADDRESS", help="The executor's host:port."),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="ATTUNE_TOKEN",
        show_default=False,
        help=(
            "Your bearer token for the executor, sent as 'authorization: Bearer <token>': it "
            "authenticates you to the executor, whose tokens file gives you a role (viewer, "
            "runner or admin). Prefer ATTUNE_TOKEN: an option shows in shell history and ps."
        ),
    ),
]
TlsCa = Annotated[
    Path | None,
    typer.Option(
        "--tls-ca",
        envvar="ATTUNE_TLS_CA",
        show_default=False,
        help="Connect over TLS, trusting the CAs in this PEM file to sign the executor's "
        "certificate.",
    ),
]
TlsCert = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert",
        envvar="ATTUNE_TLS_CERT",
        show_default=False,
        help="Your client certificate (PEM), for an executor that requires mutual TLS.",
    ),
]
TlsKey = Annotated[
    Path | None,
    typer.Option(
        "--tls-key",
        envvar="ATTUNE_TLS_KEY",
        show_default=False,
        help="The private key (PEM) of --tls-cert.",
    ),
]
TlsServerName = Annotated[
    str | None,
    typer.Option(
        "--tls-server-name",
        envvar="ATTUNE_TLS_SERVER_NAME",
        show_default=False,
        help="The name the executor's certificate must carry, if not the host in --address.",
    ),
]
Timeout = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Deadline of each call, in seconds.")
]
ExecutorMetrics = Annotated[
    str | None,
    typer.Option(
        "--executor-metrics",
        envvar="ATTUNE_EXECUTOR_METRICS_URL",
        show_default=False,
        help="The executor's metrics endpoint (EXECUTOR_METRICS_PORT), a URL or host:port.",
    ),
]
MemoryMetrics = Annotated[
    str | None,
    typer.Option(
        "--memory-metrics",
        envvar="ATTUNE_MEMORY_METRICS_URL",
        show_default=False,
        help="A memory replica's metrics endpoint (MEMORY_METRICS_PORT), a URL or host:port.",
    ),
]
TemplateId = Annotated[str, typer.Argument(help="The template id, e.g. python_package_publish.")]
Answers = Annotated[
    list[str] | None,
    typer.Option("--answer", "-a", metavar="QUESTION=VALUE", help="An answer; repeat for more."),
]
AnswersFile = Annotated[
    Path | None,
    typer.Option("--answers-file", help="A JSON or YAML mapping of answers; --answer wins."),
]
Interactive = Annotated[
    bool, typer.Option("--interactive", "-i", help="Ask each question not answered already.")
]


def resolve_cli_answers(
    stub: executor_pb2_grpc.ExecutorServiceStub,
    template_id: str,
    assignments: list[str] | None,
    answers_file: Path | None,
    interactive: bool,
    timeout: float,
    console: Console,
) -> dict[str, FormValue]:
    """The answers typed by the template's form (fetched for that), asked for if interactive."""
    template = stub.GetTemplate(
        executor_pb2.GetTemplateRequest(template_id=template_id), timeout=timeout
    ).template
    file_values = load_answers_file(answers_file) if answers_file else {}
    given = collect_answers(template.questions, file_values, assignments or [])
    if interactive:
        return ask_answers(template.questions, given, console)
    return given
