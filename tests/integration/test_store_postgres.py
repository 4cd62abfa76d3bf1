"""The event store contract on PostgreSQL: one fresh database for the class, an empty ``public``
schema for every test."""

from __future__ import annotations

from contextlib import ExitStack

import psycopg

from hub.bootstrap import open_recorder
from hub.store import testing
from hub.store.eventstore import EventStore
from tests import pg


class TestPostgresEventStore(testing.EventStoreContract):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.stack = ExitStack()
        try:
            admin = cls.stack.enter_context(pg.server_url())
        except pg.NoPostgres as exc:  # never a silent skip
            raise AssertionError(f"PostgreSQL is required for this test: {exc}") from None
        cls.url = cls.stack.enter_context(pg.fresh_database(admin, "glasplade_store"))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.stack.close()
        super().tearDownClass()

    def setUp(self) -> None:
        super().setUp()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def create_store(self, *, data_key: bytes = testing.DATA_KEY, clock=None) -> EventStore:
        store = testing.build_store(open_recorder(self.url), data_key=data_key, clock=clock)
        self.addCleanup(store.close)
        return store

    def to_earlier_layout(self, store: EventStore) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("DELETE FROM glasplade_stream_persons")
            conn.execute("CREATE INDEX glasplade_events_person_key_idx ON glasplade_events"
                         " (person_key) WHERE person_key IS NOT NULL")

    def has_earlier_person_index(self, store: EventStore) -> bool:
        with psycopg.connect(self.url) as conn:
            return conn.execute("SELECT to_regclass('public.glasplade_events_person_key_idx')"
                                ).fetchone()[0] is not None


class TestPostgresEventStoreBulkPath(TestPostgresEventStore):
    """The same contract with every append taking the path large batches take (a sample of keys
    probed, then COPY straight into the events table), however small the batch."""

    def create_store(self, *, data_key: bytes = testing.DATA_KEY, clock=None) -> EventStore:
        store = super().create_store(data_key=data_key, clock=clock)
        store.recorder.small_batch = 0
        return store


class TestPostgresEventStoreUnprobedBulkPath(TestPostgresEventStore):
    """The same contract with every append written before any key is looked up, so every
    stored duplicate is found by the unique index in the middle of the COPY: the write rolls
    back to its savepoint and the batch is deduped key by key (the path a sample misses)."""

    def create_store(self, *, data_key: bytes = testing.DATA_KEY, clock=None) -> EventStore:
        store = super().create_store(data_key=data_key, clock=clock)
        store.recorder.small_batch = 0
        store.recorder.probe_edge = 0
        return store


def test_processes_starting_at_once_create_the_tables_in_turn(pg_url):
    """The API server and a follower started together on a new database: both create the
    store's tables (without the lock the later ones failed on PostgreSQL's catalog)."""
    recorders = [open_recorder(pg_url, create=False) for _ in range(3)]
    errors = pg.at_once([r.create_tables for r in recorders])
    try:
        assert errors == []
        store = testing.build_store(recorders[0])
        person = testing.cpr(1)
        events = [testing.registered(person), testing.opened("demo:c1", person)]
        assert store.append(events).stored == 2
        assert [e.event_type for e in store.read()] == ["PersonRegistered", "CaseOpened"]
    finally:
        for r in recorders:
            r.close()
