"""SQLite backend (the embedded default): the eventsourcing library's application recorder,
widened with index columns, and a batch append in one IMMEDIATE transaction.

The library's ``insert_events``/``select_notifications`` keep working on the same table, so the
library's recorder test cases run against this class. Positions are SQLite rowids.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import PersistenceError
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from hub.store.contract import (
    PROBE_EDGE,
    AppendOutcome,
    CursorUpdate,
    DeadLetter,
    EventRecorder,
    RowBatch,
    StoredDeadLetter,
    StoredRow,
    StoreError,
    next_versions,
    stream_persons,
    write_new_rows,
)

_CHUNK = 900  # host parameters per IN (...) list, well under SQLite's limit
#: Up to this many rows an append looks up every key first (one short query either way).
_SMALL_BATCH = 32
#: Per-connection settings of the writer. WAL with synchronous=NORMAL never corrupts the file; a
#: power cut may lose the last commits, but those commits carried the connectors' cursors with
#: their events, so the connectors re-read exactly what was lost (exactly-once holds). A 64 MiB
#: page cache keeps the indexes' hot pages in memory during bulk appends, and checkpoints wait
#: for 64 MiB of log (not SQLite's 4 MiB): a batch of 5,000 events dirties that much in random
#: index pages, and checkpointing after every batch copied (and synced) them each time.
WRITER_PRAGMAS = ("PRAGMA synchronous=NORMAL", "PRAGMA cache_size=-65536",
                   "PRAGMA wal_autocheckpoint=16384")


def _chunks(values: list) -> Iterator[list]:
    for i in range(0, len(values), _CHUNK):
        yield values[i:i + _CHUNK]


def datastore_from_url(url: str) -> SQLiteDatastore:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:``."""
    if not url.startswith("sqlite:///"):
        raise StoreError(f"not an SQLite URL: {url}")
    path = url[len("sqlite:///"):]
    if path == ":memory:":
        path = "file:glasplade?mode=memory&cache=shared"
    return SQLiteDatastore(db_name=path, lock_timeout=30)


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class GlaspladeSQLiteRecorder(SQLiteApplicationRecorder, EventRecorder):
    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "glasplade_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.small_batch = _SMALL_BATCH
        self.probe_edge = PROBE_EDGE
        t = events_table_name
        self.insert_events_statement = (
            f"INSERT INTO {t} (originator_id, originator_version, topic, state) VALUES (?,?,?,?)")
        self._insert_row = (
            f"INSERT INTO {t} (originator_id, originator_version, topic, state, source_system,"
            " source_key, person_key, case_key, occurred_at, recorded_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)")
        self._cols = ("rowid, originator_id, originator_version, topic, state, source_system,"
                      " person_key, case_key, occurred_at, recorded_at")

    def construct_create_table_statements(self) -> list[str]:
        t = self.events_table_name
        return [
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB,"
            " source_system TEXT, source_key BLOB, person_key TEXT, case_key TEXT,"
            " occurred_at TEXT, recorded_at TEXT,"
            " PRIMARY KEY (originator_id, originator_version))",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {t}_source_key_idx ON {t} (source_key)"
            " WHERE source_key IS NOT NULL",
            # which streams hold events about a person (see EventRecorder.person_rows)
            "CREATE TABLE IF NOT EXISTS glasplade_stream_persons (person_key TEXT NOT NULL,"
            " originator_id TEXT NOT NULL, PRIMARY KEY (person_key, originator_id))"
            " WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS glasplade_cursors (connector TEXT NOT NULL,"
            " stream TEXT NOT NULL, position TEXT NOT NULL, updated_at TEXT NOT NULL,"
            " PRIMARY KEY (connector, stream))",
            "CREATE TABLE IF NOT EXISTS glasplade_dead_letters (id INTEGER PRIMARY KEY,"
            " source_system TEXT NOT NULL, source_record_id BLOB, reason TEXT NOT NULL,"
            " raw BLOB NOT NULL, raw_key BLOB UNIQUE, recorded_at TEXT NOT NULL)",
        ]

    # --- EventRecorder --------------------------------------------------------------------

    def create_tables(self) -> None:
        try:
            self.create_table()
            self._migrate_person_index()
        except (sqlite3.Error, PersistenceError) as exc:
            raise StoreError(f"cannot create the event store tables: {exc}") from exc

    def _migrate_person_index(self) -> None:
        """A store of the earlier layout (a person index entry per event) gets its stream
        persons rows from its events and loses the index, in one transaction: a crash leaves
        the earlier layout, which the next start migrates."""
        t = self.events_table_name
        with self.datastore.get_connection(commit=True) as conn:
            c = conn.cursor()

            def earlier_layout() -> bool:
                c.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                          (f"{t}_person_key_idx",))
                return c.fetchone() is not None

            if not earlier_layout():  # the common case: no write lock taken
                return
            c.execute("BEGIN IMMEDIATE")
            try:
                if earlier_layout():  # not migrated by another process meanwhile
                    c.execute("INSERT OR IGNORE INTO glasplade_stream_persons (person_key,"
                              f" originator_id) SELECT DISTINCT person_key, originator_id FROM {t}"
                              " WHERE person_key IS NOT NULL")
                    c.execute(f'DROP INDEX "{t}_person_key_idx"')
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def append(self, batch: RowBatch, cursors: Sequence[CursorUpdate],
               dead_letters: Sequence[DeadLetter], recorded_at: datetime) -> AppendOutcome:
        t = self.events_table_name
        try:
            with self.datastore.get_connection(commit=True) as conn:
                c = conn.cursor()
                for pragma in WRITER_PRAGMAS:
                    c.execute(pragma)
                c.execute("BEGIN IMMEDIATE")
                try:
                    outcome = self._append(c, t, batch, cursors, dead_letters, _ts(recorded_at))
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
                return outcome
        except (sqlite3.Error, PersistenceError) as exc:
            raise StoreError(str(exc)) from exc

    def _append(self, c: Any, t: str, batch: RowBatch, cursors: Sequence[CursorUpdate],
                dead_letters: Sequence[DeadLetter], recorded_at: str | None) -> AppendOutcome:
        keys = batch.keys

        def stored_keys(source_keys: list[bytes]) -> set[bytes]:
            found: set[bytes] = set()
            for chunk in _chunks(source_keys):
                c.execute(f"SELECT source_key FROM {t} WHERE source_key IN "
                          f"({','.join('?' * len(chunk))})", chunk)
                found.update(row[0] for row in c.fetchall())
            return found

        raw = c.sqlite_cursor.connection
        begun = raw.total_changes

        @contextmanager
        def whole_transaction() -> Iterator[None]:
            """``write_new_rows``'s savepoint: the transaction itself, which holds nothing
            else yet (the rows are its first writes; checked). On error it is rolled back and
            the write lock taken again. An SQL ``SAVEPOINT`` would first copy every page the
            rows change to a sub-journal file, in case of a rollback that almost never comes:
            about a tenth of a bulk append (``bench/ingest.py``)."""
            if raw.total_changes != begun:
                raise StoreError("the rows must be the first writes of an append")
            try:
                yield
            except BaseException:
                c.execute("ROLLBACK")
                c.execute("BEGIN IMMEDIATE")
                raise

        fresh = write_new_rows(
            batch, small_batch=self.small_batch, probe_edge=self.probe_edge,
            stored=stored_keys, write=lambda rows: self._write(c, t, batch, rows, recorded_at),
            savepoint=whole_transaction, conflict=sqlite3.IntegrityError)
        last = None
        if fresh:
            c.execute(f"SELECT max(rowid) FROM {t}")
            last = c.fetchone()[0]
        if cursors:
            c.executemany(
                "INSERT INTO glasplade_cursors (connector, stream, position, updated_at)"
                " VALUES (?,?,?,?) ON CONFLICT (connector, stream) DO UPDATE SET"
                " position = excluded.position, updated_at = excluded.updated_at",
                [(x.connector, x.stream, x.position, recorded_at) for x in cursors])
        if dead_letters:
            c.executemany(
                "INSERT INTO glasplade_dead_letters (source_system, source_record_id,"
                " reason, raw, raw_key, recorded_at) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT (raw_key) DO NOTHING",
                [(d.source_system, d.source_record_id, d.reason, d.raw, d.raw_key, recorded_at)
                 for d in dead_letters])
        return AppendOutcome(len(fresh), len(keys) - len(fresh), len(dead_letters), last)

    def _write(self, c: Any, t: str, batch: RowBatch, fresh: list[int], recorded_at: str | None
               ) -> None:
        """Fresh rows, numbered after their streams' heads, sealed as they are inserted."""
        keys = batch.keys
        hex_of = {oid: oid.hex for oid in {keys[i][0] for i in fresh}}
        oid_of = {h: oid for oid, h in hex_of.items()}
        heads: dict[UUID, int] = {}
        for chunk in _chunks(list(hex_of.values())):
            c.execute(f"SELECT originator_id, max(originator_version) FROM {t} WHERE"
                      f" originator_id IN ({','.join('?' * len(chunk))})"
                      " GROUP BY originator_id", chunk)
            heads.update((oid_of[row[0]], row[1]) for row in c.fetchall())
        c.executemany(self._insert_row, (
            (hex_of[k[0]], v, k[1], state, k[2], k[3], k[4], k[5], k[6].isoformat(), recorded_at)
            for v, (k, state) in zip(next_versions(keys, fresh, heads), batch.sealed(fresh),
                                     strict=True)))
        c.executemany("INSERT OR IGNORE INTO glasplade_stream_persons (person_key, originator_id)"
                      " VALUES (?, ?)", [(p, hex_of[o]) for p, o in stream_persons(keys, fresh)])

    def _select(self, where: str, params: Sequence[Any], tail: str = "") -> list[StoredRow]:
        q = (f"SELECT {self._cols} FROM {self.events_table_name} WHERE {where}"
             f" ORDER BY rowid{tail}")
        try:
            with self.datastore.transaction(commit=False) as c:
                c.execute(q, params)
                return [
                    StoredRow(r[0], UUID(r[1]), r[2], r[3], r[4], r[5], r[6], r[7],
                              datetime.fromisoformat(r[8]) if r[8] else None,
                              datetime.fromisoformat(r[9]) if r[9] else None)
                    for r in c.fetchall()
                ]
        except (sqlite3.Error, PersistenceError) as exc:
            raise StoreError(str(exc)) from exc

    def rows_after(self, position: int, limit: int, topics: Sequence[str] = ()) -> list[StoredRow]:
        if topics:
            marks = ",".join("?" * len(topics))
            return self._select(f"rowid > ? AND topic IN ({marks})",
                                (position, *topics, limit), " LIMIT ?")
        return self._select("rowid > ?", (position, limit), " LIMIT ?")

    def stream_rows(self, originator_id: UUID) -> list[StoredRow]:
        return self._select("originator_id = ?", (originator_id.hex,))

    def person_rows(self, person_key: str) -> list[StoredRow]:
        return self._select("originator_id IN (SELECT originator_id FROM glasplade_stream_persons"
                            " WHERE person_key = ?) AND person_key = ?", (person_key, person_key))

    def max_position(self) -> int:
        return self.max_notification_id() or 0

    def _query(self, q: str, params: Sequence[Any] = (), *, write: bool = False) -> list[tuple]:
        try:
            with self.datastore.transaction(commit=write) as c:
                c.execute(q, params)
                if write:
                    return [(c.rowcount,)] if hasattr(c, "rowcount") else [(0,)]
                return [tuple(r) for r in c.fetchall()]
        except (sqlite3.Error, PersistenceError) as exc:
            raise StoreError(str(exc)) from exc

    def cursors(self, connector: str) -> dict[str, str]:
        return dict(self._query(
            "SELECT stream, position FROM glasplade_cursors WHERE connector = ?", (connector,)))

    def reset_cursors(self, connector: str, stream: str | None = None) -> int:
        before = len(self.cursors(connector))
        if stream is None:
            self._query("DELETE FROM glasplade_cursors WHERE connector = ?", (connector,),
                        write=True)
        else:
            self._query("DELETE FROM glasplade_cursors WHERE connector = ? AND stream = ?",
                        (connector, stream), write=True)
        return before - len(self.cursors(connector))

    def dead_letters(self, limit: int = 100, source_system: str | None = None
                     ) -> list[StoredDeadLetter]:
        where = "WHERE source_system = ? " if source_system else ""
        params: tuple = (source_system, limit) if source_system else (limit,)
        rows = self._query("SELECT id, source_system, source_record_id, reason, raw, recorded_at"
                           f" FROM glasplade_dead_letters {where}ORDER BY id DESC LIMIT ?", params)
        return [StoredDeadLetter(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5]))
                for r in rows]

    def dead_letter_counts(self) -> dict[str, int]:
        return dict(self._query(
            "SELECT source_system, count(*) FROM glasplade_dead_letters GROUP BY 1"))

    def counts(self) -> list[tuple[str, str, int]]:
        return self._query(f"SELECT topic, coalesce(source_system, ''), count(*) FROM"
                           f" {self.events_table_name} GROUP BY 1, 2 ORDER BY 1, 2")

    def close(self) -> None:
        self.datastore.close()
