"""Opens the storage backend the settings name."""

from __future__ import annotations

from memory_service.security.crypto import Keyring
from memory_service.settings import MemorySettings
from memory_service.store.base import PatternStore
from memory_service.store.embedded import EmbeddedStore
from memory_service.store.redis.link import RedisOptions
from memory_service.store.redis.store import RedisStore


async def open_store(settings: MemorySettings, keyring: Keyring) -> tuple[PatternStore, str]:
    """The opened store, and where it keeps its data (for the log).

    The keyring seals SENSITIVE patterns. Raises MissingKeyError if the
    store holds sealed patterns and the keyring has no key, DecryptionError
    if one is sealed under a key the keyring lacks.
    """
    if settings.store == "redis":
        options = RedisOptions(
            url=settings.redis_url,
            cluster_nodes=tuple(settings.redis_cluster_nodes),
            password=settings.redis_password.get_secret_value()
            if settings.redis_password is not None
            else None,
            timeout_seconds=settings.redis_timeout_seconds,
            retries=settings.redis_retries,
            key_prefix=settings.redis_key_prefix,
        )
        redis_store = RedisStore(settings.data_dir, options, keyring)
        await redis_store.open()
        return redis_store, f"{redis_store.where} (search cache {redis_store.path})"
    embedded = EmbeddedStore(settings.data_dir, keyring)
    await embedded.open()
    return embedded, str(embedded.path)
