"""Reading a live audit log file the way a tail does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def audit_file_records(path: Path) -> list[dict[str, Any]]:
    """The whole records in one audit log file, oldest first.

    A call's record is written after it answers, so the service may still be
    appending while a test reads: the kernel can show the start of a write
    before all of it, so a last line with no newline yet is not a record yet.
    """
    if not path.exists():
        return []
    whole, _, _unfinished = path.read_bytes().rpartition(b"\n")
    return [json.loads(line) for line in whole.splitlines() if line]
