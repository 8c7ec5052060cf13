"""The security pipeline on every write, over a real server: secrets, PII,
classification, ownership, retention and promotion."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from tests.support.helpers import eventually, violations_of
from tests.support.secured_memory import TEAM_A, SecuredMemory, insight, secured_memory
from tests.unit.executor.test_pii import SCRUBBED
from tests.unit.executor.test_secrets import SAMPLES

RUN_ID = "python_package_publish-20260117-052959"
DAY = 86400.0


@pytest.fixture
async def memory(tmp_path: Path) -> AsyncIterator[SecuredMemory]:
    async with secured_memory(tmp_path) as running:
        yield running


@pytest.mark.parametrize("kind", sorted(SAMPLES))
async def test_a_secret_is_refused_named_and_never_echoed(memory: SecuredMemory, kind: str) -> None:
    secret, text = SAMPLES[kind]
    stub, alice = memory.stub(), memory.auth("alice")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.StorePattern(insight("leaky", f"Notes: {text}"), metadata=alice)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations_of(error) == {
        "pattern.content": f"contains a {kind}; secrets are never stored (value not shown)"
    }
    shown = (error.details() or "") + repr(error.trailing_metadata())
    assert secret not in shown
    assert secret[:12] not in shown
    missing = await stub.CountPatterns(
        memory_pb2.CountPatternsRequest(namespace=TEAM_A), metadata=alice
    )
    assert missing.total_count == 0, "nothing is stored"


async def test_a_secret_in_a_form_answer_names_the_answer(memory: SecuredMemory) -> None:
    _secret, text = SAMPLES["github_token"]
    request = insight("leaky", "clean content")
    request.pattern.form_responses["notes"].string_value = text
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await memory.stub().StorePattern(request, metadata=memory.auth("alice"))
    assert list(violations_of(caught.value)) == ["pattern.form_responses.notes"]


async def test_one_secret_in_a_batch_fails_only_its_item(memory: SecuredMemory) -> None:
    _, text = SAMPLES["stripe_key"]
    response = await memory.stub().BatchStorePatterns(
        memory_pb2.BatchStorePatternsRequest(
            requests=[insight("fine", "clean"), insight("leaky", text)]
        ),
        metadata=memory.auth("alice"),
    )
    assert [r.code for r in response.results] == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert "requests[1].pattern.content" in response.results[1].message


async def test_pii_is_scrubbed_counted_and_identifiers_kept(memory: SecuredMemory) -> None:
    content = " ".join(text for _, text, _ in SCRUBBED) + f" Run {RUN_ID} finished."
    request = insight("with-pii", content, run_id=RUN_ID)
    response = await memory.stub().StorePattern(request, metadata=memory.auth("alice"))
    expected: dict[str, int] = {}
    for kind, _, _ in SCRUBBED:
        expected[kind] = expected.get(kind, 0) + 1
    assert {s.kind: s.count for s in response.scrubbed} == expected
    stored = response.pattern.content
    for _, text, scrubbed in SCRUBBED:
        assert scrubbed in stored
        assert text not in stored
    assert RUN_ID in stored
    assert response.pattern.run_id == RUN_ID
    read = await memory.stub().GetPattern(
        memory_pb2.GetPatternRequest(namespace=TEAM_A, pattern_id="with-pii"),
        metadata=memory.auth("alice"),
    )
    assert read.pattern.content == stored


async def test_classification_owner_and_retention_are_set_on_write(
    memory: SecuredMemory,
) -> None:
    stub, alice = memory.stub(), memory.auth("alice")
    cases = [
        (insight("auto-internal", "tests passed"), common_pb2.CLASSIFICATION_INTERNAL, 180),
        (
            insight("auto-sensitive", "the patient's medical record was attached"),
            common_pb2.CLASSIFICATION_SENSITIVE,
            90,
        ),
        (
            insight("explicit-public", "medical", classification=common_pb2.CLASSIFICATION_PUBLIC),
            common_pb2.CLASSIFICATION_PUBLIC,
            365,
        ),
    ]
    for request, classification, days in cases:
        stored = (await stub.StorePattern(request, metadata=alice)).pattern
        assert stored.classification == classification, request.pattern.id
        assert stored.owner == "alice"
        lifetime = stored.expire_time.ToSeconds() - stored.store_time.ToSeconds()
        assert abs(lifetime - days * DAY) < 5, request.pattern.id
    pinned = insight("pinned", "keep me forever", pinned=True)
    stored = (await stub.StorePattern(pinned, metadata=alice)).pattern
    assert not stored.HasField("expire_time")


async def test_the_same_write_again_is_deduped_after_the_pipeline(memory: SecuredMemory) -> None:
    stub, alice = memory.stub(), memory.auth("alice")
    request = insight("twice", "mail ops@example.com about 203.0.113.42")
    first = await stub.StorePattern(request, metadata=alice)
    again = await stub.StorePattern(request, metadata=alice)
    assert not first.deduped
    assert again.deduped
    assert again.pattern.content == first.pattern.content


async def test_promotion_passes_the_same_pipeline(memory: SecuredMemory) -> None:
    # A secret never reaches the context (see below); PII may, and promotion scrubs it.
    stub, alice = memory.stub(), memory.auth("alice")
    await stub.SetContext(
        memory_pb2.SetContextRequest(
            namespace=TEAM_A, session_id="s1", key="contact", value="mail ops@example.com"
        ),
        metadata=alice,
    )
    promoted = await stub.PromoteContext(
        memory_pb2.PromoteContextRequest(
            namespace=TEAM_A, session_id="s1", key="contact", pattern_id="promoted-contact"
        ),
        metadata=alice,
    )
    assert promoted.store.pattern.content == "mail [EMAIL]"
    assert promoted.store.pattern.owner == "alice"
    assert [(s.kind, s.count) for s in promoted.store.scrubbed] == [("email", 1)]
    assert promoted.store.pattern.classification == common_pb2.CLASSIFICATION_INTERNAL


async def test_expired_patterns_are_never_returned_and_are_purged(tmp_path: Path) -> None:
    # INTERNAL patterns live one second here; sweeps run every 50 ms.
    async with secured_memory(
        tmp_path, retention_internal_days=1.0 / DAY, retention_sweep_seconds=0.05
    ) as memory:
        stub, alice = memory.stub(), memory.auth("alice")
        await stub.StorePattern(insight("short-lived", "ephemeral finding"), metadata=alice)
        await stub.StorePattern(
            insight("pinned", "ephemeral but pinned", pinned=True), metadata=alice
        )

        async def visible() -> set[str]:
            found = await stub.SearchPatterns(
                memory_pb2.SearchPatternsRequest(namespace=TEAM_A, query="ephemeral"),
                metadata=alice,
            )
            return {r.pattern.id for r in found.results}

        assert await visible() == {"short-lived", "pinned"}
        assert await eventually(visible, lambda ids: ids == {"pinned"}) == {"pinned"}
        get = memory_pb2.GetPatternRequest(namespace=TEAM_A, pattern_id="short-lived")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetPattern(get, metadata=alice)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        database = memory.stack.root / "memory" / "patterns.sqlite3"

        async def rows() -> int:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                return int(
                    db.execute("SELECT count(*) FROM docs WHERE doc_id = 'short-lived'").fetchone()[
                        0
                    ]
                )

        assert await eventually(rows, lambda n: n == 0) == 0, "the sweep purged it"


async def test_a_context_value_with_a_secret_is_refused(memory: SecuredMemory) -> None:
    secret, text = SAMPLES["aws_access_key"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await memory.stub().SetContext(
            memory_pb2.SetContextRequest(namespace=TEAM_A, session_id="s1", key="k", value=text),
            metadata=memory.auth("alice"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations_of(caught.value)) == ["value"]
    assert secret not in (caught.value.details() or "")
    entries = await memory.stub().GetContext(
        memory_pb2.GetContextRequest(namespace=TEAM_A, session_id="s1"),
        metadata=memory.auth("alice"),
    )
    assert not entries.entries


async def test_promoting_to_sensitive_removes_the_plaintext_entry(memory: SecuredMemory) -> None:
    stub, alice = memory.stub(), memory.auth("alice")
    await stub.SetContext(
        memory_pb2.SetContextRequest(
            namespace=TEAM_A, session_id="s2", key="note", value="the salary review notes"
        ),
        metadata=alice,
    )
    promoted = await stub.PromoteContext(
        memory_pb2.PromoteContextRequest(
            namespace=TEAM_A, session_id="s2", key="note", pattern_id="promoted-salary"
        ),
        metadata=alice,
    )
    assert promoted.store.pattern.classification == common_pb2.CLASSIFICATION_SENSITIVE
    left = await stub.GetContext(
        memory_pb2.GetContextRequest(namespace=TEAM_A, session_id="s2"), metadata=alice
    )
    assert list(left.entries) == []


async def test_a_secret_in_a_context_key_is_refused_too(memory: SecuredMemory) -> None:
    secret, _ = SAMPLES["github_token"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await memory.stub().SetContext(
            memory_pb2.SetContextRequest(namespace=TEAM_A, session_id="s3", key=secret, value="v"),
            metadata=memory.auth("alice"),
        )
    assert list(violations_of(caught.value)) == ["key"]
    assert secret not in (caught.value.details() or "")
