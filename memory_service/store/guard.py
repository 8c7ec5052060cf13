"""A PatternStore whose failures reach clients as precise statuses.

The servicer wraps its store with `store_errors_as_status`, so every RPC that
touches a backend that cannot be reached answers UNAVAILABLE (with a retry
hint) and the backend's message, and a replica that lacks an encryption key
a record needs answers FAILED_PRECONDITION naming the key id, instead of
INTERNAL.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc

from memory_service.search.index import UnreadablePatternError
from memory_service.security.crypto import DecryptionError, MissingKeyError
from memory_service.servicekit.errors import ServiceError, unavailable
from memory_service.store.base import PatternStore, StoreUnavailableError

RETRY_AFTER_SECONDS = 1.0


def _status(error: Exception) -> ServiceError:
    if isinstance(error, StoreUnavailableError):
        return unavailable(f"{error}; retry later", RETRY_AFTER_SECONDS)
    if isinstance(error, UnreadablePatternError):
        # The record is damaged; every other one still reads. Delete or replace it.
        return ServiceError(
            grpc.StatusCode.DATA_LOSS, f"{error}; delete it or store it again with replace"
        )
    # Messages of the keyring name key ids and settings, never keys.
    return ServiceError(grpc.StatusCode.FAILED_PRECONDITION, str(error))


class _ErrorsAsStatus:
    """Delegates every coroutine method of a store, mapping its failures."""

    def __init__(self, store: PatternStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if not callable(method):
            return method

        @functools.wraps(method)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return await cast(Callable[..., Awaitable[Any]], method)(*args, **kwargs)
            except (
                StoreUnavailableError,
                DecryptionError,
                MissingKeyError,
                UnreadablePatternError,
            ) as error:
                raise _status(error) from None

        return guarded


def store_errors_as_status(store: PatternStore) -> PatternStore:
    """The store, with unavailability and missing keys raised as statuses for clients."""
    return cast(PatternStore, _ErrorsAsStatus(store))
