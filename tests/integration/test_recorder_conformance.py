"""The eventsourcing library's own recorder test cases, run on Glasplade's recorders.

Our recorders widen the library's events table (source, dedupe key, person, case, two times) and
add a batch ``append``; the library's ``insert_events``/``select_*``/``max_notification_id``/
``subscribe`` must keep working on the same table. Every inherited test runs, including the
library's ``test_performance`` and ``test_concurrent_throughput`` (they print figures and assert
only that no error happened; they are fast enough here).

Database setup is our own: the library's PostgreSQL helpers (``eventsourcing.tests.
postgres_utils``) import ``examples`` packages that are not installed. PostgreSQL gets one fresh
database per test class (``tests.pg.fresh_database``) whose ``public`` schema is recreated before
every test, so each test starts with an empty table and notification ids from 1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from contextlib import ExitStack

import psycopg
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests.persistence import (
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
)

from hub.store.postgres import GlaspladePostgresRecorder, datastore_from_url
from hub.store.sqlite import GlaspladeSQLiteRecorder
from tests import pg


def _join_library_readers(before: set[threading.Thread]) -> None:
    """The library's concurrency tests signal their reader threads to stop but do not join them;
    closing a connection a reader still uses crashes sqlite3. Join those readers (Python names
    a thread after its target: ``Thread-N (read_continuously)``), not pool workers."""
    for t in set(threading.enumerate()) - before:
        if "read_continuously" in t.name:
            t.join(timeout=30)


# --- SQLite ---------------------------------------------------------------------------------


class _SQLiteFile:
    """A fresh database file per test (the library's tests use temporary files the same way)."""

    def setUp(self) -> None:
        super().setUp()
        self._dir = tempfile.mkdtemp(prefix="glasplade-conformance-")
        self._datastores: list[SQLiteDatastore] = []
        self._threads_before = set(threading.enumerate())

    def tearDown(self) -> None:
        _join_library_readers(self._threads_before)
        for d in self._datastores:
            d.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        super().tearDown()

    def create_recorder(self) -> GlaspladeSQLiteRecorder:
        datastore = SQLiteDatastore(os.path.join(self._dir, "events.db"), lock_timeout=30)
        self._datastores.append(datastore)
        recorder = GlaspladeSQLiteRecorder(datastore)
        recorder.create_table()
        return recorder


class _SQLiteMemory(_SQLiteFile):
    """A shared-cache in-memory database with a name unique to the test."""

    def create_recorder(self) -> GlaspladeSQLiteRecorder:
        name = f"file:glasplade_{uuid.uuid4().hex}?mode=memory&cache=shared"
        datastore = SQLiteDatastore(name, lock_timeout=30)
        self._datastores.append(datastore)
        recorder = GlaspladeSQLiteRecorder(datastore)
        recorder.create_table()
        return recorder


class TestSQLiteFileApplicationRecorder(_SQLiteFile, ApplicationRecorderTestCase):
    pass


class TestSQLiteMemoryApplicationRecorder(_SQLiteMemory, ApplicationRecorderTestCase):
    pass


class TestSQLiteFileNonInterleaving(_SQLiteFile, NonInterleavingNotificationIDsBaseCase):
    pass


class TestSQLiteMemoryNonInterleaving(_SQLiteMemory, NonInterleavingNotificationIDsBaseCase):
    pass


# --- PostgreSQL -----------------------------------------------------------------------------


class _PostgresDatabase:
    """One fresh database per test class; an empty ``public`` schema per test."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._stack = ExitStack()
        try:
            admin = cls._stack.enter_context(pg.server_url())
        except pg.NoPostgres as exc:  # never a silent skip: the test fails with the reason
            raise AssertionError(f"PostgreSQL is required for this test: {exc}") from None
        cls.db_url = cls._stack.enter_context(pg.fresh_database(admin, "glasplade_conf"))

    @classmethod
    def tearDownClass(cls) -> None:
        cls._stack.close()
        super().tearDownClass()

    def setUp(self) -> None:
        super().setUp()
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
        self._datastores = []
        self._threads_before = set(threading.enumerate())

    def tearDown(self) -> None:
        _join_library_readers(self._threads_before)
        for d in self._datastores:
            d.close()
        super().tearDown()

    def create_recorder(self) -> GlaspladePostgresRecorder:
        # Enough connections for the library's concurrency tests (10 writers and 2 readers).
        datastore = datastore_from_url(self.db_url, pool_size=12)
        self._datastores.append(datastore)
        recorder = GlaspladePostgresRecorder(datastore)
        recorder.create_table()
        return recorder


class TestPostgresApplicationRecorder(_PostgresDatabase, ApplicationRecorderTestCase):
    def test_insert_subscribe(self) -> None:
        # The library runs this optional case for its PostgreSQL recorder (LISTEN/NOTIFY).
        self.optional_test_insert_subscribe()


class TestPostgresNonInterleaving(_PostgresDatabase, NonInterleavingNotificationIDsBaseCase):
    pass


del ApplicationRecorderTestCase, NonInterleavingNotificationIDsBaseCase
