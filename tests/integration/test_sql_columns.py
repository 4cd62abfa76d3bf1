"""Adding the columns a newer version's operational table has (``hub.sql``) from two processes
at once on PostgreSQL."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from hub.sql import add_missing_columns, missing_columns


def test_a_process_adding_columns_another_is_adding_waits_and_finds_them(pg_url):
    """Two versions of a table; one process adds the new columns and has not committed yet
    when a second starts to: the second waits for the schema lock, looks again, and finds
    nothing left to add (without the lock it saw the columns missing and failed on ``ADD
    COLUMN`` once the first committed)."""
    old, new = sa.MetaData(), sa.MetaData()
    sa.Table("probe_status", old, sa.Column("name", sa.String, primary_key=True))
    table = sa.Table("probe_status", new, sa.Column("name", sa.String, primary_key=True),
                     sa.Column("detail", sa.Text), sa.Column("checked_at", sa.DateTime))
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with engine.begin() as conn:
                add_missing_columns(conn, table)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    try:
        old.create_all(engine)
        with engine.begin() as first:
            add_missing_columns(first, table)
            late = threading.Thread(target=second)
            late.start()
            late.join(0.5)  # (it waits on the first's transaction either way)
            assert late.is_alive()
        late.join(30)
        with engine.connect() as conn:
            still_missing = missing_columns(conn, table)
    finally:
        engine.dispose()
    assert errors == []
    assert still_missing == []
