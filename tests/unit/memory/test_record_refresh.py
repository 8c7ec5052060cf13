"""Records written by an older pattern_record are remade when the index opens,
so filters on newer fields find the patterns stored before them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.search import record_refresh
from memory_service.search.filter import compile_filter
from memory_service.search.index import SearchIndex, decode_pattern
from memory_service.search.schema import PATTERN_SCHEMA

ESCALATED = compile_filter('agents.escalated_to = "premium"', PATTERN_SCHEMA)


def escalated(pattern_id: str) -> memory_pb2.Pattern:
    pattern = memory_pb2.Pattern(id=pattern_id, type=memory_pb2.PATTERN_TYPE_EXECUTION)
    pattern.agents.add(
        role="publisher",
        tier=common_pb2.TIER_PREMIUM,
        first_tier=common_pb2.TIER_CAPABLE,
        attempt_count=2,
    )
    return pattern


def age(db: sqlite3.Connection) -> None:
    """Makes the file look written before agents had escalation fields."""
    for rowid, text in db.execute("SELECT rowid, record FROM docs").fetchall():
        record = json.loads(text)
        record["agents"] = [
            {key: agent[key] for key in ("role", "tier", "success", "cost_usd", "attempt_count")}
            for agent in record["agents"]
        ]
        db.execute("UPDATE docs SET record = ? WHERE rowid = ?", (json.dumps(record), rowid))
    db.execute("DELETE FROM doc_facts WHERE path LIKE 'agents.%' AND path NOT IN ('agents.tier')")
    db.execute("DELETE FROM record_meta")


def test_an_index_of_older_records_is_remade_at_open(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "index.sqlite3", isolation_level=None)
    index = SearchIndex(db)
    index.put("team", escalated("p-1"), "f1")
    age(db)
    assert index.count("team", ESCALATED, "")[0] == 0  # Stale...
    assert SearchIndex(db).count("team", ESCALATED, "")[0] == 1  # ...until the next open.
    assert record_refresh.refresh_records(db, decode_pattern) == 0  # Stamped: nothing to do.
    age(db)
    assert record_refresh.refresh_records(db, decode_pattern) == 1
