"""Owner-only files and directories, whatever the umask."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from memory_service.servicekit.private_files import private_dir, private_file, private_opener


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


pytestmark = pytest.mark.usefixtures("common_umask")


def test_missing_parents_are_made_owner_only(tmp_path: Path) -> None:
    leaf = private_dir(tmp_path / "a" / "b" / "c")
    assert [mode(path) for path in (tmp_path / "a", tmp_path / "a" / "b", leaf)] == [0o700] * 3


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    private_dir(shared / "mine")
    assert mode(shared) == 0o750
    assert mode(shared / "mine") == 0o700


def test_files_are_made_owner_only(tmp_path: Path) -> None:
    made = private_file(tmp_path / "store" / "db.sqlite3")
    assert mode(made) == 0o600
    assert mode(made.parent) == 0o700
    with open(tmp_path / "log", "w", opener=private_opener) as handle:
        handle.write("x")
    assert mode(tmp_path / "log") == 0o600
    # Called again on an existing file: its content stays.
    made.write_bytes(b"data")
    assert private_file(made).read_bytes() == b"data"
