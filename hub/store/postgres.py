"""PostgreSQL backend: the eventsourcing library's application recorder, widened with index
columns (source, dedupe key, person, case, two times) and a COPY-based batch append.

The library's own ``insert_events``/``select_notifications`` keep working on the same table (the
extra columns are nullable), so the library's recorder test cases run against this class.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

import psycopg
from eventsourcing.persistence import PersistenceError
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.sql import SQL, Composable, Identifier, Literal
from psycopg.types.string import BytesBinaryDumper

from hub.sql import SCHEMA_LOCK
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

_COLUMNS = ("originator_id", "originator_version", "topic", "state", "source_system",
            "source_key", "person_key", "case_key", "occurred_at", "recorded_at")

#: Up to this many rows an append uses plain INSERTs (lower latency for single events).
_SMALL_BATCH = 32
_COPY_TYPES = ("uuid", "int8", "text", "bytea", "text", "bytea", "text", "text", "timestamptz",
               "timestamptz")


def datastore_from_url(url: str, *, pool_size: int = 2, schema: str = "") -> PostgresDatastore:
    """``postgresql://user:pw@host:port/db`` -> the library's datastore (a psycopg pool)."""
    u = urlparse(url)
    if u.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise StoreError(f"not a PostgreSQL URL: {u.scheme}://...")
    return PostgresDatastore(
        dbname=(u.path or "/postgres").lstrip("/") or "postgres",
        host=u.hostname or "127.0.0.1",
        port=u.port or 5432,
        user=unquote(u.username or "postgres"),
        password=unquote(u.password or ""),
        pool_size=pool_size,
        max_overflow=2,
        schema=schema,
        connect_timeout=10,
    )


class GlaspladePostgresRecorder(PostgresApplicationRecorder, EventRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "glasplade_events",
                 cursors_table_name: str = "glasplade_cursors",
                 dead_letters_table_name: str = "glasplade_dead_letters",
                 stream_persons_table_name: str = "glasplade_stream_persons"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.small_batch = _SMALL_BATCH
        self.probe_edge = PROBE_EDGE
        s = Identifier(self.datastore.schema)
        t = Identifier(events_table_name)
        self._t = SQL("{}.{}").format(s, t)
        self._cursors = SQL("{}.{}").format(s, Identifier(cursors_table_name))
        self._dead = SQL("{}.{}").format(s, Identifier(dead_letters_table_name))
        self._persons = SQL("{}.{}").format(s, Identifier(stream_persons_table_name))
        #: The index of an earlier layout (one entry per event), replaced by the stream persons
        #: table (one row per stream and person); ``create_tables`` migrates.
        self._old_person_index = SQL("{}.{}").format(
            s, Identifier(f"{events_table_name}_person_key_idx"))
        self._old_person_index_name = (self.datastore.schema or "public",
                                       f"{events_table_name}_person_key_idx")
        self.sql_create_statements[self.create_table_statement_index] = SQL(
            "CREATE TABLE IF NOT EXISTS {t} ("
            " originator_id uuid NOT NULL,"
            " originator_version bigint NOT NULL,"
            " topic text,"
            " state bytea,"
            " notification_id bigserial,"
            " source_system text,"
            " source_key bytea,"
            " person_key text,"
            " case_key text,"
            " occurred_at timestamptz,"
            " recorded_at timestamptz DEFAULT now(),"
            " PRIMARY KEY (originator_id, originator_version))"
        ).format(t=self._t)
        self.sql_create_statements.append(SQL(
            "CREATE UNIQUE INDEX IF NOT EXISTS {i} ON {t} (source_key)"
            " WHERE source_key IS NOT NULL"
        ).format(i=Identifier(f"{events_table_name}_source_key_idx"), t=self._t))
        # Which streams hold events about a person: a row per (person, stream), written with
        # each batch that names them (ON CONFLICT DO NOTHING), instead of an index entry per
        # event.
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {p} (person_key text NOT NULL, originator_id uuid NOT NULL,"
            " PRIMARY KEY (person_key, originator_id))").format(p=self._persons))
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {c} (connector text NOT NULL, stream text NOT NULL,"
            " position text NOT NULL, updated_at timestamptz NOT NULL,"
            " PRIMARY KEY (connector, stream))").format(c=self._cursors))
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {d} (id bigserial PRIMARY KEY, source_system text NOT NULL,"
            " source_record_id bytea, reason text NOT NULL, raw bytea NOT NULL,"
            " raw_key bytea UNIQUE, recorded_at timestamptz NOT NULL)").format(d=self._dead))
        # Both look-ups probe an index once per key. (A plain ``= ANY(...)`` is planned blind on a
        # table that grew since it was last analysed: a parallel sequential scan for the heads.)
        self._existing_keys = SQL(
            "SELECT k FROM unnest(%b::bytea[]) k"
            " WHERE EXISTS (SELECT 1 FROM {t} e WHERE e.source_key = k)").format(t=self._t)
        self._stream_versions = SQL(
            "SELECT s, (SELECT e.originator_version FROM {t} e WHERE e.originator_id = s"
            "           ORDER BY e.originator_version DESC LIMIT 1)"
            " FROM unnest(%b::uuid[]) s").format(t=self._t)
        self._insert_rows = SQL("INSERT INTO {t} (" + ", ".join(_COLUMNS) + ") VALUES ("
                                + ", ".join(["%s"] * len(_COLUMNS)) + ")").format(t=self._t)
        self._copy_rows = SQL("COPY {t} (" + ", ".join(_COLUMNS) + ") FROM STDIN (FORMAT BINARY)"
                              ).format(t=self._t)
        self._add_stream_persons = SQL(
            "INSERT INTO {p} (person_key, originator_id)"
            " SELECT * FROM unnest(%b::text[], %b::uuid[]) ON CONFLICT DO NOTHING"
        ).format(p=self._persons)
        self._last_position = SQL("SELECT currval(pg_get_serial_sequence({t}, 'notification_id'))"
                                  ).format(t=Literal(f"{self.datastore.schema or 'public'}."
                                                     f"{events_table_name}"))

    # --- EventRecorder --------------------------------------------------------------------

    def create_tables(self) -> None:
        """Create (or migrate) the store's tables. Processes that start at once on a new
        database (the API server and a follower, say) take turns: PostgreSQL's ``IF NOT EXISTS``
        does not hold against a creation running concurrently (the later one fails on the
        catalog's unique index of type names)."""
        try:
            with self.datastore.get_connection() as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
                try:
                    self.create_table()
                    self._migrate_person_index()
                finally:  # (a lost connection releases it too)
                    conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        except (psycopg.Error, PersistenceError) as exc:
            raise StoreError(f"cannot create the event store tables: {exc}") from exc

    def _migrate_person_index(self) -> None:
        """A store of the earlier layout (a person index entry per event) gets its stream
        persons rows from its events and loses the index, in one transaction under the
        writers' lock: a crash leaves the earlier layout, which the next start migrates."""
        def earlier_layout(cur: Any) -> bool:
            cur.execute("SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
                        self._old_person_index_name)
            return bool(cur.fetchall())

        with self.datastore.transaction(commit=True) as cur:
            if not earlier_layout(cur):  # the common case: no lock taken
                return
            self._lock_table(cur)
            if not earlier_layout(cur):  # another process migrated it while this one waited
                return
            cur.execute(SQL(
                "INSERT INTO {p} (person_key, originator_id) SELECT DISTINCT person_key,"
                " originator_id FROM {t} WHERE person_key IS NOT NULL ON CONFLICT DO NOTHING"
            ).format(p=self._persons, t=self._t))
            cur.execute(SQL("DROP INDEX IF EXISTS {}").format(self._old_person_index))

    def append(self, batch: RowBatch, cursors: Sequence[CursorUpdate],
               dead_letters: Sequence[DeadLetter], recorded_at: datetime) -> AppendOutcome:
        try:
            with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cur:
                return self._append(cur, batch, cursors, dead_letters, recorded_at)
        except PersistenceError as exc:
            raise StoreError(str(exc)) from exc

    def _append(self, cur: Any, batch: RowBatch, cursors: Sequence[CursorUpdate],
                dead_letters: Sequence[DeadLetter], recorded_at: datetime) -> AppendOutcome:
        stored = 0
        last = None
        if len(batch):
            # The EXCLUSIVE lock (as in the library's _lock_table) serialises writers, so the
            # dedupe and version look-ups below stay exact until commit and positions (taken from
            # the sequence in write order) commit in order.
            self._lock_table(cur)
            self._notify_channel(cur)
            def stored_keys(source_keys: list[bytes]) -> set[bytes]:
                cur.execute(self._existing_keys, (source_keys,))
                return {bytes(k) for (k,) in _tuples(cur.fetchall())}

            fresh = write_new_rows(
                batch, small_batch=self.small_batch, probe_edge=self.probe_edge,
                stored=stored_keys, write=lambda rows: self._write(cur, batch, rows, recorded_at),
                savepoint=cur.connection.transaction, conflict=psycopg.errors.UniqueViolation)
            if fresh:
                stored = len(fresh)
                cur.execute(self._last_position)
                last = _tuples(cur.fetchall())[0][0]
        if cursors:
            cur.executemany(SQL(
                "INSERT INTO {c} (connector, stream, position, updated_at) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (connector, stream) DO UPDATE SET position = EXCLUDED.position,"
                " updated_at = EXCLUDED.updated_at").format(c=self._cursors),
                [(c.connector, c.stream, c.position, recorded_at) for c in cursors])
        if dead_letters:
            cur.executemany(SQL(
                "INSERT INTO {d} (source_system, source_record_id, reason, raw, raw_key,"
                " recorded_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (raw_key) DO NOTHING"
                ).format(d=self._dead),
                [(d.source_system, d.source_record_id, d.reason, d.raw, d.raw_key, recorded_at)
                 for d in dead_letters])
        return AppendOutcome(stored, len(batch) - stored, len(dead_letters), last)

    def _write(self, cur: Any, batch: RowBatch, fresh: list[int], recorded_at: datetime) -> None:
        """Fresh rows straight into the events table, numbered after their streams' heads: plain
        INSERTs for a few (no COPY set-up), binary COPY for more. COPY streams: the server inserts
        and indexes one chunk of rows while this process seals the next (``batch.sealed`` seals
        chunk by chunk)."""
        keys = batch.keys
        cur.execute(self._stream_versions, (list({keys[i].originator_id for i in fresh}),))
        heads = {oid: v for oid, v in _tuples(cur.fetchall()) if v is not None}
        rows = zip(next_versions(keys, fresh, heads), batch.sealed(fresh), strict=True)
        if len(fresh) <= self.small_batch:
            cur.executemany(self._insert_rows, [
                (k[0], v, k[1], state, *k[2:], recorded_at) for v, (k, state) in rows])
        else:
            # bytes through psycopg's C dumper (the default for bytea is the DB-API ``Binary``
            # wrapper's Python dumper: two Python calls a row)
            cur.adapters.register_dumper(bytes, BytesBinaryDumper)
            with cur.copy(self._copy_rows) as copy:
                copy.set_types(_COPY_TYPES)
                write_row = copy.write_row
                for v, (k, state) in rows:
                    write_row((k[0], v, k[1], state, k[2], k[3], k[4], k[5], k[6], recorded_at))
        persons = stream_persons(keys, fresh)
        if persons:
            cur.execute(self._add_stream_persons,
                        ([p for p, _ in persons], [o for _, o in persons]))

    def _select(self, where: str, params: Sequence[Any], tail: str = "") -> list[StoredRow]:
        return self._rows(SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state,"
            " source_system, person_key, case_key, occurred_at, recorded_at FROM {t} WHERE "
            + where + " ORDER BY notification_id" + tail).format(t=self._t), params)

    def _rows(self, q: Composable, params: Sequence[Any], *, no_jit: bool = False
              ) -> list[StoredRow]:
        """``no_jit``: a look-up of a few rows whose cost the planner may overestimate (a table
        grown since it was last analysed) must not pay for JIT compilation (70 ms)."""
        try:
            with self.datastore.get_connection() as conn, \
                    (conn.transaction() if no_jit else nullcontext()), conn.cursor() as cur:
                if no_jit:  # SET LOCAL lasts until the transaction ends
                    cur.execute("SET LOCAL jit = off")
                cur.execute(q, params)
                return [StoredRow(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6], r[7], r[8],
                                  r[9]) for r in _tuples(cur.fetchall())]
        except PersistenceError as exc:
            raise StoreError(str(exc)) from exc

    def rows_after(self, position: int, limit: int, topics: Sequence[str] = ()) -> list[StoredRow]:
        if topics:
            return self._select("notification_id > %s AND topic = ANY(%s)",
                                (position, list(topics), limit), " LIMIT %s")
        return self._select("notification_id > %s", (position, limit), " LIMIT %s")

    def stream_rows(self, originator_id: UUID) -> list[StoredRow]:
        return self._select("originator_id = %s", (originator_id,))

    def person_rows(self, person_key: str) -> list[StoredRow]:
        # Driven from the person's streams, each read by its primary key (``OFFSET 0`` keeps
        # the planner from flattening it into a join, which it planned as a parallel scan of
        # the whole events table: 180-210 ms a person at a million events).
        q = SQL("SELECT e.notification_id, e.originator_id, e.originator_version, e.topic,"
                " e.state, e.source_system, e.person_key, e.case_key, e.occurred_at,"
                " e.recorded_at FROM {p} s CROSS JOIN LATERAL (SELECT * FROM {t} x"
                " WHERE x.originator_id = s.originator_id AND x.person_key = %s OFFSET 0) e"
                " WHERE s.person_key = %s ORDER BY e.notification_id").format(
                    p=self._persons, t=self._t)
        return self._rows(q, (person_key, person_key), no_jit=True)

    def max_position(self) -> int:
        return self.max_notification_id() or 0

    def _query(self, q: Any, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            with self.datastore.get_connection() as conn, conn.cursor() as cur:
                cur.execute(q, params)
                return _tuples(cur.fetchall()) if cur.description else [(cur.rowcount,)]
        except PersistenceError as exc:
            raise StoreError(str(exc)) from exc

    def cursors(self, connector: str) -> dict[str, str]:
        rows = self._query(SQL("SELECT stream, position FROM {c} WHERE connector = %s").format(
            c=self._cursors), (connector,))
        return dict(rows)

    def reset_cursors(self, connector: str, stream: str | None = None) -> int:
        if stream is None:
            return self._query(SQL("DELETE FROM {c} WHERE connector = %s").format(
                c=self._cursors), (connector,))[0][0]
        return self._query(SQL("DELETE FROM {c} WHERE connector = %s AND stream = %s").format(
            c=self._cursors), (connector, stream))[0][0]

    def dead_letters(self, limit: int = 100, source_system: str | None = None
                     ) -> list[StoredDeadLetter]:
        where = "WHERE source_system = %s " if source_system else ""
        params: tuple = (source_system, limit) if source_system else (limit,)
        rows = self._query(SQL("SELECT id, source_system, source_record_id, reason, raw,"
                               " recorded_at FROM {d} " + where + "ORDER BY id DESC LIMIT %s"
                               ).format(d=self._dead), params)
        return [StoredDeadLetter(r[0], r[1], bytes(r[2]) if r[2] is not None else None, r[3],
                                 bytes(r[4]), r[5]) for r in rows]

    def dead_letter_counts(self) -> dict[str, int]:
        return dict(self._query(SQL("SELECT source_system, count(*) FROM {d} GROUP BY 1").format(
            d=self._dead)))

    def counts(self) -> list[tuple[str, str, int]]:
        return [tuple(r) for r in self._query(SQL(
            "SELECT topic, coalesce(source_system, ''), count(*) FROM {t} GROUP BY 1, 2"
            " ORDER BY 1, 2").format(t=self._t))]

    def close(self) -> None:
        self.datastore.close()


def _tuples(rows: list[Any]) -> list[tuple]:
    """The library's datastore hands out dict rows; the SQL here is positional."""
    return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]
