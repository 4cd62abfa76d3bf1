"""The event store's conformance test cases, shipped with the code (the eventsourcing library's
style): a backend's test subclasses ``EventStoreContract`` and supplies ``create_store()``.

``create_store()`` must return a new ``EventStore`` on the SAME, initially empty database each
time it is called within one test (two stores on one database are how concurrency is tested),
and close it when the test ends (``self.addCleanup(store.close)``). Use ``build_store`` to wrap
the backend's recorder with the keys the cases expect.

Import the module, not the class, in a test module (``from hub.store import testing``), so that
the test runner does not collect the base class itself.
"""

from __future__ import annotations

import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest import TestCase

from hub.domain import events as ev
from hub.domain.cpr import synthetic_cpr
from hub.domain.streams import case_stream_id, person_stream_id
from hub.personal_data import DecryptionError, PayloadCipher, Pseudonymizer
from hub.store.contract import CursorUpdate, DeadLetter, EventRecorder, StoreError
from hub.store.eventstore import EventStore

DATA_KEY = bytes(range(32))
PSEUDONYM_KEY = bytes(range(32, 64))
T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def build_store(recorder: EventRecorder, *, data_key: bytes = DATA_KEY,
                clock: Callable[[], datetime] | None = None) -> EventStore:
    """An ``EventStore`` over ``recorder`` with the contract's keys (and an optional clock)."""
    kw: dict[str, Any] = {"clock": clock} if clock else {}
    return EventStore(recorder, Pseudonymizer(PSEUDONYM_KEY), PayloadCipher(data_key), **kw)


def cpr(n: int) -> str:
    """The n-th synthetic CPR number of the contract's test population."""
    return synthetic_cpr(date(1980, 1, 1) + timedelta(days=n), n)


def event(payload: Any, *, record_id: str | None = None, version: str = "1",
          source: str = "test", person: str | None = None, case_key: str | None = None,
          occurred_at: datetime = T0) -> ev.CanonicalEvent:
    return ev.CanonicalEvent(
        event_id=uuid.uuid4(), source_system=source,
        source_record_id=record_id or uuid.uuid4().hex, source_version=version,
        occurred_at=occurred_at, payload=payload, person=person, case_key=case_key,
        actor="cw-1")


def opened(case_key: str, person: str, **kw: Any) -> ev.CanonicalEvent:
    return event(ev.CaseOpened(department="BUF", unit_id="u1", unit_name="Familieafdelingen",
                               case_type="underretning", status="open"),
                 case_key=case_key, person=person, **kw)


def action(case_key: str, person: str, n: int, **kw: Any) -> ev.CanonicalEvent:
    return event(ev.CaseActionRecorded(action_id=f"a{n}", action_type="journal_note"),
                 case_key=case_key, person=person, **kw)


def registered(person: str, **kw: Any) -> ev.CanonicalEvent:
    return event(ev.PersonRegistered(first_name="Testa", last_name="Testesen",
                                     birth_date=date(1980, 1, 1), sex="K"), person=person, **kw)


class _Boom(RuntimeError):
    pass


class _ExplodingCursor:
    """Quacks like ``CursorUpdate`` until the store reads its position: then it raises, after
    the batch's events were already inserted in the open transaction.
    """

    connector = "boom"
    stream = "s"

    @property
    def position(self) -> str:
        raise _Boom("failure injected after the events were inserted")


class EventStoreContract(TestCase, ABC):
    """What every event store backend must do."""

    @abstractmethod
    def create_store(self, *, data_key: bytes = DATA_KEY,
                     clock: Callable[[], datetime] | None = None) -> EventStore:
        """A new store on this test's database (see the module docstring)."""

    @abstractmethod
    def to_earlier_layout(self, store: EventStore) -> None:
        """Turn the store's database into the layout before the stream persons table: that
        table empty, an index on the events' ``person_key`` named
        ``<events table>_person_key_idx``."""

    @abstractmethod
    def has_earlier_person_index(self, store: EventStore) -> bool: ...

    # --- order, streams, reads ------------------------------------------------------------

    def test_append_and_read_in_global_order(self) -> None:
        s = self.create_store()
        p = cpr(1)
        batch = [opened("dubu:S-1", p)] + [action("dubu:S-1", p, i) for i in range(4)]
        out = s.append(batch)
        self.assertEqual((out.stored, out.duplicates, out.dead_lettered), (5, 0, 0))
        got = s.read()
        self.assertEqual([e.event_id for e in got], [e.event_id for e in batch])
        positions = [e.position for e in got]
        self.assertEqual(positions, sorted(positions))
        self.assertEqual(len(set(positions)), 5)
        self.assertEqual(out.last_position, positions[-1])
        self.assertEqual(s.max_position(), positions[-1])
        self.assertEqual([e.event_id for e in s.read(after=positions[1], limit=2)],
                         [batch[2].event_id, batch[3].event_id])
        self.assertEqual([e.event_id for e in s.iter_events(batch_size=2)],
                         [e.event_id for e in batch])
        self.assertEqual([e.event_type for e in s.read(types=["CaseOpened"])], ["CaseOpened"])
        # Everything in the envelope survives the round trip (payload decrypted).
        first = got[0]
        for name in ("source_system", "source_record_id", "source_version", "occurred_at",
                     "payload", "person", "case_key", "actor", "schema_version"):
            self.assertEqual(getattr(first, name), getattr(batch[0], name), name)
        self.assertEqual(first.person_key, s.person_key(p))

    def test_empty_store(self) -> None:
        s = self.create_store()
        self.assertEqual(s.read(), [])
        self.assertEqual(s.max_position(), 0)
        self.assertEqual(s.counts(), [])
        self.assertEqual(s.case_events("nope:1"), [])
        self.assertEqual(s.person_events(cpr(1)), [])
        out = s.append([])
        self.assertEqual((out.stored, out.duplicates, out.last_position), (0, 0, None))

    def test_streams_per_case_and_per_person_have_versions_1_to_n(self) -> None:
        s = self.create_store()
        p, q = cpr(1), cpr(2)
        s.append([registered(p), opened("dubu:S-1", p), action("dubu:S-1", p, 1)])
        s.append([registered(q), action("dubu:S-1", p, 2), opened("fasit:F-9", p)])
        s.append([action("dubu:S-1", p, 3)])
        case_rows = s.recorder.stream_rows(case_stream_id("dubu:S-1"))
        self.assertEqual([r.originator_version for r in case_rows], [1, 2, 3, 4])
        self.assertEqual([r.topic for r in case_rows],
                         ["CaseOpened"] + ["CaseActionRecorded"] * 3)
        other = s.recorder.stream_rows(case_stream_id("fasit:F-9"))
        self.assertEqual([r.originator_version for r in other], [1])
        person_rows = s.recorder.stream_rows(person_stream_id(s.person_key(p)))
        self.assertEqual([(r.originator_version, r.topic) for r in person_rows],
                         [(1, "PersonRegistered")])
        self.assertEqual([e.event_type for e in s.person_stream(s.person_key(q))],
                         ["PersonRegistered"])

    def test_case_events_and_person_events(self) -> None:
        s = self.create_store()
        p, q = cpr(1), cpr(2)
        s.append([registered(p), opened("dubu:S-1", p), registered(q), opened("cura:C-7", q),
                  action("dubu:S-1", p, 1), action("cura:C-7", q, 1)])
        case = s.case_events("dubu:S-1")
        self.assertEqual([e.event_type for e in case], ["CaseOpened", "CaseActionRecorded"])
        self.assertTrue(all(e.case_key == "dubu:S-1" for e in case))
        mine = s.person_events(p)
        self.assertEqual([e.event_type for e in mine],
                         ["PersonRegistered", "CaseOpened", "CaseActionRecorded"])
        self.assertTrue(all(e.person == p for e in mine))
        self.assertEqual([e.position for e in mine], sorted(e.position for e in mine))
        self.assertEqual(s.person_events(person_key=s.person_key(q))[0].person, q)

    def test_person_events_in_a_stream_shared_with_another_person(self) -> None:
        # a case's stream can hold events about two people (a parent on a child's case); a
        # person's events are exactly theirs, wherever they are, including a stream that only
        # later names them, and a duplicate append adds nothing
        s = self.create_store()
        p, q = cpr(1), cpr(2)
        s.append([registered(p), opened("dubu:S-1", p), action("dubu:S-1", p, 1)])
        s.append([action("dubu:S-1", p, 5), action("dubu:S-1", q, 2), registered(q),
                  opened("cura:C-7", q)])
        again = [action("cura:C-7", q, 4, record_id="r-4")]
        s.append(again)
        s.append(again)
        mine = s.person_events(q)
        self.assertEqual([(e.event_type, e.case_key) for e in mine], [
            ("CaseActionRecorded", "dubu:S-1"), ("PersonRegistered", None),
            ("CaseOpened", "cura:C-7"), ("CaseActionRecorded", "cura:C-7")])
        self.assertEqual([e.position for e in mine], sorted(e.position for e in mine))
        self.assertEqual([e.event_type for e in s.person_events(p)],
                         ["PersonRegistered", "CaseOpened"] + ["CaseActionRecorded"] * 2)
        self.assertEqual(s.person_events(cpr(3)), [])

    def test_start_up_migrates_a_store_with_a_person_index_per_event(self) -> None:
        s = self.create_store()
        p, q = cpr(1), cpr(2)
        s.append([registered(p), opened("dubu:S-1", p), action("dubu:S-1", q, 1),
                  registered(q)])
        self.to_earlier_layout(s)
        self.assertEqual(s.person_events(p), [])  # the table is what person_events reads
        self.assertTrue(self.has_earlier_person_index(s))
        s.recorder.create_tables()  # as every start does
        self.assertEqual([e.event_type for e in s.person_events(p)],
                         ["PersonRegistered", "CaseOpened"])
        self.assertEqual([e.event_type for e in s.person_events(q)],
                         ["CaseActionRecorded", "PersonRegistered"])
        self.assertFalse(self.has_earlier_person_index(s))
        s.recorder.create_tables()  # and again: nothing left to do
        self.assertEqual(len(s.person_events(q)), 2)

    def test_two_times_on_every_event(self) -> None:
        recorded = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
        s = self.create_store(clock=lambda: recorded)
        business = datetime(2019, 5, 4, 8, 15, tzinfo=UTC)
        s.append([opened("dubu:S-1", cpr(1), occurred_at=business)])
        (e,) = s.read()
        self.assertEqual(e.occurred_at, business)
        self.assertEqual(e.recorded_at, recorded)
        self.assertIsNotNone(e.recorded_at.tzinfo)
        (row,) = s.recorder.rows_after(0, 10)
        self.assertEqual(row.occurred_at, business)
        self.assertEqual(row.recorded_at, recorded)

    def test_counts(self) -> None:
        s = self.create_store()
        p = cpr(1)
        s.append([opened("dubu:S-1", p, source="dubu"), action("dubu:S-1", p, 1, source="dubu"),
                  action("dubu:S-1", p, 2, source="dubu"), registered(p, source="cpr")])
        self.assertEqual(sorted(s.counts()), [("CaseActionRecorded", "dubu", 2),
                                              ("CaseOpened", "dubu", 1),
                                              ("PersonRegistered", "cpr", 1)])

    # --- dedupe -------------------------------------------------------------------------------

    def test_dedupe_within_a_batch_and_across_batches(self) -> None:
        s = self.create_store()
        p = cpr(1)
        a = action("dubu:S-1", p, 1, record_id="J-1", version="v1", source="dubu")
        again = action("dubu:S-1", p, 1, record_id="J-1", version="v1", source="dubu")
        out = s.append([a, again])
        self.assertEqual((out.stored, out.duplicates), (1, 1))
        out = s.append([again, action("dubu:S-1", p, 1, record_id="J-1", version="v1",
                                      source="dubu")])
        self.assertEqual((out.stored, out.duplicates, out.last_position), (0, 2, None))
        # A new version of the record, or the same id in another system, is a new fact.
        out = s.append([action("dubu:S-1", p, 1, record_id="J-1", version="v2", source="dubu"),
                        action("dubu:S-1", p, 1, record_id="J-1", version="v1", source="sbsys")])
        self.assertEqual((out.stored, out.duplicates), (2, 0))
        self.assertEqual(len(s.read()), 3)
        self.assertEqual([r.originator_version for r in
                          s.recorder.stream_rows(case_stream_id("dubu:S-1"))], [1, 2, 3])

    def test_a_large_batch_with_stored_events_between_its_probed_rows(self) -> None:
        # A large batch is written whole when a sample of its keys is new; stored events the
        # sample misses are found on the way in and the batch is then deduped key by key.
        s = self.create_store()
        batch = [action("dubu:S-1" if i % 2 else "dubu:S-2", cpr(1 + i % 3), i,
                        record_id=f"J-{i}", source="dubu") for i in range(300)]
        stored_before = [batch[i] for i in (17, 19, 151, 283)]  # none of them probed
        self.assertEqual(s.append(stored_before).stored, 4)
        out = s.append(batch)
        self.assertEqual((out.stored, out.duplicates), (296, 4))
        self.assertEqual(s.append(batch).stored, 0)
        self.assertEqual(len(s.read(limit=1000)), 300)
        for case in ("dubu:S-1", "dubu:S-2"):
            versions = [r.originator_version for r in s.recorder.stream_rows(case_stream_id(case))]
            self.assertEqual(versions, list(range(1, 151)))
        positions = [e.position for e in s.read(limit=1000)]
        self.assertEqual(positions, sorted(positions))
        self.assertEqual(out.last_position, positions[-1])

    # --- cursors and atomicity ------------------------------------------------------------

    def test_cursors_are_written_with_their_events(self) -> None:
        s = self.create_store()
        out = s.append([opened("dubu:S-1", cpr(1))],
                       cursors=[CursorUpdate("dubu", "sag", "2024-01-01T00:00:00")])
        self.assertEqual(out.stored, 1)
        self.assertEqual(s.cursors("dubu"), {"sag": "2024-01-01T00:00:00"})
        s.append([], cursors=[CursorUpdate("dubu", "sag", "2024-02-01T00:00:00"),
                              CursorUpdate("dubu", "aktivitet", "17")])
        self.assertEqual(s.cursors("dubu"), {"sag": "2024-02-01T00:00:00", "aktivitet": "17"})
        self.assertEqual(s.cursors("cura"), {})
        self.assertEqual(s.reset_cursors("dubu", "aktivitet"), 1)
        self.assertEqual(s.cursors("dubu"), {"sag": "2024-02-01T00:00:00"})
        self.assertEqual(s.reset_cursors("dubu"), 1)
        self.assertEqual(s.cursors("dubu"), {})

    def _assert_nothing_committed(self, s: EventStore, before: int) -> None:
        self.assertEqual(s.max_position(), before)
        self.assertEqual(len(s.read()), 1)
        self.assertEqual(s.cursors("dubu"), {"sag": "old"})
        self.assertEqual(s.dead_letter_counts(), {})

    def _store_with_one_event(self) -> tuple[EventStore, int]:
        s = self.create_store()
        s.append([opened("dubu:S-1", cpr(1))], cursors=[CursorUpdate("dubu", "sag", "old")])
        return s, s.max_position()

    def test_constraint_violation_after_the_events_commits_nothing(self) -> None:
        s, before = self._store_with_one_event()
        batch = [action("dubu:S-1", cpr(1), i) for i in range(3)]
        # A cursor without a position violates NOT NULL; it is written after the events.
        with self.assertRaises(StoreError):
            s.append(batch, cursors=[CursorUpdate("dubu", "sag", "new"),
                                     CursorUpdate("dubu", "x", None)])  # type: ignore[arg-type]
        self._assert_nothing_committed(s, before)
        # The same batch without the bad part goes in whole.
        out = s.append(batch, cursors=[CursorUpdate("dubu", "sag", "new")])
        self.assertEqual(out.stored, 3)
        self.assertEqual(s.cursors("dubu"), {"sag": "new"})

    def test_a_dead_letter_that_cannot_be_stored_fails_the_whole_batch(self) -> None:
        s, before = self._store_with_one_event()
        # A dead letter without a reason violates NOT NULL; it is written after events and
        # cursors. It must fail the batch, never be dropped silently (nothing may be lost).
        with self.assertRaises(StoreError):
            s.append([action("dubu:S-1", cpr(1), i) for i in range(3)],
                     cursors=[CursorUpdate("dubu", "sag", "new")],
                     dead_letters=[DeadLetter("dubu", None, b"{}")])  # type: ignore[arg-type]
        self._assert_nothing_committed(s, before)

    def test_exception_after_the_insert_commits_nothing(self) -> None:
        s, before = self._store_with_one_event()
        with self.assertRaises(_Boom):
            s.append([action("dubu:S-1", cpr(1), i) for i in range(3)],
                     cursors=[CursorUpdate("dubu", "sag", "new"), _ExplodingCursor()])
        self._assert_nothing_committed(s, before)
        # The store is still usable and the stream's versions have no gap.
        s.append([action("dubu:S-1", cpr(1), 9)])
        self.assertEqual([r.originator_version for r in
                          s.recorder.stream_rows(case_stream_id("dubu:S-1"))], [1, 2])

    # --- dead letters ---------------------------------------------------------------------

    def test_dead_letters_are_kept_once_per_identical_raw_record(self) -> None:
        s = self.create_store()
        bad = DeadLetter("dubu", "line 3: invalid JSON", b'{"broken', "R-1")
        other = DeadLetter("dubu", "missing field", b'{"x": 1}', "R-2")
        s.append([opened("dubu:S-1", cpr(1))], dead_letters=[bad, bad, other])
        s.append([], dead_letters=[bad])
        self.assertEqual(s.dead_letter_counts(), {"dubu": 2})
        kept = s.dead_letters()
        self.assertEqual(sorted(d.raw for d in kept), sorted([b'{"broken', b'{"x": 1}']))
        self.assertEqual({d.reason for d in kept}, {"line 3: invalid JSON", "missing field"})
        self.assertEqual({d.source_record_id for d in kept}, {"R-1", "R-2"})
        self.assertTrue(all(d.recorded_at.tzinfo is not None for d in kept))
        self.assertEqual(s.dead_letters(source_system="cura"), [])
        # Sealed at rest: the raw record is not in the backend's row.
        self.assertTrue(all(b'{"broken' not in d.raw for d in s.recorder.dead_letters()))

    # --- concurrency ----------------------------------------------------------------------

    def test_concurrent_writers_on_one_stream_both_succeed(self) -> None:
        stores = [self.create_store(), self.create_store()]
        p = cpr(1)
        stores[0].append([opened("dubu:S-1", p)])
        per_thread, batches = 20, 5
        errors: list[BaseException] = []
        start = threading.Barrier(len(stores))

        def write(s: EventStore, tag: str) -> None:
            try:
                start.wait()
                for b in range(batches):
                    s.append([action("dubu:S-1", p, i, record_id=f"{tag}-{b}-{i}")
                              for i in range(per_thread)])
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(s, f"w{n}"))
                   for n, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        total = 1 + len(stores) * batches * per_thread
        rows = stores[1].recorder.stream_rows(case_stream_id("dubu:S-1"))
        self.assertEqual([r.originator_version for r in rows], list(range(1, total + 1)))
        self.assertEqual(len({r.position for r in rows}), total)
        # The stream's order is the global order.
        self.assertEqual([r.position for r in rows], sorted(r.position for r in rows))
        self.assertEqual(len(stores[0].read(limit=10 * total)), total)

    def test_a_stream_version_cannot_be_written_twice(self) -> None:
        from eventsourcing.persistence import IntegrityError, StoredEvent

        s = self.create_store()
        s.append([opened("dubu:S-1", cpr(1))])
        taken = StoredEvent(originator_id=case_stream_id("dubu:S-1"), originator_version=1,
                            topic="CaseOpened", state=b"x")
        with self.assertRaises(IntegrityError):
            s.recorder.insert_events([taken])  # type: ignore[attr-defined]
        self.assertEqual(len(s.read()), 1)

    # --- personal data --------------------------------------------------------------------

    def test_wrong_data_key_fails_to_decrypt(self) -> None:
        p = cpr(1)
        self.create_store().append([registered(p)])
        other = self.create_store(data_key=bytes(32))
        with self.assertRaises(DecryptionError):
            other.read()
        with self.assertRaises(DecryptionError):
            other.person_events(p)

    def test_payload_and_identity_are_not_stored_in_clear(self) -> None:
        s = self.create_store()
        p = cpr(1)
        s.append([registered(p)])
        (row,) = s.recorder.rows_after(0, 10)
        self.assertNotIn(p.encode(), row.state)
        self.assertNotIn(b"Testesen", row.state)
        self.assertEqual(row.person_key, s.person_key(p))
        self.assertNotEqual(row.person_key, p)
