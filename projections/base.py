"""The projection contract. A projection owns some tables (SQLAlchemy Core) and turns batches of
events into rows; the shared runner (``projections.runner``) feeds it events in global order and
writes its tracking position in the SAME transaction as its rows, so it is exactly-once across
crashes and can always be rebuilt from the events alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from hub.domain.events import CanonicalEvent


class KeyOf(Protocol):
    """The store's pseudonym function (``EventStore.person_key``), which projections are built
    with: a CPR or substitute number (or other identifying text) to its keyed pseudonym;
    ``remember=False`` for text that is digested once (not kept in its cache)."""

    def __call__(self, identifier: str, /, *, remember: bool = True) -> str: ...


class Projection(ABC):
    name: str
    """Unique; also the key of its tracking row."""
    version: int = 1
    """Bump when tables or logic change: the runner then rebuilds the model from zero."""
    topics: tuple[str, ...] = ()
    """Event types it reads (empty: all)."""

    def __init__(self) -> None:
        self.metadata = sa.MetaData()
        self.define_tables(self.metadata)

    @abstractmethod
    def define_tables(self, metadata: sa.MetaData) -> None:
        """Add this projection's tables to ``metadata`` (table names prefixed with the name)."""

    @abstractmethod
    def handle(self, events: Sequence[CanonicalEvent], conn: sa.Connection) -> None:
        """Apply a batch of events in order. No commits: the runner owns the transaction."""

    def event_handlers(self) -> dict[str, Callable[..., Any]]:
        """The projection's ``_on_<EventType>`` methods by event type name, for a projection
        that dispatches on the event's type (built once, looked up per event)."""
        return {name[len("_on_"):]: getattr(self, name) for name in dir(self)
                if name.startswith("_on_")}
