"""Per-connector health, kept where a separate ``glasplade status`` process can read it.

Operational data, not truth: one small table (``glasplade_connector_status``) in the read-model
database (``settings.effective_readmodel_url``). Losing it loses only history of health.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from hub.sql import add_missing_columns, create_all, missing_columns

metadata = sa.MetaData()

status_table = sa.Table(
    "glasplade_connector_status", metadata,
    sa.Column("connector", sa.String(64), primary_key=True),
    sa.Column("breaker", sa.String(16), nullable=False, default="closed"),
    sa.Column("last_run_at", sa.DateTime(timezone=True)),
    sa.Column("last_success_at", sa.DateTime(timezone=True)),
    sa.Column("last_error_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("newest_occurred_at", sa.DateTime(timezone=True)),
    sa.Column("cursor_advanced_at", sa.DateTime(timezone=True)),
    sa.Column("events_stored", sa.BigInteger, nullable=False, default=0),
    sa.Column("duplicates", sa.BigInteger, nullable=False, default=0),
    sa.Column("dead_letters", sa.BigInteger, nullable=False, default=0),
    sa.Column("backlog", sa.BigInteger),  # added later: nullable, so an ALTER can add it
)


@dataclass(frozen=True)
class ConnectorStatus:
    connector: str
    breaker: str = "closed"
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    newest_occurred_at: datetime | None = None
    cursor_advanced_at: datetime | None = None
    events_stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    backlog: int | None = None
    """Records waiting in the source after the last pass (Kafka: end offsets less cursors);
    None where the source cannot say."""

    def lag_seconds(self, now: datetime | None = None) -> float | None:
        """Now minus the newest business time seen; without events, the cursor's age."""
        now = now or datetime.now(UTC)
        ref = self.newest_occurred_at or self.cursor_advanced_at
        return None if ref is None else max(0.0, (now - ref).total_seconds())

    def healthy(self) -> bool:
        return self.consecutive_failures == 0 and self.last_success_at is not None

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        d = asdict(self)
        d["lag_seconds"] = self.lag_seconds(now)
        d["healthy"] = self.healthy()
        return d

    def updated(self, **changes: Any) -> ConnectorStatus:
        return replace(self, **changes)


def sqlalchemy_url(url: str) -> str:
    """The hub's store URLs, in the dialect+driver form SQLAlchemy wants (psycopg 3)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything here is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class StatusStore:
    """Read and write ``ConnectorStatus`` rows."""

    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(sqlalchemy_url(url), connect_args=connect_args,
                                       pool_pre_ping=True)
        if create:
            create_all(self.engine, metadata)
            self._add_columns()

    def _add_columns(self) -> None:
        """Bring a table made by an earlier version up to date (``add_missing_columns``)."""
        try:
            with self.engine.begin() as conn:
                add_missing_columns(conn, status_table)
        except sa.exc.DBAPIError:  # another process added them first, or a real failure
            with self.engine.connect() as conn:
                if missing_columns(conn, status_table):
                    raise

    def save(self, status: ConnectorStatus) -> None:
        values = asdict(status)
        with self.engine.begin() as conn:
            updated = conn.execute(
                status_table.update().where(status_table.c.connector == status.connector),
                values).rowcount
            if not updated:
                conn.execute(status_table.insert(), values)

    def get(self, connector: str) -> ConnectorStatus:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(status_table).where(
                status_table.c.connector == connector)).mappings().first()
        return self._from_row(row) if row else ConnectorStatus(connector)

    def all(self) -> list[ConnectorStatus]:
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(status_table).order_by(
                    status_table.c.connector)).mappings().all()
        except sa.exc.OperationalError:
            return []  # no table yet: nothing has run
        return [self._from_row(r) for r in rows]

    @staticmethod
    def _from_row(row: Any) -> ConnectorStatus:
        d = dict(row)
        for k in ("last_run_at", "last_success_at", "last_error_at", "newest_occurred_at",
                  "cursor_advanced_at"):
            d[k] = _aware(d[k])
        return ConnectorStatus(**d)

    def close(self) -> None:
        self.engine.dispose()
