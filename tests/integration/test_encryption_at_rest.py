"""SENSITIVE patterns at rest: no plaintext on disk or in Redis, and key rotation.

Runs on every backend of the conformance suite (embedded, Redis, Redis
Cluster, real servers). "On disk" is the SQLite file with its WAL and
shared-memory files: the embedded store's, or a Redis replica's cache.
"""

from __future__ import annotations

import os
import random
import sqlite3
import string
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import cast

import pytest

from attune.common.v1 import common_pb2
from attune.memory.v1 import memory_pb2
from memory_service.security.crypto import DecryptionError, MissingKeyError, envelope_key_id
from memory_service.store.base import PatternStore
from tests.support.store_backends import (  # The backends, and their fixture.
    NS,
    VIEWER,
    Backend,
    backend,
    key_setting,
    keyring,
    page_ids,
    run_pattern,
    search_ids,
    sensitive,
)

__all__ = ["backend"]  # A fixture: imported so pytest finds it here.


async def found(store: PatternStore, query: str) -> tuple[list[str], int]:
    """The ids a search finds, sorted (scores of the two halves compare only roughly)."""
    ids, total = await search_ids(store, query)
    return sorted(ids), total


def distinctive_word() -> str:
    """A word no other text here contains."""
    return "".join(random.choices(string.ascii_lowercase, k=14))


def contains(data: bytes, word: str) -> bool:
    """Whether any 6 letters of the word appear: full-text indexes store terms
    prefix-compressed (and stemmed), so the whole word need not be there."""
    return any(word[start : start + 6].encode() in data for start in range(len(word) - 5))


def disk_bytes(backend: Backend) -> bytes:
    """Everything the store has on disk: the file, its WAL and shared memory."""
    return b"".join(path.read_bytes() for path in backend.files() if path.exists())


async def redis_values(backend: Backend) -> bytes:
    """Every key and value of the store in Redis, whatever its type."""
    assert backend.redis is not None
    raw = backend.raw_client()
    found: list[bytes] = []
    try:
        async for key in raw.scan_iter(match=f"{backend.redis.key_prefix}:*"):
            found.append(key)
            kind = (await raw.type(key)).decode()
            if kind == "string":
                found.append(await raw.get(key))
            elif kind == "hash":
                fields = await cast(Awaitable[dict[bytes, bytes]], raw.hgetall(key))
                for field, value in fields.items():
                    found += [field, value]
            elif kind == "stream":
                for entry_id, entry in await raw.xrange(key):
                    found.append(entry_id)
                    for field, value in entry.items():
                        found += [field, value]
            elif kind == "set":
                found += list(await cast(Awaitable[set[bytes]], raw.smembers(key)))
            else:
                raise AssertionError(f"unexpected {kind} key {key!r}")
    finally:
        await raw.aclose()
    assert found, "the scan found nothing: it would prove nothing"
    return b"\n".join(found)


async def at_rest(backend: Backend) -> bytes:
    """Disk bytes and, on Redis, every Redis value."""
    stored = disk_bytes(backend)
    if backend.redis is not None:
        stored += await redis_values(backend)
    return stored


async def test_no_plaintext_of_a_sensitive_pattern_is_at_rest(backend: Backend) -> None:
    store = await backend.open()
    secret_word, moved_word = distinctive_word(), distinctive_word()
    await store.put(NS, sensitive("secret", f"the {secret_word} account"), False)
    internal = run_pattern("moved", f"the {moved_word} memo")
    internal.classification = common_pb2.CLASSIFICATION_INTERNAL
    internal.owner = VIEWER
    await store.put(NS, internal, False)
    # A read catches a Redis replica's cache up, so its file holds both.
    assert await search_ids(store, moved_word) == (["moved"], 1)
    stored = await at_rest(backend)
    assert contains(stored, moved_word)  # The scan finds plaintext that is there.
    assert not contains(stored, secret_word)

    moved = memory_pb2.Pattern()
    moved.CopyFrom(internal)
    moved.classification = common_pb2.CLASSIFICATION_SENSITIVE
    assert (await store.put(NS, moved, True)).replaced
    assert await search_ids(store, moved_word, viewer="bob") == ([], 0)
    assert await search_ids(store, moved_word) == (["moved"], 1)
    assert await search_ids(store, secret_word) == (["secret"], 1)
    stored = await at_rest(backend)
    assert not contains(stored, secret_word)
    assert not contains(stored, moved_word)

    # Deleted, the envelope goes too, and nothing comes back.
    assert await store.delete(NS, "moved", viewer=VIEWER)
    assert await search_ids(store, moved_word) == ([], 0)
    assert not contains(await at_rest(backend), moved_word)


async def test_sensitive_patterns_need_a_key_to_be_stored_and_opened(backend: Backend) -> None:
    unkeyed = await backend.open(keys=keyring())
    with pytest.raises(MissingKeyError, match="MEMORY_ENCRYPTION_KEYS"):
        await unkeyed.put(NS, sensitive("s-1", "no key yet"), False)
    assert not (await unkeyed.put(NS, run_pattern("p-1", "not sensitive"), False)).deduped
    assert await page_ids(unkeyed) == ["p-1"]  # The failed write stored nothing.
    await backend.close(unkeyed)

    store = await backend.open(keys=keyring("k1"))
    await store.put(NS, sensitive("s-1", "sealed under k1"), False)
    await backend.close(store)
    # A start-up error, never a silent ephemeral key or a store missing patterns.
    with pytest.raises(MissingKeyError, match="MEMORY_ENCRYPTION_KEYS"):
        await backend.open(keys=keyring())
    with pytest.raises(DecryptionError, match="'k1'"):
        await backend.open(keys=keyring("k9"))
    reopened = await backend.open(keys=keyring("k1"))
    assert await page_ids(reopened) == ["p-1", "s-1"]


def sealed_key_ids(backend: Backend, replica: str = "a") -> set[str]:
    """The key ids of the envelopes in a store's file."""
    with sqlite3.connect(backend.files(replica)[0]) as db:
        rows = db.execute("SELECT envelope FROM sealed_docs").fetchall()
    return {envelope_key_id(bytes(envelope)) for (envelope,) in rows}


async def test_keys_rotate_and_reencrypt_reseals_every_pattern(backend: Backend) -> None:
    ALL = ["plain", "s-1", "s-2", "s-3"]  # noqa: N806 - a constant of the test
    store = await backend.open(keys=keyring("k1"))
    for number in (1, 2):
        await store.put(NS, sensitive(f"s-{number}", f"rotation secret {number}"), False)
    await store.put(NS, run_pattern("plain", "rotation plain"), False)
    await backend.close(store)

    both = keyring("k1", "k2", active="k2")
    rotated = await backend.open(keys=both)
    other = await backend.open("b", keys=both) if backend.redis else None
    assert await found(rotated, "rotation") == (["plain", "s-1", "s-2"], 3)
    await rotated.put(NS, sensitive("s-3", "rotation secret 3", hours=1), False)
    assert await rotated.reencrypt() == (2, 3)
    assert await rotated.reencrypt() == (0, 3)
    assert sealed_key_ids(backend) == {"k2"}
    if other is not None:  # Another replica's cache takes the new envelopes from the log.
        assert await found(other, "rotation") == (ALL, 4)
        assert sealed_key_ids(backend, "b") == {"k2"}
        await backend.close(other)
    await backend.close(rotated)

    only_new = await backend.open(keys=keyring("k2"))
    assert await found(only_new, "rotation") == (ALL, 4)
    got = await only_new.get(NS, "s-1", viewer=VIEWER)
    assert got is not None
    assert got.content == "rotation secret 1"
    if backend.redis is not None:
        fresh = await backend.open("c", keys=keyring("k2"))  # A new replica, from Redis.
        assert await found(fresh, "rotation") == (ALL, 4)
    await backend.close(only_new)
    with pytest.raises(DecryptionError, match="'k2'"):
        await backend.open(keys=keyring("k1"))


# The operator CLI's command, and the older module entry point it keeps as an alias.
REENCRYPT_COMMANDS = {
    "admin": [str(Path(sys.executable).parent / "attune-memory-admin"), "reencrypt"],
    "module": [sys.executable, "-m", "memory_service.reencrypt"],
}


def run_reencrypt(
    environment: dict[str, str], command: str = "module"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        REENCRYPT_COMMANDS[command],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", sorted(REENCRYPT_COMMANDS))
async def test_the_reencrypt_command(backend: Backend, command: str) -> None:
    store = await backend.open(keys=keyring("k1"))
    for number in range(3):
        await store.put(NS, sensitive(f"s-{number}", f"command secret {number}"), False)
    await backend.close(store)
    environment = {"MEMORY_DATA_DIR": str(backend.root / "embedded")}
    if backend.redis is not None:
        environment = {
            "MEMORY_STORE": "redis",
            "MEMORY_DATA_DIR": str(backend.root / "replica-a"),  # The command uses its own.
            "MEMORY_REDIS_KEY_PREFIX": backend.redis.key_prefix,
        }
        if backend.redis.cluster_nodes:
            environment["MEMORY_REDIS_CLUSTER_NODES"] = ",".join(backend.redis.cluster_nodes)
        else:
            environment["MEMORY_REDIS_URL"] = backend.redis.url

    done = run_reencrypt(
        {
            **environment,
            "MEMORY_ENCRYPTION_KEYS": key_setting("k1", "k2"),
            "MEMORY_ENCRYPTION_ACTIVE_KEY_ID": "k2",
        },
        command,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "re-encrypted 3 of 3 sealed patterns under key k2"
    assert "checked 3 of 3 sealed patterns" in done.stdout

    failed = run_reencrypt({**environment, "MEMORY_ENCRYPTION_KEYS": key_setting("k1")}, command)
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: ")
    assert "'k2'" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    missing = run_reencrypt(environment, command)
    assert missing.returncode == 2
    assert "MEMORY_ENCRYPTION_KEYS" in missing.stderr

    reopened = await backend.open(keys=keyring("k2"))
    assert await found(reopened, "command") == (["s-0", "s-1", "s-2"], 3)
