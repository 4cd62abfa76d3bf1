"""The read-model database: an SQLAlchemy engine for ``settings.effective_readmodel_url``.

The store's URLs (``sqlite:///x.db``, ``postgresql://user@host/db``) become SQLAlchemy URLs
(``sqlite:///x.db``, ``postgresql+psycopg://...``: psycopg 3). On SQLite the driver's own implicit
transactions are switched off and SQLAlchemy emits ``BEGIN`` itself, so a transaction covers its
reads too; a connection opened with ``execution_options(glasplade_write=True)`` begins with
``BEGIN IMMEDIATE`` (takes the write lock first: no lock upgrade failures between writers).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from hub.config import ConfigError

#: Execution option that makes an SQLite transaction take the write lock at BEGIN.
WRITE = {"glasplade_write": True}


class Instant(sa.types.TypeDecorator[datetime]):
    """A read model's point in time (``timestamptz`` on PostgreSQL). Rows take the events'
    aware datetimes as they are, in whatever offset: PostgreSQL stores the instant (and the
    COPY path passes them untouched). SQLite keeps no offset, so there a value is written as
    UTC and read back as aware UTC. A naive value is taken to be UTC on both (not in the
    PostgreSQL session's time zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def sqlalchemy_url(url: str) -> str:
    """A store-style URL as an SQLAlchemy URL (psycopg 3 driver for PostgreSQL)."""
    if url.startswith("sqlite:///"):
        if url == "sqlite:///:memory:":
            raise ConfigError("read models need a file or a server; sqlite:///:memory: is "
                              "private to one connection")
        return url
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ConfigError(f"readmodel_url must start with sqlite:/// or postgresql://, got "
                      f"{url.split('://', 1)[0]}://...")


def readmodel_engine(url: str, *, pool_size: int = 5) -> sa.Engine:
    """An engine for the read models at ``url`` (store-style or SQLAlchemy URL)."""
    sa_url = sqlalchemy_url(url)
    if sa_url.startswith("sqlite"):
        engine = sa.create_engine(sa_url, connect_args={"timeout": 30})
        _sqlite_transactions(engine)
        return engine
    return sa.create_engine(sa_url, pool_size=pool_size, max_overflow=pool_size,
                            pool_pre_ping=True)


def _sqlite_transactions(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # noqa: ANN001
        dbapi_conn.isolation_level = None  # no implicit BEGIN by the driver
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):  # noqa: ANN001
        immediate = conn.get_execution_options().get("glasplade_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
