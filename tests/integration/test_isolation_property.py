"""No filter escapes a namespace or reveals another user's SENSITIVE pattern.

A real memory service process with authentication and encryption on holds
patterns of two namespaces and of several owners, SENSITIVE ones included.
Hypothesis draws random filters (the generator of the SQL-filter property
test); for each filter and caller, ListPatterns, CountPatterns and
SearchPatterns must return exactly the patterns the Python matcher picks out
of those the caller may see: the namespace's non-SENSITIVE patterns and the
caller's own SENSITIVE ones.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2, memory_pb2_grpc
from executor_service.dev.stack import memory_process
from memory_service.search.filter import FilterError, Node, check_filter, matches, to_text
from memory_service.search.schema import PATTERN_SCHEMA, pattern_record
from memory_service.security.crypto import generate_key
from tests.support.helpers import write_tokens_file
from tests.support.secured_memory import TEAM_A, TEAM_B, USERS
from tests.unit.memory.test_sql_filter import trees

SENSITIVE = common_pb2.CLASSIFICATION_SENSITIVE
VIEWERS = ("alice", "bob", "root")
# (namespace, writer, id, content, classification, success, cost)
SEED = [
    (TEAM_A, "alice", "a-internal", "mypy premium demo run", 0, True, 0.5),
    (TEAM_A, "alice", "a-sensitive", "confidential mypy demo", SENSITIVE, True, 2.0),
    (TEAM_A, "bob", "b-sensitive", "confidential ruff premium", SENSITIVE, False, 1.0),
    (TEAM_A, "bob", "b-public", "ruff cheap demo", common_pb2.CLASSIFICATION_PUBLIC, False, 0.1),
    (TEAM_B, "root", "other-ns", "mypy premium demo run", 0, True, 0.5),
    (TEAM_B, "root", "other-sensitive", "confidential mypy", SENSITIVE, True, 80.0),
]


class Service:
    def __init__(self, stub: memory_pb2_grpc.MemoryServiceStub, tokens: dict[str, str]) -> None:
        self.stub = stub
        self.tokens = tokens
        self.stored: list[memory_pb2.Pattern] = []

    def auth(self, user: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[user]}"),)

    def visible(self, viewer: str) -> list[memory_pb2.Pattern]:
        return [
            p
            for p in self.stored
            if p.namespace == TEAM_A and (p.classification != SENSITIVE or p.owner == viewer)
        ]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root: Path = tmp_path_factory.mktemp("isolation")
    tokens = {user: secrets.token_urlsafe(24) for user in USERS}
    write_tokens_file(root / "tokens.yaml", USERS, tokens)
    process = memory_process(
        root,
        settings={
            "TOKENS_FILE": str(root / "tokens.yaml"),
            "ENCRYPTION_KEYS": f"k1:{generate_key()}",
        },
    ).start()
    try:
        with grpc.insecure_channel(process.address) as channel:
            running = Service(memory_pb2_grpc.MemoryServiceStub(channel), tokens)
            for namespace, writer, pattern_id, content, classification, success, cost in SEED:
                pattern = memory_pb2.Pattern(
                    id=pattern_id,
                    type=memory_pb2.PATTERN_TYPE_EXECUTION,
                    content=content,
                    classification=classification,  # type: ignore[arg-type]
                    success=success,
                    total_cost_usd=cost,
                    template_id="demo",
                    tags=["mypy", "demo"],
                )
                pattern.agents.add(role="test_runner", tier=common_pb2.TIER_PREMIUM, success=True)
                response = running.stub.StorePattern(
                    memory_pb2.StorePatternRequest(namespace=namespace, pattern=pattern),
                    metadata=running.auth(writer),
                    timeout=10,
                )
                running.stored.append(response.pattern)
            yield running
    finally:
        process.terminate()


def _expected(service: Service, viewer: str, tree: Node) -> set[str]:
    return {
        p.id for p in service.visible(viewer) if matches(tree, pattern_record(p), PATTERN_SCHEMA)
    }


@given(tree=trees, viewer=st.sampled_from(VIEWERS))
@settings(
    max_examples=300,  # About a third of random filters type-check; the rest return early.
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_random_filters_stay_inside_the_namespace_and_the_owner(
    service: Service, tree: Node, viewer: str
) -> None:
    try:
        check_filter(tree, PATTERN_SCHEMA)
    except FilterError:
        return
    text = to_text(tree)
    expected = _expected(service, viewer, tree)
    metadata = service.auth(viewer)
    listed = service.stub.ListPatterns(
        memory_pb2.ListPatternsRequest(namespace=TEAM_A, filter=text), metadata=metadata, timeout=10
    )
    assert {p.id for p in listed.patterns} == expected, text
    counted = service.stub.CountPatterns(
        memory_pb2.CountPatternsRequest(namespace=TEAM_A, filter=text),
        metadata=metadata,
        timeout=10,
    )
    assert counted.total_count == len(expected), text
    found = service.stub.SearchPatterns(
        memory_pb2.SearchPatternsRequest(
            namespace=TEAM_A, filter=text, page_size=100, disable_query_understanding=True
        ),
        metadata=metadata,
        timeout=10,
    )
    assert {r.pattern.id for r in found.results} == expected, text
    worded = service.stub.SearchPatterns(
        memory_pb2.SearchPatternsRequest(
            namespace=TEAM_A, query="mypy", filter=text, page_size=100
        ),
        metadata=metadata,
        timeout=10,
    )
    assert all(r.pattern.id in expected for r in worded.results), text


def test_the_seed_is_what_the_property_relies_on(service: Service) -> None:
    owners = {p.id: p.owner for p in service.stored if p.classification == SENSITIVE}
    assert owners == {
        "a-sensitive": "alice",
        "b-sensitive": "bob",
        "other-sensitive": "root",
    }
    assert {p.id for p in service.visible("alice")} == {"a-internal", "a-sensitive", "b-public"}
