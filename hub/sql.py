"""SQLAlchemy helpers shared by the hub's own operational tables outside the event store: the
connectors' status table (``connectors/status.py``) and the write-back record
(``hub/targets/writeback.py``). Read models are rebuilt instead (``projections/runner.py``)."""

from __future__ import annotations

import sqlalchemy as sa


def missing_columns(conn: sa.Connection, table: sa.Table) -> list[sa.Column]:
    """The columns of ``table`` that its table in the database (made by an earlier version)
    lacks."""
    have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    return [c for c in table.columns if c.name not in have]


def add_missing_columns(conn: sa.Connection, table: sa.Table) -> None:
    """Bring a table made by an earlier version up to date, on ``conn`` in its transaction:
    columns are only ever added, and nullable (the one kind of change made this way)."""
    for column in missing_columns(conn, table):
        conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}"'
                             f" {column.type.compile(conn.dialect)}")
