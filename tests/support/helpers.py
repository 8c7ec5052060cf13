"""Small helpers for building requests and reading errors in tests."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import yaml
from google.rpc import error_details_pb2

from attune.executor.v1 import executor_pb2, executor_pb2_grpc
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.runs.forms import to_form_value
from memory_service.security.identity import hash_token
from memory_service.servicekit.errors import error_infos, field_violations

Answer = str | float | bool | list[str]
T = TypeVar("T")

# What python_package_publish resolves to when only package_name is given.
PUBLISH_DEFAULT_ANSWERS: dict[str, Answer] = {
    "package_name": "demo",
    "has_tests": True,
    "test_coverage_required": 80.0,
    "quality_checks": ["mypy", "ruff"],
    "version_bump": "patch",
    "publish_target": "testpypi",
    "create_git_tag": True,
    "update_changelog": True,
}


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    within: float = 10.0,
    interval: float = 0.02,
) -> T:
    """Polls probe() until accept(result) holds; fails after timeout.

    This waits on an observable condition with a deadline, for work a
    background task does on its own schedule.
    """
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if accept(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s; last: {result!r}")
        await asyncio.sleep(interval)


async def code_of(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status a call ends with (OK when it returns)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def run_request(**answers: Answer) -> executor_pb2.RunWorkflowRequest:
    """A python_package_publish run request with these answers."""
    return executor_pb2.RunWorkflowRequest(
        template_id="python_package_publish",
        answers={key: to_form_value(value) for key, value in answers.items()},
    )


async def run_to_end(
    stub: executor_pb2_grpc.ExecutorServiceAsyncStub, request: executor_pb2.RunWorkflowRequest
) -> list[executor_pb2.RunWorkflowResponse]:
    """Every event of a RunWorkflow stream."""
    return [event async for event in stub.RunWorkflow(request, timeout=30)]


async def store_insight(
    stub: memory_pb2_grpc.MemoryServiceAsyncStub, namespace: str, pattern_id: str, content: str
) -> memory_pb2.StorePatternResponse:
    """Stores a minimal insight pattern."""
    return await stub.StorePattern(
        memory_pb2.StorePatternRequest(
            namespace=namespace,
            pattern=memory_pb2.Pattern(
                id=pattern_id, type=memory_pb2.PATTERN_TYPE_INSIGHT, content=content
            ),
        ),
        timeout=5,
    )


# user id -> (role, namespaces), as a tokens file grants them.
Users = Mapping[str, tuple[str, Sequence[str]]]


def write_tokens_file(
    path: Path, users: Users, tokens: Mapping[str, str], delegates: Iterable[str] = ()
) -> Path:
    """A tokens file giving each user their role and namespaces, by their token's
    hash; `delegates` may act on behalf of others (`delegate: true`)."""
    delegating = set(delegates)
    entries = [
        {
            "token_sha256": hash_token(tokens[user]),
            "user_id": user,
            "role": role,
            "namespaces": list(namespaces),
            **({"delegate": True} if user in delegating else {}),
        }
        for user, (role, namespaces) in users.items()
    ]
    path.write_text(yaml.safe_dump(entries))
    return path


def violations_of(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The BadRequest field violations of an error, by field."""
    return dict(field_violations(error))


def loose_modes(root: Path) -> list[str]:
    """Every path under root (root too) that a group or other user may use."""
    loose = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            loose.append(f"{path} {stat.filemode(mode)}")
    return loose


class ManualClock:
    """A monotonic clock the test moves by hand (`clock.now += 5`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def error_info(error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The (first) google.rpc.ErrorInfo detail of an error; fails the test if none."""
    infos = error_infos(error)
    assert infos, f"no ErrorInfo in {error}"
    return infos[0]
