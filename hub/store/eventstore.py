"""EventStore: canonical events in, canonical events out; rows, crypto and streams inside."""

from __future__ import annotations

import gc
import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from hub.domain import events as ev
from hub.domain.codec import payload_from_dict
from hub.domain.streams import case_stream_id, person_stream_id, stream_id, stream_name
from hub.personal_data import PayloadCipher, Pseudonymizer
from hub.store.contract import (
    AppendOutcome,
    CursorUpdate,
    DeadLetter,
    EventKey,
    EventRecorder,
    EventRow,
    RowBatch,
    StoredDeadLetter,
    StoredRow,
)

_DEAD_LETTER_AD = b"glasplade-dead-letter"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _GcPauses:
    """How many threads are inside ``gc_paused`` and whether collection was on before."""

    lock = threading.Lock()
    depth = 0
    was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block. Threads may overlap: collection resumes
    when the last block ends (and only if it was on before the first began)."""
    with _GcPauses.lock:
        if _GcPauses.depth == 0:
            _GcPauses.was_enabled = gc.isenabled()
            gc.disable()
        _GcPauses.depth += 1
    try:
        yield
    finally:
        with _GcPauses.lock:
            _GcPauses.depth -= 1
            if _GcPauses.depth == 0 and _GcPauses.was_enabled:
                gc.enable()


class EventStore:
    """The hub's one source of truth. Backends differ only in their ``EventRecorder``."""

    def __init__(self, recorder: EventRecorder, pseudonymizer: Pseudonymizer,
                 cipher: PayloadCipher, clock=_utcnow):
        self.recorder = recorder
        self.pseudonymizer = pseudonymizer
        self.cipher = cipher
        self.clock = clock
        self.person_key = pseudonymizer.person_key
        """A CPR or substitute number's pseudonym, ``person_key(identifier, *, remember=True)``
        (``Pseudonymizer.person_key`` itself, not a wrapper: projections call it for most
        events of a rebuild)."""

    # --- writing --------------------------------------------------------------------------

    def to_rows(self, events: Sequence[ev.CanonicalEvent]) -> list[EventRow]:
        """Every event's sealed row (for tools that write rows themselves: benchmarks)."""
        batch = self.to_batch(events)
        return [EventRow(k[0], k[1], state, *k[2:])
                for k, state in batch.sealed(range(len(batch)))]

    def to_batch(self, events: Sequence[ev.CanonicalEvent]) -> RowBatch:
        """Pseudonymise and key a batch now; serialise and seal each event when the backend asks
        (the hot path of every append)."""
        person_key_of = self.pseudonymizer.person_key
        source_key_of = self.pseudonymizer.source_key
        keys = []
        add = keys.append
        for e in events:
            person_key = e.person_key
            if person_key is None and e.person is not None:
                person_key = person_key_of(e.person)
            payload = e.payload
            add(EventKey(
                stream_id(stream_name(payload, case_key=e.case_key, person_key=person_key)),
                type(payload).__name__, e.source_system,
                source_key_of(e.source_system, e.source_record_id, e.source_version),
                person_key, e.case_key, e.occurred_at))
        dumps = orjson.dumps
        seal_many = self.cipher.seal_many

        def seal(indexes: Sequence[int]) -> list[bytes]:
            plain = []
            for i in indexes:
                e = events[i]
                k = keys[i]
                plain.append((dumps({
                    "event_id": e.event_id,
                    "schema_version": e.schema_version,
                    "source_system": e.source_system,
                    "source_record_id": e.source_record_id,
                    "source_version": e.source_version,
                    "occurred_at": e.occurred_at,
                    "person": e.person,
                    "person_key": k[4],
                    "case_key": e.case_key,
                    "actor": e.actor,
                    "payload": e.payload,
                }), k[0].bytes))
            return seal_many(plain)

        return RowBatch(keys, seal)

    def append(self, events: Sequence[ev.CanonicalEvent], *,
               cursors: Sequence[CursorUpdate] = (),
               dead_letters: Sequence[DeadLetter] = ()) -> AppendOutcome:
        """Append events (skipping facts already recorded), cursors and dead letters atomically."""
        # The batch makes several small objects per event and no reference cycles; a cyclic
        # garbage collection pass in the middle of it walks the whole heap (in a process holding
        # large read-model caches or a big batch that is most of the time of the append), so
        # collection waits until the batch is written.
        with gc_paused():
            batch = self.to_batch(events)
            sealed = [
                DeadLetter(d.source_system, d.reason, self.cipher.seal(d.raw, _DEAD_LETTER_AD),
                           self.cipher.seal(str(d.source_record_id).encode(), _DEAD_LETTER_AD)
                           if d.source_record_id is not None else None,
                           # The same bad record from the same place is kept once.
                           self.pseudonymizer.source_key(
                               d.source_system, f"dead-letter/{d.source_record_id}",
                               hashlib.sha256(d.raw).hexdigest()))
                for d in dead_letters
            ]
            return self.recorder.append(batch, cursors, sealed, self.clock())

    # --- reading --------------------------------------------------------------------------

    def from_row(self, row: StoredRow) -> ev.CanonicalEvent:
        return self.decode(row.position, row.originator_id.bytes, row.topic, row.state,
                           row.recorded_at)

    def decode(self, position: int, stream: bytes, topic: str, state: bytes,
               recorded_at: datetime | None) -> ev.CanonicalEvent:
        """An event from the fields of its stored row that decoding needs (the stream id's
        16 bytes authenticate the payload): ``from_row``, and rows fetched by another process
        (``hub.store.prefetch``), which sends these fields only."""
        d: dict[str, Any] = orjson.loads(self.cipher.open(state, stream))
        cls = ev.PAYLOAD_TYPES[topic]
        return ev.CanonicalEvent(
            event_id=UUID(d["event_id"]),
            source_system=d["source_system"],
            source_record_id=d["source_record_id"],
            source_version=d["source_version"],
            occurred_at=datetime.fromisoformat(d["occurred_at"]),
            payload=payload_from_dict(cls, d["payload"], from_text=True),
            person=d["person"],
            person_key=d["person_key"],
            case_key=d["case_key"],
            actor=d["actor"],
            schema_version=d["schema_version"],
            recorded_at=recorded_at,
            position=position,
        )

    def read(self, after: int = 0, limit: int = 1000, types: Sequence[str] = ()
             ) -> list[ev.CanonicalEvent]:
        return [self.from_row(r) for r in self.recorder.rows_after(after, limit, types)]

    def iter_events(self, after: int = 0, batch_size: int = 5000, types: Sequence[str] = ()
                    ) -> Iterator[ev.CanonicalEvent]:
        """Every event after ``after`` in global order, ``batch_size`` rows in memory at a time."""
        while True:
            rows = self.recorder.rows_after(after, batch_size, types)
            if not rows:
                return
            for r in rows:
                yield self.from_row(r)
            after = rows[-1].position

    def case_events(self, case_key: str) -> list[ev.CanonicalEvent]:
        """A case's stream in order (every case event is in the stream case:<key>)."""
        return [self.from_row(r) for r in self.recorder.stream_rows(case_stream_id(case_key))]

    def person_events(self, identifier: str | None = None, *, person_key: str | None = None
                      ) -> list[ev.CanonicalEvent]:
        """All events about a person: their own stream and every event that names them."""
        key = person_key or self.pseudonymizer.person_key(identifier or "")
        return [self.from_row(r) for r in self.recorder.person_rows(key)]

    def person_stream(self, person_key: str) -> list[ev.CanonicalEvent]:
        return [self.from_row(r) for r in self.recorder.stream_rows(person_stream_id(person_key))]

    def max_position(self) -> int:
        return self.recorder.max_position()

    def cursors(self, connector: str) -> dict[str, str]:
        return self.recorder.cursors(connector)

    def reset_cursors(self, connector: str, stream: str | None = None) -> int:
        return self.recorder.reset_cursors(connector, stream)

    def dead_letters(self, limit: int = 100, source_system: str | None = None
                     ) -> list[StoredDeadLetter]:
        """Dead letters with their raw record decrypted (for the integration team's review)."""
        return [
            StoredDeadLetter(d.id, d.source_system,
                             self.cipher.open(d.source_record_id, _DEAD_LETTER_AD).decode()
                             if isinstance(d.source_record_id, bytes) else d.source_record_id,
                             d.reason, self.cipher.open(d.raw, _DEAD_LETTER_AD), d.recorded_at)
            for d in self.recorder.dead_letters(limit, source_system)
        ]

    def dead_letter_counts(self) -> dict[str, int]:
        return self.recorder.dead_letter_counts()

    def counts(self) -> list[tuple[str, str, int]]:
        return self.recorder.counts()

    def close(self) -> None:
        self.recorder.close()
