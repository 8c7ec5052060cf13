"""Context entries behave the same on every storage backend.

Part of the store conformance suite (test_store_conformance.py): set, read,
replace, delete and expiry of session context, private and shared.
"""

from __future__ import annotations

import pytest

from memory_service.store.base import PatternStore
from memory_service.store.context import ContextOwnedError
from tests.support.helpers import eventually
from tests.support.store_backends import (  # The backends, and their fixtures.
    NS,
    VIEWER,
    backend,
    store,
)

__all__ = ["backend", "store"]  # Fixtures: imported for pytest.


async def test_context_entries_set_read_replace_and_delete(store: PatternStore) -> None:
    first = await store.set_context(NS, "s1", "answers", '{"a": 1}', 60, owner=VIEWER)
    assert first.expire_us - first.update_us == 60_000_000
    await store.set_context(NS, "s1", "answers", '{"a": 2}', 60, owner=VIEWER)
    await store.set_context(NS, "s1", "choices", "x", 60, owner=VIEWER)
    await store.set_context(NS, "s2", "answers", "other session", 60, owner=VIEWER)
    await store.set_context("other-ns", "s1", "answers", "other namespace", 60, owner=VIEWER)
    entries = await store.get_context(NS, "s1", "", viewer=VIEWER)
    assert [(e.key, e.value) for e in entries] == [("answers", '{"a": 2}'), ("choices", "x")]
    assert [e.value for e in await store.get_context(NS, "s1", "choices", viewer=VIEWER)] == ["x"]
    assert await store.get_context(NS, "s1", "missing", viewer=VIEWER) == []
    assert await store.delete_context(NS, "s1", "choices", owner=VIEWER) == 1
    assert await store.delete_context(NS, "s1", "choices", owner=VIEWER) == 0
    assert await store.delete_context(NS, "s1", "", owner=VIEWER) == 1
    assert await store.get_context(NS, "s1", "", viewer=VIEWER) == []
    assert [e.value for e in await store.get_context(NS, "s2", "", viewer=VIEWER)] == [
        "other session"
    ]
    assert [e.value for e in await store.get_context("other-ns", "s1", "", viewer=VIEWER)] == [
        "other namespace"
    ]


async def test_context_sessions_and_keys_never_collide(store: PatternStore) -> None:
    # "a" + "b:c" and "a:b" + "c" join to the same text; they are different entries.
    await store.set_context(NS, "a", "b:c", "first", 60, owner=VIEWER)
    assert await store.get_context(NS, "a:b", "c", viewer=VIEWER) == []
    await store.set_context(NS, "a:b", "c", "second", 60, owner=VIEWER)
    assert [item.value for item in await store.get_context(NS, "a", "b:c", viewer=VIEWER)] == [
        "first"
    ]
    assert [item.value for item in await store.get_context(NS, "a:b", "c", viewer=VIEWER)] == [
        "second"
    ]


async def test_context_entries_expire(store: PatternStore) -> None:
    await store.set_context(NS, "short", "gone", "soon", 0.05, owner=VIEWER)
    await store.set_context(NS, "short", "kept", "later", 60, owner=VIEWER)

    async def keys() -> list[str]:
        return [entry.key for entry in await store.get_context(NS, "short", "", viewer=VIEWER)]

    # Expiry happens on the store's clock; wait (bounded) for it, not a fixed time.
    assert await eventually(keys, lambda found: found == ["kept"], within=10)
    assert await store.delete_context(NS, "short", "gone", owner=VIEWER) == 0


async def test_a_private_context_entry_is_its_owners_alone(store: PatternStore) -> None:
    await store.set_context(NS, "s1", "answers", "alice's", 60, owner="alice")
    # To bob the entry does not exist: the same answers as for a missing one.
    assert await store.get_context(NS, "s1", "", viewer="bob") == []
    assert await store.get_context(NS, "s1", "answers", viewer="bob") == []
    assert await store.delete_context(NS, "s1", "answers", owner="bob") == 0
    assert await store.delete_context(NS, "s1", "", owner="bob") == 0
    # bob's write under the same key is his own entry, beside alice's.
    await store.set_context(NS, "s1", "answers", "bob's", 60, owner="bob")
    mine = await store.get_context(NS, "s1", "", viewer="alice")
    assert [(e.key, e.value, e.owner, e.shared) for e in mine] == [
        ("answers", "alice's", "alice", False)
    ]
    assert [e.value for e in await store.get_context(NS, "s1", "", viewer="bob")] == ["bob's"]
    assert await store.delete_context(NS, "s1", "", owner="bob") == 1
    assert [e.value for e in await store.get_context(NS, "s1", "", viewer="alice")] == ["alice's"]


async def test_a_shared_context_entry_is_read_by_all_and_changed_by_its_owner(
    store: PatternStore,
) -> None:
    shared = await store.set_context(NS, "s1", "plan", "v1", 60, owner="alice", shared=True)
    assert (shared.owner, shared.shared) == ("alice", True)
    seen = await store.get_context(NS, "s1", "", viewer="bob")
    assert [(e.key, e.value, e.owner, e.shared) for e in seen] == [("plan", "v1", "alice", True)]
    with pytest.raises(ContextOwnedError):
        await store.set_context(NS, "s1", "plan", "bob's", 60, owner="bob", shared=True)
    assert await store.delete_context(NS, "s1", "plan", owner="bob") == 0
    # bob may keep a private entry under the key: he sees his own.
    await store.set_context(NS, "s1", "plan", "bob's", 60, owner="bob")
    assert [e.value for e in await store.get_context(NS, "s1", "plan", viewer="bob")] == ["bob's"]
    assert [e.value for e in await store.get_context(NS, "s1", "plan", viewer="carol")] == ["v1"]
    # Its owner changes it, and un-sharing moves it back to private.
    await store.set_context(NS, "s1", "plan", "v2", 60, owner="alice", shared=True)
    await store.set_context(NS, "s1", "plan", "v3", 60, owner="alice")
    assert await store.get_context(NS, "s1", "", viewer="carol") == []
    assert [e.value for e in await store.get_context(NS, "s1", "", viewer="alice")] == ["v3"]
    await store.set_context(NS, "s1", "plan", "v4", 60, owner="alice", shared=True)
    assert [(e.value, e.shared) for e in await store.get_context(NS, "s1", "", viewer="alice")] == [
        ("v4", True)
    ]
    assert await store.delete_context(NS, "s1", "", owner="alice") == 1
    assert await store.get_context(NS, "s1", "", viewer="carol") == []
