"""Fixtures shared by every test layer: real servers on 127.0.0.1, port 0."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.stack import Stack, running_stack

# CI runs hypothesis derandomized: the same examples on every run, so a run is
# red for the change it tests, never for a case found by chance; local runs
# (`make test` without CI set) keep drawing new examples and finding new bugs.
# Based on hypothesis's own profiles (its "ci" is derandomized, without
# deadlines or a database), not on whichever profile is active at import.
settings.register_profile("ci", settings.get_profile("ci"), print_blob=True)
settings.register_profile("dev", settings.get_profile("default"), print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture
def common_umask() -> Iterator[None]:
    """The umask most systems start with (022: files 0644, directories 0755), for
    tests showing that the services' own modes, not the umask, keep files private."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture(autouse=True)
def _direct_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk only to 127.0.0.1: no HTTP client may take a proxy there."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The default stack; its outbox replays every 50 ms."""
    async with running_stack(tmp_path, outbox_replay_interval_seconds=0.05) as running:
        yield running
