"""Access log: every PersonRecordAccessed event (who looked at whom, why, which view, at what
access level, when), listed per person and per user for the auditor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from hub.domain import events as ev
from projections.base import Projection
from projections.case_history import utc
from projections.rows import RowCache, insert_many

NAME = "access_log"
metadata = sa.MetaData()
TS = sa.DateTime(timezone=True)

entries = sa.Table(
    f"{NAME}_entries", metadata,
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("person_key", sa.String(64), nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("view", sa.Text, nullable=False),
    sa.Column("access", sa.Text, nullable=False),
    sa.Column("occurred_at", TS, nullable=False),
    sa.Column("recorded_at", TS),
    sa.Column("source_system", sa.Text, nullable=False),
    sa.Index(f"ix_{NAME}_entries_person", "person_key", "occurred_at"),
    sa.Index(f"ix_{NAME}_entries_user", "user_id", "occurred_at"),
)
#: Replaced identifiers: accesses recorded under the old key later are filed under the new one.
aliases = sa.Table(
    f"{NAME}_aliases", metadata,
    sa.Column("old_key", sa.String(64), primary_key=True),
    sa.Column("new_key", sa.String(64), nullable=False),
)


def entry(e: ev.CanonicalEvent, person_key: str) -> dict[str, Any]:
    p = e.payload
    assert isinstance(p, ev.PersonRecordAccessed)
    return {
        "position": e.position, "person_key": person_key, "user_id": p.user_id,
        "purpose": p.purpose, "view": p.view, "access": p.access,
        "occurred_at": utc(e.occurred_at), "recorded_at": utc(e.recorded_at),
        "source_system": e.source_system,
    }


class AccessLog(Projection):
    name = NAME
    version = 1
    topics = ("PersonRecordAccessed", "PersonIdentifierReplaced")

    def __init__(self, person_key_of: Callable[[str], str]):
        self.person_key_of = person_key_of
        super().__init__()

    def define_tables(self, metadata: sa.MetaData) -> None:
        entries.to_metadata(metadata)
        aliases.to_metadata(metadata)

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        alias = RowCache(aliases)
        alias.load_all(conn)  # a few rows: one per replaced identifier
        rows: list[dict[str, Any]] = []
        for e in events:
            if isinstance(e.payload, ev.PersonRecordAccessed) and e.person_key:
                current = alias.get(e.person_key)
                rows.append(entry(e, current["new_key"] if current else e.person_key))
            elif isinstance(e.payload, ev.PersonIdentifierReplaced):
                insert_many(conn, entries, rows)
                rows = []
                old = self.person_key_of(e.payload.old_identifier)
                new = self.person_key_of(e.payload.new_identifier)
                if old == new:
                    continue
                # The person's earlier accesses follow them to the new identifier.
                conn.execute(entries.update().where(entries.c.person_key == old)
                             .values(person_key=new))
                conn.execute(aliases.update().where(aliases.c.new_key == old)
                             .values(new_key=new))
                alias.put({"old_key": old, "new_key": new})
                alias.flush(conn)
        insert_many(conn, entries, rows)


def create(person_key_of: Callable[[str], str]) -> AccessLog:
    return AccessLog(person_key_of)
