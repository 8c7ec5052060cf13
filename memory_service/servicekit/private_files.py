"""Files only their owner may read: 0600 files in 0700 directories.

Both services keep data no other local user may read: patterns and context
(with PII not yet scrubbed), the audit log, run files, the plaintext half of
the executor's SENSITIVE index, keys. Each entry point sets the process
umask to 0o077 (`restrict_umask`), and every place that creates a file or
directory asks for the owner-only mode itself as well, so library use and
tests that never pass through an entry point are covered too.

SQLite creates a database's `-wal`, `-shm` and `-journal` files with the
database file's own mode, so creating the database file first
(`private_file`) covers them.

Directories and files that already exist keep their modes: a data
directory made by an older version is tightened once by hand
(`chmod -R go-rwx`), never behind an operator's back.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def restrict_umask() -> None:
    """Owner-only for everything this process creates from now on (and its children)."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """The directory, made with any missing parents, each 0700."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(DIR_MODE)
        except FileExistsError:
            continue  # Made meanwhile by someone else: theirs to decide.
        os.chmod(directory, DIR_MODE)  # mkdir's mode passes through the umask
    return path


def private_opener(path: str, flags: int) -> int:
    """An `opener` for `open()` that creates the file 0600."""
    return os.open(path, flags, FILE_MODE)


def private_file(path: Path) -> Path:
    """The file, created empty and 0600 (in a 0700 directory) if it is missing."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    return path
