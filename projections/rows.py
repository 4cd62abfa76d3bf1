"""Bulk row access for projection handlers: load the rows a batch touches in one query per
table, change them in memory, write them back with one upsert and one delete per table.

A handler's logic stays pure (functions of a row dict and an event); the SQL per batch is a
handful of statements however many events the batch holds, so a rebuild streams at the speed
of reading events rather than at the speed of one round trip per event.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

_CHUNK = 500  # keys per IN (...) list (SQLite)
_PG_CHUNK = 10000  # keys per = ANY(array) (PostgreSQL)
_COPY_MIN = 20  # rows from which PostgreSQL gets COPY instead of executemany


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], *,
           unique: bool = False) -> None:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE for rows that all have the same keys
    (DO NOTHING on a table whose every column is in the key).

    PostgreSQL: many rows are COPYed into a temporary staging table and merged with one
    INSERT ... SELECT; few rows (and SQLite) go through one executemany. ``unique``: the caller
    guarantees no primary key repeats in ``rows`` (else the last row of a key wins)."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql" and len(rows) >= _COPY_MIN:
        _pg_copy_upsert(conn, table, rows, unique)
        return
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - only the two supported backends
        raise NotImplementedError(dialect)
    pk = [c.name for c in table.primary_key.columns]
    values = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in pk}
    # a table whose every column is in the key has nothing to update: the row is already there
    stmt = (stmt.on_conflict_do_update(index_elements=pk, set_=values) if values
            else stmt.on_conflict_do_nothing(index_elements=pk))
    conn.execute(stmt, list(rows))


def insert_many(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Plain INSERT of many rows (COPY on PostgreSQL)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and len(rows) >= _COPY_MIN:
        _pg_copy(conn, _quote(table), list(rows[0]), table, rows)
    else:
        conn.execute(table.insert(), list(rows))


def insert_tuples(conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                  values: Sequence[Sequence[Any]]) -> None:
    """``insert_many`` for rows given as values in ``columns`` order (no dict per row on the
    COPY path: an append-only table's rows straight from the events)."""
    if not values:
        return
    if conn.dialect.name == "postgresql" and len(values) >= _COPY_MIN:
        copy_tuples(conn, _quote(table), table, columns, values)
    else:
        conn.execute(table.insert(), [dict(zip(columns, v, strict=True)) for v in values])


def _quote(table: sa.Table) -> str:
    return ".".join(f'"{part}"' for part in ((table.schema,) if table.schema else ())
                    + (table.name,))


def _pg_copy(conn: sa.Connection, target: str, columns: list[str], table: sa.Table,
             rows: Sequence[dict[str, Any]]) -> None:
    """COPY rows into ``target`` on the SQLAlchemy connection's own transaction."""
    json_cols = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    if json_cols:
        values: Iterable[Sequence[Any]] = (
            [orjson.dumps(r[c]).decode() if c in json_cols and r[c] is not None else r[c]
             for c in columns] for r in rows)
    else:
        values = map(row_values(columns), rows)
    copy_tuples(conn, target, table, columns, values)


def row_values(columns: Sequence[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A function giving a row dict's values of ``columns`` as a tuple (in C: no loop per row)."""
    if len(columns) == 1:
        (only,) = columns
        return lambda r: (r[only],)
    return operator.itemgetter(*columns)


def copy_tuples(conn: sa.Connection, target: str, table: sa.Table, columns: Sequence[str],
                values: Iterable[Sequence[Any]]) -> None:
    """COPY rows given as value sequences (in ``columns`` order of ``table``) into ``target``
    (quoted: the table or a table like it) on the SQLAlchemy connection's own transaction
    (PostgreSQL only). Binary when every column's type has a binary form here: a fifth of the
    client's work of the text format (no text rendering and escaping of every value)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    types = _binary_types(table, tuple(columns))
    raw = conn.connection.dbapi_connection
    binary = " (FORMAT BINARY)" if types else ""
    with raw.cursor() as cur, cur.copy(f"COPY {target} ({cols}) FROM STDIN{binary}") as copy:
        if types:
            copy.set_types(types)
        write = copy.write_row
        for v in values:
            write(v)


def _binary_type(t: sa.types.TypeEngine) -> str | None:
    """The PostgreSQL type a value of column type ``t`` is sent as in a binary COPY (the
    server reads it with the column's own binary input), or None: send the table as text."""
    if isinstance(t, sa.types.TypeDecorator):  # (``projections.db.Instant``: a timestamptz)
        t = t.impl_instance
    if isinstance(t, sa.JSON):  # JSON text (from orjson); jsonb's binary form differs
        return "text" if type(t) is sa.JSON else None
    for kind, name in _BINARY:
        if isinstance(t, kind):
            if kind is sa.DateTime:
                return "timestamptz" if t.timezone else "timestamp"
            if kind is sa.Float and t.precision is not None:
                return None  # maybe real
            return name or None
    return None


_BINARY: tuple[tuple[type, str], ...] = (
    (sa.BigInteger, "int8"), (sa.SmallInteger, "int2"), (sa.Integer, "int4"),
    (sa.Boolean, "bool"), (sa.DateTime, ""), (sa.Date, "date"), (sa.Float, "float8"),
    (sa.Enum, ""), (sa.String, "text"))
"""Checked in order (subclasses first); an empty name: no binary form here."""

_binary_cache: dict[tuple[sa.Table, tuple[str, ...]], list[str] | None] = {}


def _binary_types(table: sa.Table, columns: tuple[str, ...]) -> list[str] | None:
    key = (table, columns)
    if key not in _binary_cache:
        names = [_binary_type(table.c[c].type) for c in columns]
        _binary_cache[key] = None if not all(names) else names  # type: ignore[assignment]
    return _binary_cache[key]


def _pg_copy_upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]],
                    unique: bool) -> None:
    columns = list(rows[0])
    pk = [c.name for c in table.primary_key.columns]
    digest = hashlib.blake2b(repr((table.name, [(c.name, str(c.type)) for c in table.columns]))
                             .encode(), digest_size=6).hexdigest()
    stage = f'"_stage_{table.name[:40]}_{digest}"'
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {_quote(table)}"
                         " INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    _pg_copy(conn, stage, columns, table, rows)
    cols = ", ".join(f'"{c}"' for c in columns)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c not in pk)
    keys = ", ".join(f'"{c}"' for c in pk)
    # the last row wins when a key repeats (as with one executemany)
    source = (f"SELECT {cols} FROM {stage}" if unique else
              f"SELECT DISTINCT ON ({keys}) {cols} FROM (SELECT *, ctid AS _at FROM {stage}) s"
              f" ORDER BY {keys}, _at DESC")
    conn.exec_driver_sql(
        f"INSERT INTO {_quote(table)} ({cols}) {source} ON CONFLICT ({keys}) DO "
        + (f"UPDATE SET {updates}" if updates else "NOTHING"))
    conn.exec_driver_sql(f"DELETE FROM {stage}")


class SeenKeys:
    """A Bloom filter of the keys written to one table since it was created empty: "not seen"
    is certain (the row is not in the table: no query needed, a plain insert will do), "seen"
    may be wrong (then the row is queried as usual). Fixed size, so a rebuild's memory stays
    bounded however many rows it writes (false positives only cost a lookup).

    One bit per key (2 MiB: 1.8 % false positives at 300,000 keys, 6 % at a million): half the
    work per key of two bits in 1 MiB, whose 0.5 % at 300,000 keys saved fewer lookups than the
    second bit cost (the filter is on every key a rebuild writes)."""

    __slots__ = ("_bits", "_mask")

    def __init__(self, bits: int = 1 << 24):
        self._bits = bytearray(bits >> 3)
        self._mask = bits - 1

    def add_all(self, keys: Iterable[Any]) -> None:
        bits, mask = self._bits, self._mask
        for key in keys:
            i = hash(key) & mask
            bits[i >> 3] |= 1 << (i & 7)

    def __contains__(self, key: Any) -> bool:
        i = hash(key) & self._mask
        return bool(self._bits[i >> 3] & (1 << (i & 7)))


_fresh: ContextVar[dict[str, SeenKeys] | None] = ContextVar("glasplade_fresh", default=None)


@contextmanager
def fresh_tables(seen: dict[str, SeenKeys] | None) -> Iterator[None]:
    """Within this block, row caches built for a table named in ``seen`` trust it: keys it has
    not seen are known absent (not queried, inserted with COPY). The runner uses this while it
    rebuilds from empty tables and is the only writer (``projections.runner``)."""
    token = _fresh.set(seen)
    try:
        yield
    finally:
        _fresh.reset(token)


def _seen_for(table: sa.Table) -> SeenKeys | None:
    seen = _fresh.get()
    if seen is None:
        return None
    keys = seen.get(table.name)
    if keys is None:  # (not setdefault: a filter is a megabyte to clear)
        keys = seen[table.name] = SeenKeys()
    return keys


def _split(keys: list[Any], seen: SeenKeys) -> tuple[list[Any], list[Any]]:
    """(keys that may be in the table, keys that are certainly not)."""
    maybe: list[Any] = []
    fresh: list[Any] = []
    bits, mask = seen._bits, seen._mask  # SeenKeys.__contains__, inlined: one call per batch
    for k in keys:
        i = hash(k) & mask
        (maybe if bits[i >> 3] & (1 << (i & 7)) else fresh).append(k)
    return maybe, fresh


def key_chunks(conn: sa.Connection, items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``items`` in slices of as many keys as one ``among`` condition takes."""
    size = _PG_CHUNK if conn.dialect.name == "postgresql" else _CHUNK
    for i in range(0, len(items), size):
        yield items[i:i + size]


def among(conn: sa.Connection, column: sa.ColumnElement, keys: Sequence[Any]
          ) -> sa.ColumnElement[bool]:
    """``column`` is one of ``keys``: one array parameter on PostgreSQL (a statement psycopg
    can keep prepared, no per-value placeholders), ``IN (...)`` elsewhere."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam("keys", list(keys), unique=True,
                                              type_=postgresql.ARRAY(column.type)))
    return column.in_(keys)


def rows_where(conn: sa.Connection, table: sa.Table, column: str | None = None,
               keys: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
    """The rows of ``table`` (as dicts) whose ``column`` is one of ``keys``, in as few queries
    as ``key_chunks`` allows; every row when ``column`` is None.

    PostgreSQL reads them on the driver's cursor when psycopg returns every column's values
    as SQLAlchemy would (the types of ``_binary_types``): no result set-up per query and no
    row object per row, one of a rebuild's most frequent statements."""
    names = [c.name for c in table.columns]
    sql = _read_sql(conn, table, column)
    chunks = [None] if column is None else key_chunks(conn, keys)
    with conn.connection.dbapi_connection.cursor() if sql else nullcontext() as cur:
        for chunk in chunks:
            if sql:
                cur.execute(sql, None if chunk is None else {"keys": list(chunk)})
                rows: Iterable[Sequence[Any]] = cur.fetchall()
            else:
                stmt = sa.select(table)
                rows = conn.execute(stmt if chunk is None else
                                    stmt.where(among(conn, table.c[column], chunk)))
            for row in rows:
                yield dict(zip(names, row, strict=True))


_read_cache: dict[tuple[sa.Table, str | None], str | None] = {}


def _read_sql(conn: sa.Connection, table: sa.Table, column: str | None) -> str | None:
    """The SQL ``rows_where`` runs on the driver's cursor, or None: through SQLAlchemy."""
    if conn.dialect.name != "postgresql":
        return None
    key = (table, column)
    if key not in _read_cache:
        sql = None
        if _binary_types(table, tuple(c.name for c in table.columns)) is not None:
            stmt = sa.select(table)
            if column is not None:
                col = table.c[column]
                stmt = stmt.where(col == sa.any_(sa.bindparam(
                    "keys", type_=postgresql.ARRAY(col.type))))
            sql = stmt.compile(dialect=conn.dialect).string
        _read_cache[key] = sql
    return _read_cache[key]


class RowCache:
    """The rows of one table (single-column string primary key) a batch reads and writes."""

    def __init__(self, table: sa.Table):
        (self.key_column,) = table.primary_key.columns
        self._key_name = self.key_column.name
        self.table = table
        self._rows: dict[str, dict[str, Any] | None] = {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self._complete = False
        self._absent: set[str] = set()
        """Keys known not to be in the table: their rows are inserted, not upserted."""
        self._conn: sa.Connection | None = None
        self._seen = _seen_for(table)

    def load(self, conn: sa.Connection, keys: Iterable[str]) -> None:
        """Read the rows with these keys (those not read yet) in as few queries as possible."""
        self._conn = conn
        wanted = sorted({k for k in keys if k not in self._rows})
        if self._seen is not None:  # never written: not in the table
            maybe, fresh = _split(wanted, self._seen)
            self._rows.update(dict.fromkeys(fresh))
            self._absent.update(fresh)
            wanted = maybe
        if not wanted:
            return
        self._rows.update(dict.fromkeys(wanted))
        self._absent.update(wanted)
        for m in rows_where(conn, self.table, self._key_name, wanted):
            key = m[self._key_name]
            self._rows[key] = m
            self._absent.discard(key)

    def load_all(self, conn: sa.Connection) -> None:
        """Read the whole table (for small tables such as aliases)."""
        self._conn = conn
        for m in rows_where(conn, self.table):
            self._rows.setdefault(m[self._key_name], m)
        self._complete = True

    def load_where(self, conn: sa.Connection, column: str, values: Iterable[str]) -> None:
        """Also read every row whose ``column`` is one of ``values`` (rows already in memory
        are kept as they are: they may hold this batch's changes)."""
        self._conn = conn
        wanted = sorted(set(values))
        if not wanted:
            return
        for m in rows_where(conn, self.table, column, wanted):
            key = m[self._key_name]
            if key not in self._rows:
                self._rows[key] = m
                self._absent.discard(key)

    def in_memory(self) -> dict[str, dict[str, Any] | None]:
        """The rows in memory by key (None: known absent or deleted); the live dict, to read
        only. After ``load_all`` it holds the whole table."""
        return self._rows

    def get(self, key: str) -> dict[str, Any] | None:
        """The row (a dict to change in place, then ``put``), or None. Loads it if not loaded."""
        if key not in self._rows:
            if self._complete:  # the whole table is in memory: absent means absent
                return None
            if self._conn is None:
                raise RuntimeError(f"{self.table.name}: load() before get()")
            self.load(self._conn, [key])
        return self._rows[key]

    def put(self, row: dict[str, Any]) -> None:
        key = row[self._key_name]
        self._rows[key] = row
        self._dirty.add(key)
        if self._deleted:
            self._deleted.discard(key)

    def delete(self, key: str) -> None:
        self._deleted.add(key)  # deleting an absent row is harmless: no need to load it
        self._rows[key] = None
        self._dirty.discard(key)

    def flush(self, conn: sa.Connection) -> None:
        """Remove deleted rows, insert new ones (COPY on PostgreSQL) and upsert the others;
        the cache stays usable."""
        if self._deleted:
            for chunk in key_chunks(conn, sorted(self._deleted)):
                conn.execute(self.table.delete().where(among(conn, self.key_column, chunk)))
            self._absent |= self._deleted
        rows = self._rows
        new, changed = [], []
        for k in sorted(self._dirty):
            if rows[k] is not None:
                (new if k in self._absent else changed).append(k)
        if changed and self._seen is not None:  # put unread: a key never written is absent too
            changed, fresh = _split(changed, self._seen)
            new += fresh
        insert_many(conn, self.table, [rows[k] for k in new])
        upsert(conn, self.table, [rows[k] for k in changed], unique=True)
        if self._seen is not None:
            self._seen.add_all(self._dirty)
        self._absent -= self._dirty
        self._dirty.clear()
        self._deleted.clear()

    def cached(self) -> list[dict[str, Any]]:
        """The rows in memory (loaded or changed), to rewrite in place."""
        return [r for r in self._rows.values() if r is not None]

    def touch(self, key: str) -> None:
        """Mark a row changed in place as dirty."""
        if self._rows.get(key) is not None:
            self._dirty.add(key)


def put_alias(aliases: RowCache, old_key: str, new_key: str) -> list[str]:
    """In an alias table (``old_key`` -> ``new_key``, read whole with ``load_all``), file
    ``old_key`` and every key that led to it under ``new_key``, so that a chain of
    replacements is one look-up. Returns the old keys that now lead to ``new_key``."""
    moved = [old_key]
    for row in aliases.cached():
        if row["new_key"] == old_key:
            row["new_key"] = new_key
            aliases.touch(row["old_key"])
            moved.append(row["old_key"])
    aliases.put({"old_key": old_key, "new_key": new_key})
    return moved


class KeyedRows:
    """The rows of a table with a composite primary key that a batch reads and writes
    (``RowCache`` is for one-column keys). Rows are read by the key's first column; ``flush``
    deletes the removed keys and upserts the others (insert-if-absent on all-key tables), or
    inserts them when their first column's value was never written (``fresh_tables``)."""

    def __init__(self, table: sa.Table):
        self.table = table
        self.pk = tuple(c.name for c in table.primary_key.columns)
        self._key = row_values(self.pk)
        self._rows: dict[tuple, dict[str, Any] | None] = {}
        self._by_first: dict[Any, set[tuple]] | None = None
        """First key value -> keys in memory, made when first asked (``with_first``): most
        tables are only written, and a set per row would be work for nothing."""
        self._loaded: set[Any] = set()
        self._dirty: set[tuple] = set()
        self._seen = _seen_for(table)

    def load(self, conn: sa.Connection, firsts: Iterable[Any]) -> None:
        """Read every row whose first key column is one of ``firsts`` (not read yet); rows
        already in memory are kept (they may hold this batch's changes)."""
        wanted = sorted({f for f in firsts if f is not None} - self._loaded)
        if not wanted:
            return
        if self._seen is not None:  # never written: no rows to read
            wanted, fresh = _split(wanted, self._seen)
            self._loaded.update(fresh)
        for row in rows_where(conn, self.table, self.pk[0], wanted):
            key = self._key(row)
            if key not in self._rows:
                self._rows[key] = row
                if self._by_first is not None:
                    self._by_first.setdefault(key[0], set()).add(key)
        self._loaded.update(wanted)

    def get(self, conn: sa.Connection, key: tuple) -> dict[str, Any] | None:
        self.load(conn, [key[0]])
        return self._rows.get(key)

    def with_first(self, conn: sa.Connection, first: Any) -> list[dict[str, Any]]:
        """The rows whose first key column is ``first``."""
        self.load(conn, [first])
        if self._by_first is None:
            self._by_first = {}
            for k in self._rows:
                self._by_first.setdefault(k[0], set()).add(k)
        return [r for k in self._by_first.get(first, ()) if (r := self._rows[k]) is not None]

    def set_group(self, conn: sa.Connection, first: Any, rows: Sequence[dict[str, Any]]) -> None:
        """Make the rows whose first key column is ``first`` exactly ``rows`` (others deleted)."""
        keep = {self._key(r) for r in rows}
        for row in self.with_first(conn, first):
            if (key := self._key(row)) not in keep:
                self.delete(key)
        for r in rows:
            self.put(r)

    def put(self, row: dict[str, Any]) -> None:
        key = self._key(row)
        self._rows[key] = row
        if self._by_first is not None:
            self._by_first.setdefault(key[0], set()).add(key)
        self._dirty.add(key)

    def delete(self, key: tuple) -> None:
        self._rows[key] = None
        self._dirty.add(key)

    def flush(self, conn: sa.Connection) -> None:
        """Write the changes; the rows stay in memory."""
        rows = self._rows
        gone: list[tuple] = []
        kept: list[dict[str, Any]] = []
        for k in self._dirty:
            if (r := rows[k]) is None:
                gone.append(k)
            else:
                kept.append(r)
        if gone:
            t = self.table
            conn.execute(t.delete().where(*(t.c[c] == sa.bindparam(f"k_{c}") for c in self.pk)),
                         [{f"k_{c}": v for c, v in zip(self.pk, k, strict=True)} for k in gone])
        if self._seen is None:
            upsert(conn, self.table, kept, unique=True)
        else:  # a first key value never written has no rows yet (loaded or not): insert
            first = self.pk[0]
            firsts = list({r[first] for r in kept})
            _, fresh = _split(firsts, self._seen)
            new = set(fresh)
            inserts: list[dict[str, Any]] = []
            upserts: list[dict[str, Any]] = []
            for r in kept:
                (inserts if r[first] in new else upserts).append(r)
            insert_many(conn, self.table, inserts)
            upsert(conn, self.table, upserts, unique=True)
            self._seen.add_all(firsts)
        self._dirty.clear()
