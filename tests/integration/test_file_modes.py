"""Every file either service writes is its owner's only (issue 10, finding 14).

The servers run in this process, which never passes through an entry point
(where the umask is set), under the common umask 022: the modes come from
the code that creates each file and directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attune.memory.v1 import memory_pb2
from tests.support.helpers import loose_modes, run_request, run_to_end
from tests.support.redis_servers import RedisServer
from tests.support.stack import Stack


def names(root: Path) -> set[str]:
    return {path.name for path in root.rglob("*")}


@pytest.mark.usefixtures("common_umask")
async def test_both_services_write_owner_only_files(tmp_path: Path) -> None:
    # Directories the services make themselves, parents included.
    stack = Stack(
        tmp_path / "data",
        memory_overrides={"port_file": tmp_path / "data" / "ports" / "memory.port"},
        executor_overrides={
            "port_file": tmp_path / "data" / "ports" / "executor.port",
            "outbox_replay_interval_seconds": 60.0,
        },
    )
    await stack.start_memory()
    await stack.start_executor()
    try:
        executor = stack.executor_stub()
        memory = stack.memory_stub()
        await run_to_end(executor, run_request(package_name="demo for alice@example.com"))
        # SENSITIVE: its pattern goes to the local index's sensitive half.
        await run_to_end(executor, run_request(package_name="confidential payroll tool"))
        await memory.SetContext(
            memory_pb2.SetContextRequest(
                namespace="default", session_id="s1", key="contact", value="bob@example.com"
            ),
            timeout=5,
        )
        # While the stores are open, their -wal and -shm files are there too.
        open_now = names(tmp_path / "data")
        assert {"patterns.sqlite3-wal", "patterns.sqlite3-shm", "open.sqlite3-wal"} <= open_now
        assert loose_modes(tmp_path / "data") == []
        # With the memory service gone, a run's pattern waits in its run directory.
        await stack.stop_memory()
        await run_to_end(executor, run_request(package_name="queued"))
    finally:
        await stack.close()
    written = names(tmp_path / "data")
    expected = {
        "patterns.sqlite3",
        "audit.log",
        "result.json",
        "report.md",
        "config.json",
        "form_responses.json",
        "pattern.pending.pb",
        "open.sqlite3",
        "sensitive.sqlite3",
        "memory.port",
        "executor.port",
    }
    assert expected <= written, expected - written
    assert loose_modes(tmp_path / "data") == []


@pytest.mark.usefixtures("common_umask")
async def test_the_redis_replicas_search_cache_is_owner_only(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str
) -> None:
    stack = Stack(
        tmp_path / "data",
        memory_overrides={
            "store": "redis",
            "redis_url": redis_server.url,
            "redis_key_prefix": key_prefix,
        },
    )
    await stack.start_memory()
    try:
        await stack.memory_stub().StorePattern(
            memory_pb2.StorePatternRequest(
                namespace="default",
                pattern=memory_pb2.Pattern(
                    id="p1", type=memory_pb2.PATTERN_TYPE_INSIGHT, content="reach carol"
                ),
            ),
            timeout=5,
        )
    finally:
        await stack.close()
    assert "redis-index.sqlite3" in names(tmp_path / "data")
    assert loose_modes(tmp_path / "data") == []
