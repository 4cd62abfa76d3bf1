"""SQLAlchemy helpers for the tables outside the event store: creating them when several
processes start at once (every table), and adding columns to the hub's own operational tables
(the connectors' status table, ``connectors/status.py``, and the write-back record,
``hub/targets/writeback.py``; read models are rebuilt instead, ``projections/runner.py``)."""

from __future__ import annotations

import sqlalchemy as sa

#: The advisory lock under which tables are made on PostgreSQL: held for its transaction here,
#: and for the whole of the event store's ``create_tables`` (``hub/store/postgres.py``).
SCHEMA_LOCK = 0x676C6173_0001  # "glas", 1


def schema_lock(conn: sa.Connection) -> None:
    """Hold the schema lock until ``conn``'s transaction ends (PostgreSQL; SQLite has one
    writer anyway). Processes that start together on a new database (the API server and a
    follower, say) then create tables in turn: PostgreSQL's ``IF NOT EXISTS`` does not hold
    against a creation running concurrently, the later one fails on the catalog's unique
    index of type names."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")


def create_all(bind: sa.Engine | sa.Connection, metadata: sa.MetaData) -> None:
    """``metadata.create_all`` under the schema lock: in the caller's transaction when given a
    connection, else in a transaction of its own."""
    if isinstance(bind, sa.Engine):
        with bind.begin() as conn:
            create_all(conn, metadata)
        return
    if bind.dialect.name == "postgresql":  # every table there: no lock to wait for
        inspector = sa.inspect(bind)
        if all(inspector.has_table(t.name, schema=t.schema) for t in metadata.sorted_tables):
            return
    schema_lock(bind)
    metadata.create_all(bind)


def missing_columns(conn: sa.Connection, table: sa.Table) -> list[sa.Column]:
    """The columns of ``table`` that its table in the database (made by an earlier version)
    lacks."""
    have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    return [c for c in table.columns if c.name not in have]


def add_missing_columns(conn: sa.Connection, table: sa.Table) -> None:
    """Bring a table made by an earlier version up to date, on ``conn`` in its transaction:
    columns are only ever added, and nullable (the one kind of change made this way). Only
    when a column is missing is the schema lock taken (and the columns looked at again, as
    another process may have added them meanwhile): an up-to-date table, the usual case, is
    never held up by another transaction that holds the lock."""
    if not missing_columns(conn, table):
        return
    schema_lock(conn)
    for column in missing_columns(conn, table):
        conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}"'
                             f" {column.type.compile(conn.dialect)}")
