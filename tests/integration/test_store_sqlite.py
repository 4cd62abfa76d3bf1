"""The event store contract on SQLite (a fresh database file per test)."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from hub.bootstrap import open_recorder
from hub.store import testing
from hub.store.eventstore import EventStore


class TestSQLiteEventStore(testing.EventStoreContract):
    def setUp(self) -> None:
        super().setUp()
        self.dir = Path(tempfile.mkdtemp(prefix="glasplade-store-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def create_store(self, *, data_key: bytes = testing.DATA_KEY, clock=None) -> EventStore:
        store = testing.build_store(open_recorder(f"sqlite:///{self.dir / 'store.db'}"),
                                    data_key=data_key, clock=clock)
        self.addCleanup(store.close)
        return store

    def _sql(self, statement: str) -> list[tuple]:
        with sqlite3.connect(self.dir / "store.db", isolation_level=None) as conn:
            return conn.execute(statement).fetchall()

    def to_earlier_layout(self, store: EventStore) -> None:
        self._sql("DELETE FROM glasplade_stream_persons")
        self._sql("CREATE INDEX glasplade_events_person_key_idx ON glasplade_events (person_key)"
                  " WHERE person_key IS NOT NULL")

    def has_earlier_person_index(self, store: EventStore) -> bool:
        return bool(self._sql("SELECT 1 FROM sqlite_master WHERE type = 'index'"
                              " AND name = 'glasplade_events_person_key_idx'"))


class TestSQLiteEventStoreUnprobedBulkPath(TestSQLiteEventStore):
    """The same contract with every append written before any key is looked up: a stored
    duplicate is found by the unique index mid-insert, the write rolls back to its savepoint
    and the batch is deduped key by key (the path a probe sample misses)."""

    def create_store(self, *, data_key: bytes = testing.DATA_KEY, clock=None) -> EventStore:
        store = super().create_store(data_key=data_key, clock=clock)
        store.recorder.small_batch = 0
        store.recorder.probe_edge = 0
        return store


class TestSQLiteEventStoreBulkPath(TestSQLiteEventStore):
    """The same contract with every append taking the large-batch path (a probe sample)."""

    def create_store(self, *, data_key: bytes = testing.DATA_KEY, clock=None) -> EventStore:
        store = super().create_store(data_key=data_key, clock=clock)
        store.recorder.small_batch = 0
        return store
