"""The million-pattern bench's bulk loader writes what SearchIndex.put writes.

The bench is opt-in and takes half an hour, so a loader that drifted from
the index's schema (a table dropped, a column added) would only show there;
this holds it to put on a small corpus in every test run.
"""

from __future__ import annotations

from pathlib import Path

from tests.bench.bulk_store import check_bulk_matches_put


def test_bulk_loader_writes_the_rows_put_writes(tmp_path: Path) -> None:
    check_bulk_matches_put(tmp_path)
