"""The event store a connector reads from (DUBU and Fasit diff their sweeps against it, CPR finds
the persons to look up in it): the runner's store when the connector is built with one, else a
store the connector opens itself from the settings on first use, and closes with ``close()``.

``store_or_opener(settings, store)`` is that choice for a registry factory; ``LazyStore`` holds
what it returned.
"""

from __future__ import annotations

from collections.abc import Callable

from hub.config import Settings
from hub.store.eventstore import EventStore

StoreOrFactory = EventStore | Callable[[], EventStore]
"""An open store (not the connector's to close), or a callable that opens one (the connector's)."""


def store_or_opener(settings: Settings, store: EventStore | None) -> StoreOrFactory:
    """``store`` when given; otherwise a factory that opens ``settings.store_url``'s store."""
    if store is not None:
        return store

    def open_own() -> EventStore:
        from hub.bootstrap import open_store  # the composition root builds stores

        return open_store(settings)

    return open_own


class LazyStore:
    """An ``EventStore``, or a factory opening one on the first ``get()``. ``close()`` closes
    only a store opened here (a later ``get()`` opens a new one); a given store is left open."""

    def __init__(self, store: StoreOrFactory):
        self._given = store if isinstance(store, EventStore) else None
        self._factory = None if isinstance(store, EventStore) else store
        self._opened: EventStore | None = None

    def get(self) -> EventStore:
        if self._given is not None:
            return self._given
        if self._opened is None:
            assert self._factory is not None
            self._opened = self._factory()
        return self._opened

    def close(self) -> bool:
        """Close the store opened here, if any; True if one was closed."""
        if self._opened is None:
            return False
        self._opened.close()
        self._opened = None
        return True


__all__ = ["LazyStore", "StoreOrFactory", "store_or_opener"]
