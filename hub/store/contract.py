"""The event store's contract: what every backend does, in the terms the rest of the hub uses.

A backend supplies an ``EventRecorder`` (SQL for one database, built on the eventsourcing
library's application recorder); ``EventStore`` turns canonical events into encrypted rows and
back. Each backend's tests inherit ``hub.store.testing.EventStoreContract``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID


class StoreError(RuntimeError):
    """The store could not do what was asked (connection lost, schema missing, conflict)."""


class EventRow(NamedTuple):
    """An event as a backend writes it: clear index columns, sealed state. (A NamedTuple: made
    once per event on the hot path, where a frozen dataclass costs several times more.)
    """

    originator_id: UUID
    topic: str
    state: bytes
    source_system: str
    source_key: bytes
    person_key: str | None
    case_key: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class StoredRow:
    """An event as a backend reads it back."""

    position: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes
    source_system: str | None
    person_key: str | None
    case_key: str | None
    occurred_at: datetime | None
    recorded_at: datetime | None


@dataclass(frozen=True, slots=True)
class CursorUpdate:
    """A connector's position in one of its source streams, opaque to the store.

    Written in the same transaction as the events it covers (Kafka Connect's offsets-with-data).
    """

    connector: str
    stream: str
    position: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A source record that could not become a canonical event, with the reason. ``raw`` is
    sealed before it is written.
    """

    source_system: str
    reason: str
    raw: bytes
    source_record_id: str | bytes | None = None
    """In clear from a connector; sealed by the store (a record id may be a CPR number)."""
    raw_key: bytes = b""
    """Keyed digest of the raw record (set by the store): the same bad record is kept once."""


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    id: int
    source_system: str
    source_record_id: str | bytes | None
    reason: str
    raw: bytes
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    stored: int
    duplicates: int
    dead_lettered: int
    last_position: int | None


class EventRecorder(ABC):
    """The SQL side of one backend. All methods are transactional on their own."""

    @abstractmethod
    def create_tables(self) -> None: ...

    @abstractmethod
    def append(
        self,
        rows: Sequence[EventRow],
        cursors: Sequence[CursorUpdate],
        dead_letters: Sequence[DeadLetter],
        recorded_at: datetime,
    ) -> AppendOutcome:
        """In one transaction: skip rows whose source_key is already stored (or repeated in the
        batch), give each new row the next version of its stream and the next global position,
        write cursors and dead letters. Either all of it is committed or none.
        """

    @abstractmethod
    def rows_after(self, position: int, limit: int, topics: Sequence[str] = ()) -> list[StoredRow]:
        """Rows with position > ``position`` in global order."""

    @abstractmethod
    def stream_rows(self, originator_id: UUID) -> list[StoredRow]: ...

    @abstractmethod
    def person_rows(self, person_key: str) -> list[StoredRow]:
        """Every row whose subject is the person, in global order (all their streams)."""

    @abstractmethod
    def max_position(self) -> int: ...

    @abstractmethod
    def cursors(self, connector: str) -> dict[str, str]: ...

    @abstractmethod
    def reset_cursors(self, connector: str, stream: str | None = None) -> int: ...

    @abstractmethod
    def dead_letters(self, limit: int = 100, source_system: str | None = None
                     ) -> list[StoredDeadLetter]: ...

    @abstractmethod
    def dead_letter_counts(self) -> dict[str, int]: ...

    @abstractmethod
    def counts(self) -> list[tuple[str, str, int]]:
        """(event type, source system, count) for every pair present."""

    @abstractmethod
    def close(self) -> None: ...
