"""Redis servers for integration tests: started once per module, on free ports.

Tests share a module's servers but never each other's keys: each test asks
for `key_prefix`, a fresh prefix for every key its stores write.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.redis_servers import REDIS_CLI, REDIS_SERVER, RedisCluster, RedisServer, cluster
from tests.support.secured_memory import SecuredMemory, secured_memory


def _require_redis() -> None:
    missing = [tool for tool in (REDIS_SERVER, REDIS_CLI) if not os.access(tool, os.X_OK)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: `make test` installs redis-server and "
            "redis-tools when run as root; otherwise install them (apt-get install "
            "redis-server redis-tools)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A standalone redis-server with append-only persistence, for the module."""
    _require_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent=True)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A three-master Redis Cluster, for the module."""
    _require_redis()
    with cluster(tmp_path_factory.mktemp("redis-cluster")) as running:
        yield running


@pytest.fixture
def key_prefix() -> str:
    """A prefix for every Redis key of one test, so tests never see each other's data."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["embedded", "redis"])
async def secured_memory_each_backend(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str
) -> AsyncIterator[SecuredMemory]:
    """A secured memory service on the embedded store, then on a real redis-server."""
    overrides: dict[str, object] = {}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        overrides = {"store": "redis", "redis_url": server.url, "redis_key_prefix": key_prefix}
    async with secured_memory(tmp_path, **overrides) as running:
        yield running
