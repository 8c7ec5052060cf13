"""`attune-memory-admin reencrypt`: re-seal SENSITIVE patterns under the active key.

Key rotation, with the same MEMORY_* settings the service reads:

1. configure the new key beside the old one on every replica and make it
   active (`MEMORY_ENCRYPTION_KEYS="old:...,new:..."`,
   `MEMORY_ENCRYPTION_ACTIVE_KEY_ID=new`); new patterns are sealed with it;
2. run this command once against the store (it may run while the service
   does: on Redis each pattern is swapped with a compare-and-set that every
   replica's cache picks up);
3. remove the old key.

Exit status: 0 done; 1 the store cannot be reached; 2 the keys are missing,
invalid, or do not open what is stored. `python -m memory_service.reencrypt`
remains as an alias.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import typer
from pydantic import ValidationError

from memory_service.admin.say import complain, say
from memory_service.security.crypto import DecryptionError, KeyConfigError, Keyring, MissingKeyError
from memory_service.servicekit.private_files import restrict_umask
from memory_service.settings import MemorySettings
from memory_service.store.base import StoreUnavailableError
from memory_service.store.factory import open_store

# Progress is printed about this many times over a run.
PROGRESS_STEPS = 10


def keyring_from(settings: MemorySettings) -> Keyring:
    """The keyring the settings configure (KeyConfigError if they are invalid)."""
    keys = settings.encryption_keys.get_secret_value() if settings.encryption_keys else None
    return Keyring.from_settings(
        keys, settings.encryption_key_file, settings.encryption_active_key_id
    )


def _progress(done: int, total: int) -> None:
    step = max(1, total // PROGRESS_STEPS)
    if done % step == 0 or done == total:
        say(f"checked {done} of {total} sealed patterns")


async def reencrypt(settings: MemorySettings) -> tuple[int, int, str]:
    """Re-seals the store's envelopes: (re-sealed, sealed, active key id)."""
    keyring = keyring_from(settings)
    if not keyring.configured:
        raise MissingKeyError("re-encryption was asked for")
    active = keyring.active_key_id or ""
    with tempfile.TemporaryDirectory(prefix="attune-reencrypt-") as scratch:
        if settings.store == "redis":
            # A search cache of its own: a running replica's cache file in the
            # data directory is that replica's alone.
            settings = settings.model_copy(update={"data_dir": Path(scratch)})
        store, where = await open_store(settings, keyring)
        try:
            say(f"re-encrypting the sealed patterns of {where} under key {active}")
            resealed, total = await store.reencrypt(_progress)
        finally:
            await store.close()
    return resealed, total, active


HELP = (
    "Re-seal every SENSITIVE pattern under MEMORY_ENCRYPTION_ACTIVE_KEY_ID, so older keys can "
    "be removed. Reads the memory service's MEMORY_* settings."
)


def run() -> int:
    """Re-encrypts the store the MEMORY_* settings name; the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    restrict_umask()  # It may create the store's files, as the service would.
    try:
        resealed, total, active = asyncio.run(reencrypt(MemorySettings()))
    except (MissingKeyError, KeyConfigError, DecryptionError) as error:
        complain(f"error: {error}")
        return 2
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        complain(f"error: invalid settings: {problems}")
        return 2
    except StoreUnavailableError as error:
        complain(f"error: {error}")
        return 1
    say(f"re-encrypted {resealed} of {total} sealed patterns under key {active}")
    return 0


def reencrypt_command() -> None:
    """Re-seal every SENSITIVE pattern under the active key, so older keys can be removed.

    Reads the memory service's MEMORY_* settings (environment). Exit status: 0 done,
    1 the store cannot be reached, 2 the keys are missing, invalid, or do not open
    what is stored.
    """
    code = run()
    if code:
        raise typer.Exit(code)
