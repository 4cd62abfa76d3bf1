"""Bulk row access for projection handlers: load the rows a batch touches in one query per
table, change them in memory, write them back with one upsert and one delete per table.

A handler's logic stays pure (functions of a row dict and an event); the SQL per batch is a
handful of statements however many events the batch holds, so a rebuild streams at the speed
of reading events rather than at the speed of one round trip per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

_CHUNK = 500  # keys per IN (...) list


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE for full rows, in one executemany."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - only the two supported backends
        raise NotImplementedError(dialect)
    pk = [c.name for c in table.primary_key.columns]
    stmt = stmt.on_conflict_do_update(
        index_elements=pk,
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in pk})
    conn.execute(stmt, list(rows))


def insert_many(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(table.insert(), list(rows))


class RowCache:
    """The rows of one table (single-column string primary key) a batch reads and writes."""

    def __init__(self, table: sa.Table):
        (self.key_column,) = table.primary_key.columns
        self.table = table
        self._rows: dict[str, dict[str, Any] | None] = {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self._conn: sa.Connection | None = None
        # SQLite hands back naive timestamps: make them aware again (UTC, as written).
        self._aware = [c.name for c in table.columns
                       if isinstance(c.type, sa.DateTime) and c.type.timezone]

    def load(self, conn: sa.Connection, keys: Iterable[str]) -> None:
        """Read the rows with these keys (those not read yet) in as few queries as possible."""
        self._conn = conn
        wanted = [k for k in set(keys) if k not in self._rows]
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            for k in chunk:
                self._rows[k] = None
            for row in conn.execute(sa.select(self.table).where(self.key_column.in_(chunk))):
                m = dict(row._mapping)
                for name in self._aware:
                    v = m[name]
                    if v is not None and v.tzinfo is None:
                        m[name] = v.replace(tzinfo=UTC)
                self._rows[m[self.key_column.name]] = m

    def get(self, key: str) -> dict[str, Any] | None:
        """The row (a dict to change in place, then ``put``), or None. Loads it if not loaded."""
        if key not in self._rows:
            if self._conn is None:
                raise RuntimeError(f"{self.table.name}: load() before get()")
            self.load(self._conn, [key])
        return self._rows[key]

    def put(self, row: dict[str, Any]) -> None:
        key = row[self.key_column.name]
        self._rows[key] = row
        self._dirty.add(key)
        self._deleted.discard(key)

    def delete(self, key: str) -> None:
        self._deleted.add(key)  # deleting an absent row is harmless: no need to load it
        self._rows[key] = None
        self._dirty.discard(key)

    def flush(self, conn: sa.Connection) -> None:
        """Write changed rows (upsert) and remove deleted ones; the cache stays usable."""
        if self._deleted:
            keys = sorted(self._deleted)
            for i in range(0, len(keys), _CHUNK):
                conn.execute(self.table.delete().where(self.key_column.in_(keys[i:i + _CHUNK])))
        rows = [self._rows[k] for k in sorted(self._dirty)]
        upsert(conn, self.table, [r for r in rows if r is not None])
        self._dirty.clear()
        self._deleted.clear()

    def clear(self) -> None:
        self._rows.clear()
        self._dirty.clear()
        self._deleted.clear()
