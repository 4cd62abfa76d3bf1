"""The event store's contract: what every backend does, in the terms the rest of the hub uses.

A backend supplies an ``EventRecorder`` (SQL for one database, built on the eventsourcing
library's application recorder); ``EventStore`` turns canonical events into encrypted rows and
back. Each backend's tests inherit ``hub.store.testing.EventStoreContract``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID


class StoreError(RuntimeError):
    """The store could not do what was asked (connection lost, schema missing, conflict)."""


class EventKey(NamedTuple):
    """An event's clear index columns: everything a backend needs to dedupe it, number it in its
    stream and index it, without its (sealed) state. (A NamedTuple: made once per event on the hot
    path, where a frozen dataclass costs several times more.)
    """

    originator_id: UUID
    topic: str
    source_system: str
    source_key: bytes
    person_key: str | None
    case_key: str | None
    occurred_at: datetime


class EventRow(NamedTuple):
    """An event as a backend writes it: clear index columns, sealed state."""

    originator_id: UUID
    topic: str
    state: bytes
    source_system: str
    source_key: bytes
    person_key: str | None
    case_key: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class RowBatch:
    """A batch to append: every event's index columns now, its sealed state on demand.

    Sealing (serialise + encrypt) is the costly part of an event's row. A backend first drops
    duplicates by ``keys`` and then asks ``seal`` for the states of the rows it will write, in
    chunks, while it writes the previous chunk: duplicates are never sealed, and the database
    works on one chunk while Python seals the next.
    """

    keys: Sequence[EventKey]
    seal: Callable[[Sequence[int]], list[bytes]]
    """The sealed states of ``keys[i]`` for each ``i`` given, in that order."""

    def __len__(self) -> int:
        return len(self.keys)

    def sealed(self, indexes: Sequence[int], chunk: int = 512
               ) -> Iterator[tuple[EventKey, bytes]]:
        """``(keys[i], sealed state)`` for each index in order, sealing ``chunk`` at a time."""
        keys = self.keys
        for start in range(0, len(indexes), chunk):
            part = indexes[start:start + chunk]
            yield from zip([keys[i] for i in part], self.seal(part), strict=True)


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

    url: str | None = None
    """The URL it was opened from (``hub.bootstrap.open_recorder``), for another process to
    open the same store (``hub.store.prefetch``); None when made otherwise."""

    @abstractmethod
    def create_tables(self) -> None: ...

    @abstractmethod
    def append(
        self,
        batch: RowBatch,
        cursors: Sequence[CursorUpdate],
        dead_letters: Sequence[DeadLetter],
        recorded_at: datetime,
    ) -> AppendOutcome:
        """In one transaction: skip rows whose source_key is already stored (or repeated in the
        batch), give each new row the next version of its stream and the next global position
        (in batch order), write cursors and dead letters. Either all of it is committed or none.
        Only the rows written are sealed (``batch.sealed``).
        """

    @abstractmethod
    def rows_after(self, position: int, limit: int, topics: Sequence[str] = ()) -> list[StoredRow]:
        """Rows with position > ``position`` in global order."""

    @abstractmethod
    def stream_rows(self, originator_id: UUID) -> list[StoredRow]: ...

    @abstractmethod
    def person_rows(self, person_key: str) -> list[StoredRow]:
        """Every row whose subject is the person, in global order (all their streams).

        Backends keep a table of the streams that hold rows about each person (a row per
        person and stream, written in the append's transaction with ``stream_persons``) rather
        than an index entry per event: a stream has about five events, and an index entry for
        each, at random places in the index, was a fifth of what an append cost the database."""

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


def fresh_indexes(keys: Sequence[EventKey], stored: Collection[bytes]) -> list[int]:
    """Indexes of the rows to write: source key neither stored nor earlier in the batch."""
    seen = set(stored)
    fresh = []
    for i, k in enumerate(keys):
        source_key = k[3]
        if source_key not in seen:
            seen.add(source_key)
            fresh.append(i)
    return fresh


def next_versions(keys: Sequence[EventKey], fresh: Sequence[int], heads: dict[UUID, int]
                  ) -> list[int]:
    """Each fresh row's version: its stream's head (``heads``, 0 when new) plus its place among
    the batch's rows of that stream. ``heads`` is updated to the new heads."""
    versions = []
    for i in fresh:
        oid = keys[i][0]
        v = heads.get(oid, 0) + 1
        heads[oid] = v
        versions.append(v)
    return versions


def stream_persons(keys: Sequence[EventKey], fresh: Sequence[int]) -> list[tuple[str, UUID]]:
    """The (person, stream) pairs of the fresh rows that name a person, each once: what a
    backend's stream persons table must hold for ``person_rows`` to find every row."""
    return list(dict.fromkeys((keys[i][4], keys[i][0]) for i in fresh if keys[i][4] is not None))


#: Rows at each end of a large batch (and as many spread between) probed before it is written
#: without a full dedupe look-up (see ``probe_sample``).
PROBE_EDGE = 16


def probe_sample(keys: Sequence[EventKey], edge: int = PROBE_EDGE) -> list[int] | None:
    """For a large batch that may be new: the rows whose keys to look up before writing it whole.

    The unique dedupe index checks each row as it goes in, so looking up every key before would
    do that work twice. A batch looks new when it repeats no key within itself (else None) and
    none of the sample is stored: its first and last ``edge`` rows, where a re-read overlap
    lands, and ``edge`` rows spread between. A backend writes such a batch under a savepoint
    and, if the index finds a stored key anyway, rolls back and dedupes key by key.
    """
    n = len(keys)
    if len({k[3] for k in keys}) < n:  # a source key repeated within the batch
        return None
    if not edge:
        return []
    return sorted({*range(min(edge, n)), *range(max(0, n - edge), n),
                   *range(0, n, max(1, n // edge))})


def write_new_rows(batch: RowBatch, *, small_batch: int, probe_edge: int,
                   stored: Callable[[list[bytes]], Collection[bytes]],
                   write: Callable[[list[int]], None],
                   savepoint: Callable[[], AbstractContextManager[object]],
                   conflict: type[Exception]) -> list[int]:
    """Write the rows of ``batch`` whose facts are not stored yet; returns their indexes.

    The one dedupe procedure of every backend, which supplies the database's parts:
    ``stored(source_keys)`` (those of the keys already stored), ``write(indexes)``, a
    ``savepoint()`` context that rolls back what was written in it on error, and the
    unique-index error ``conflict``. A large batch that looks new (``probe_sample``) is written
    whole under the savepoint; a conflict there, a small batch, or a sample that finds a stored
    key makes it look every key up and write only the new rows."""
    keys = batch.keys
    sample = probe_sample(keys, probe_edge) if len(keys) > small_batch else None
    if sample is not None and not (sample and stored([keys[i].source_key for i in sample])):
        every = list(range(len(keys)))
        try:
            with savepoint():
                write(every)
            return every
        except conflict:
            pass
    fresh = fresh_indexes(keys, stored([k.source_key for k in keys]))
    if fresh:
        write(fresh)
    return fresh
