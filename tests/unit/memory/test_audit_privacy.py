"""Audit records keep SENSITIVE pattern ids for their principal only (issue 10, finding 12)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.access.audit import REDACTED_ID, AuditRecord, FileAuditLog
from memory_service.access.audit_privacy import sensitive_pattern_ids

SENSITIVE = common_pb2.CLASSIFICATION_SENSITIVE
ids = st.lists(st.from_regex(r"[A-Za-z0-9_.:-]{1,12}", fullmatch=True), max_size=6, unique=True)
users = st.sampled_from(["alice", "bob", "team-a-admin", ""])


def pattern(pattern_id: str, sensitive: bool = False) -> memory_pb2.Pattern:
    return memory_pb2.Pattern(
        id=pattern_id, classification=SENSITIVE if sensitive else common_pb2.CLASSIFICATION_PUBLIC
    )


@given(ids, st.data(), users, users)
def test_only_the_principal_reads_private_ids(
    pattern_ids: list[str], data: st.DataObject, principal: str, reader: str
) -> None:
    private = data.draw(
        st.lists(st.sampled_from(pattern_ids), unique=True) if pattern_ids else st.just([])
    )
    stored = AuditRecord(
        principal=principal,
        namespace="team-a",
        action="search",
        pattern_ids=tuple(pattern_ids),
        private_ids=tuple(private),
    )
    # Both sinks store to_json(): the private ids survive the round trip.
    again = AuditRecord.from_json(json.loads(json.dumps(stored.to_json())))
    assert again == stored
    seen = stored.seen_by(reader)
    if reader == principal:
        assert seen == stored
    else:
        assert not set(private) & set(seen.pattern_ids)
        assert seen.private_ids == ()
        assert len(seen.pattern_ids) == len(pattern_ids)  # Calls and counts stay.
        public = [i for i in pattern_ids if i not in private]
        assert [i for i in seen.pattern_ids if i != REDACTED_ID] == public
        assert seen.to_proto().pattern_ids == list(seen.pattern_ids)
    assert stored.seen_by(None) == stored  # The service itself reads records as stored.


def test_a_record_without_private_ids_is_written_as_before() -> None:
    plain = AuditRecord(principal="alice", namespace="team-a", action="get", pattern_ids=("p",))
    assert "private_ids" not in plain.to_json()


async def test_the_file_log_filters_what_the_reader_may_see(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path / "audit.log", 1 << 20, 1)
    await log.write(
        AuditRecord(
            principal="alice",
            namespace="team-a",
            action="get",
            pattern_ids=("secret", "open"),
            private_ids=("secret",),
        )
    )
    by_filter = 'pattern_ids = "secret"'
    assert await log.read("team-a", by_filter, 10, "", reader="admin") == ([], "")
    (mine,), _ = await log.read("team-a", by_filter, 10, "", reader="alice")
    assert mine.pattern_ids == ("secret", "open")
    (theirs,), _ = await log.read("team-a", "", 10, "", reader="admin")
    assert theirs.pattern_ids == (REDACTED_ID, "open")
    log.close()


def test_sensitive_ids_are_found_in_every_response_shape() -> None:
    responses = [
        memory_pb2.StorePatternResponse(pattern=pattern("s1", True)),
        memory_pb2.GetPatternResponse(pattern=pattern("s1", True)),
        memory_pb2.SearchPatternsResponse(
            results=[
                memory_pb2.SearchResult(pattern=pattern("p1")),
                memory_pb2.SearchResult(pattern=pattern("s1", True)),
            ]
        ),
        memory_pb2.ListPatternsResponse(patterns=[pattern("s1", True), pattern("p2")]),
        memory_pb2.PromoteContextResponse(
            store=memory_pb2.StorePatternResponse(pattern=pattern("s1", True))
        ),
    ]
    for response in responses:
        assert sensitive_pattern_ids(response) == ("s1",), type(response).__name__
    assert sensitive_pattern_ids(memory_pb2.GetPatternResponse(pattern=pattern("p1"))) == ()
    assert sensitive_pattern_ids(None) == ()
