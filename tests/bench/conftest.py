"""The search benchmarks' store, built once per session (it takes minutes)."""

from __future__ import annotations

import pytest

from tests.bench.search_corpus import (
    SEARCH_PATTERNS,
    STORE_FILE,
    SearchStore,
    build_index,
    variant,
)


@pytest.fixture(scope="session")
def search_store(tmp_path_factory: pytest.TempPathFactory) -> SearchStore:
    """SEARCH_PATTERNS realistic patterns in an embedded store's file.

    Searches only read it, so the benchmarks share one (a replica started
    on it may add its own files beside it).
    """
    root = tmp_path_factory.mktemp("search")
    patterns = (variant(n) for n in range(SEARCH_PATTERNS))
    seconds = build_index(root / STORE_FILE.parent, patterns)
    return SearchStore(root, SEARCH_PATTERNS, seconds)
