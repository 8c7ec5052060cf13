"""Unknown protobuf fields never reach the pipeline, the store or a reader.

A client can append any field number to a message; the server used to keep
such fields on the parsed request, store them with the pattern (past the
secret scan, the PII scrub and the content limit) and serve them back. The
requests here are hand-built bytes sent over a raw channel, and what comes
back is read as bytes, so nothing on the client side drops the field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from attune.memory.v1 import memory_pb2
from tests.support.secured_memory import TEAM_A
from tests.support.secured_pair import (
    MEMORY,
    SecuredPair,
    length_delimited,
    secured_pair,
)

AWS_KEY = b"AKIAZ7Q4M2W8R5T1Y6UX"
EMAIL = b"victim.person@example.org"
SSN = b"078-05-1120"
SECRET = b"aws_secret " + AWS_KEY + b" mail " + EMAIL + b" ssn " + SSN
UNKNOWN_FIELD = 999
CONTENT_LIMIT = 256 * 1024


def with_unknown(message: bytes, payload: bytes, number: int = UNKNOWN_FIELD) -> bytes:
    """The serialized message with a length-delimited field `number` appended."""
    return message + length_delimited(number, payload)


def store_request(pattern_id: str, payload: bytes, outer: bool = True) -> bytes:
    """A StorePattern request whose pattern (and, if `outer`, the request) carry `payload`."""
    pattern = memory_pb2.Pattern(
        id=pattern_id,
        type=memory_pb2.PATTERN_TYPE_INSIGHT,
        content="retry flaky uploads with backoff",
        tags=["uploads"],
    )
    request = memory_pb2.StorePatternRequest(namespace=TEAM_A)
    body = request.SerializeToString()
    if outer:
        body = with_unknown(body, payload, UNKNOWN_FIELD + 1)
    pattern_bytes = with_unknown(pattern.SerializeToString(), payload)
    return body + length_delimited(2, pattern_bytes)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[SecuredPair]:
    async with secured_pair(tmp_path) as running:
        yield running


async def _reads(pair: SecuredPair, pattern_id: str) -> dict[str, bytes]:
    """Every read of the pattern, as the bytes the server sent."""
    requests = {
        "GetPattern": memory_pb2.GetPatternRequest(namespace=TEAM_A, pattern_id=pattern_id),
        "ListPatterns": memory_pb2.ListPatternsRequest(namespace=TEAM_A),
        "SearchPatterns": memory_pb2.SearchPatternsRequest(namespace=TEAM_A, query="uploads"),
    }
    reads = {}
    for name, request in requests.items():
        (answer,) = await pair.call(
            MEMORY.methods_by_name[name], request.SerializeToString(), pair.auth("carol")
        )
        reads[name] = answer
    return reads


def _data_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


async def test_an_unknown_field_holding_a_secret_and_pii_is_never_stored_or_served(
    pair: SecuredPair,
) -> None:
    store = MEMORY.methods_by_name["StorePattern"]
    (stored,) = await pair.call(store, store_request("p-unknown", SECRET), pair.auth("alice"))
    assert SECRET not in stored
    assert memory_pb2.StorePatternResponse.FromString(stored).pattern.id == "p-unknown"

    reads = await _reads(pair, "p-unknown")
    assert b"p-unknown" in reads["SearchPatterns"]  # The pattern itself is there.
    for name, answer in reads.items():
        for value in (AWS_KEY, EMAIL, SSN):
            assert value not in answer, name

    await pair.memory.stack.stop_memory()  # Checkpoints the store: every byte on disk.
    for path in _data_files(pair.memory.stack.root / "memory"):
        data = path.read_bytes()
        for value in (AWS_KEY, EMAIL, SSN):
            assert value not in data, path


async def test_a_huge_unknown_field_does_not_bypass_the_content_limit(pair: SecuredPair) -> None:
    store = MEMORY.methods_by_name["StorePattern"]
    filler = b"z" * (6 * 1024 * 1024)
    await pair.call(
        store, store_request("p-huge", filler, outer=False), pair.auth("alice"), deadline=30
    )

    reads = await _reads(pair, "p-huge")
    assert b"p-huge" in reads["GetPattern"]
    assert all(len(answer) < CONTENT_LIMIT for answer in reads.values())
    await pair.memory.stack.stop_memory()
    on_disk = sum(path.stat().st_size for path in _data_files(pair.memory.stack.root / "memory"))
    assert on_disk < 2 * 1024 * 1024
