"""A PatternStore whose unavailability reaches clients as UNAVAILABLE.

The servicer wraps its store with `unavailable_as_status`, so every RPC that
touches a backend that cannot be reached answers UNAVAILABLE (with a retry
hint) and the backend's message, instead of INTERNAL.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, cast

from memory_service.servicekit.errors import ServiceError, unavailable
from memory_service.store.base import PatternStore, StoreUnavailableError

RETRY_AFTER_SECONDS = 1.0


def _status(error: StoreUnavailableError) -> ServiceError:
    return unavailable(f"{error}; retry later", RETRY_AFTER_SECONDS)


class _UnavailableAsStatus:
    """Delegates every coroutine method of a store, mapping its unavailability."""

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
            except StoreUnavailableError as error:
                raise _status(error) from None

        return guarded


def unavailable_as_status(store: PatternStore) -> PatternStore:
    """The store, with StoreUnavailableError raised as UNAVAILABLE for clients."""
    return cast(PatternStore, _UnavailableAsStatus(store))
