"""Nothing about another user's SENSITIVE pattern leaks through a side channel.

Over a real memory service with authentication and encryption, on the
embedded store and on a real redis-server (where the audit log is the Redis
stream): the query words a search learns from (finding 13 of issue 10).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from executor_service.forms import to_form_value
from tests.integration.secured_memory import TEAM_A, SecuredMemory, secured_memory
from tests.redis_servers import RedisServer

SENSITIVE = common_pb2.CLASSIFICATION_SENSITIVE
INTERNAL = common_pb2.CLASSIFICATION_INTERNAL
# Words query understanding turns into a filter when they name a known
# template ("payroll export runs") or a numeric question ("headcount >= 10").
QUERY = "payroll export runs with headcount >= 10"


@pytest.fixture(params=["embedded", "redis"])
async def memory(
    request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str
) -> AsyncIterator[SecuredMemory]:
    overrides: dict[str, object] = {}
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        overrides = {"store": "redis", "redis_url": server.url, "redis_key_prefix": key_prefix}
    async with secured_memory(tmp_path, **overrides) as running:
        yield running


def payroll(pattern_id: str, classification: int) -> memory_pb2.StorePatternRequest:
    """A run of the payroll_export template that answered `headcount` with a number."""
    return memory_pb2.StorePatternRequest(
        namespace=TEAM_A,
        pattern=memory_pb2.Pattern(
            id=pattern_id,
            type=memory_pb2.PATTERN_TYPE_EXECUTION,
            template_id="payroll_export",
            content="the monthly payroll export",
            classification=classification,  # type: ignore[arg-type]
            form_responses={"headcount": to_form_value(12.0)},
        ),
        replace=True,
    )


async def plan_of(memory: SecuredMemory, user: str, query: str = QUERY) -> tuple[str, str]:
    """(applied_filter, applied_query) of a search by `user`."""
    response = await memory.stub().SearchPatterns(
        memory_pb2.SearchPatternsRequest(namespace=TEAM_A, query=query),
        metadata=memory.auth(user),
        timeout=10,
    )
    return response.applied_filter, response.applied_query


async def test_another_users_sensitive_words_never_shape_my_query(memory: SecuredMemory) -> None:
    stub = memory.stub()
    unknown = await plan_of(memory, "alice")
    assert unknown[0] == ""  # Nobody's data names these words yet.

    # Public at first: every reader's query learns its words.
    await stub.StorePattern(payroll("pay-1", INTERNAL), metadata=memory.auth("bob"), timeout=10)
    learned = await plan_of(memory, "alice")
    assert 'template_id = "payroll_export"' in learned[0]
    assert "form_responses.headcount >= 10" in learned[0]

    # Made SENSITIVE by its owner: alice's queries are as if it never existed,
    # bob's own still understand it.
    await stub.StorePattern(payroll("pay-1", SENSITIVE), metadata=memory.auth("bob"), timeout=10)
    assert await plan_of(memory, "alice") == unknown
    assert await plan_of(memory, "carol") == unknown
    assert await plan_of(memory, "bob") == learned

    # A public pattern deleted: the last one naming the words takes them along.
    await stub.StorePattern(payroll("pay-2", INTERNAL), metadata=memory.auth("alice"), timeout=10)
    assert await plan_of(memory, "carol") == learned
    await stub.DeletePattern(
        memory_pb2.DeletePatternRequest(namespace=TEAM_A, pattern_id="pay-2"),
        metadata=memory.auth("alice"),
        timeout=10,
    )
    assert await plan_of(memory, "carol") == unknown
