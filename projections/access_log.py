"""Access log: every PersonRecordAccessed event (who looked at whom, why, which view, at what
access level, when), listed per person and per user for the auditor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from hub.domain import events as ev
from projections.base import KeyOf, Projection
from projections.db import Instant
from projections.rows import RowCache, insert_many, put_alias

NAME = "access_log"
metadata = sa.MetaData()
TS = Instant()

entries = sa.Table(
    f"{NAME}_entries", metadata,
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("person_key", sa.String(64), primary_key=True),
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


#: How the access log names a view of a person that another person's view showed (the
#: household an overview names: no cases of theirs were shown).
NAMED_IN = "named-in-"


def entry(e: ev.CanonicalEvent, person_key: str, named: bool = False) -> dict[str, Any]:
    """The entry of a view for ``person_key``: the event's subject, or (``named``) one of the
    others it showed."""
    p = e.payload
    assert isinstance(p, ev.PersonRecordAccessed)
    return {
        "position": e.position, "person_key": person_key, "user_id": p.user_id,
        "purpose": p.purpose, "view": NAMED_IN + p.view if named else p.view,
        "access": "person" if named else p.access,
        "occurred_at": e.occurred_at, "recorded_at": e.recorded_at,
        "source_system": e.source_system,
    }


class AccessLog(Projection):
    name = NAME
    version = 2  # 2: an entry per person a view showed (``PersonRecordAccessed.others``)
    topics = ("PersonRecordAccessed", "PersonIdentifierReplaced")

    def __init__(self, person_key_of: KeyOf):
        self.person_key_of = person_key_of
        super().__init__()

    def define_tables(self, metadata: sa.MetaData) -> None:
        entries.to_metadata(metadata)
        aliases.to_metadata(metadata)

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        """The batch's accesses are filed under their person's key now; a replaced identifier
        moves the person's earlier accesses (stored, and of this batch so far) and aliases to
        the new key. All in memory, then one statement each: moves, inserts, aliases."""
        alias = RowCache(aliases)
        alias.load_all(conn)  # a few rows: one per replacement
        known = alias.in_memory()
        by_person: dict[str, list[dict[str, Any]]] = {}  # this batch's entries
        moves: list[dict[str, str]] = []  # of stored entries, in order
        for e in events:
            p = e.payload
            if isinstance(p, ev.PersonRecordAccessed) and e.person_key:
                filed: set[str] = set()
                for shown, named in ((e.person_key, False), *((o, True) for o in p.others)):
                    current = known.get(shown)
                    key = current["new_key"] if current else shown
                    if key not in filed:  # (one entry per person and view)
                        filed.add(key)
                        by_person.setdefault(key, []).append(entry(e, key, named))
            elif isinstance(p, ev.PersonIdentifierReplaced):
                old = self.person_key_of(p.old_identifier)
                new = self.person_key_of(p.new_identifier)
                if old == new:
                    continue
                moves.append({"b_old": old, "b_new": new})
                for row in by_person.pop(old, ()):
                    row["person_key"] = new
                    by_person.setdefault(new, []).append(row)
                put_alias(alias, old, new)
        if moves:
            conn.execute(entries.update().where(entries.c.person_key == sa.bindparam("b_old"))
                         .values(person_key=sa.bindparam("b_new")), moves)
        rows = [r for group in by_person.values() for r in group]
        rows.sort(key=lambda r: (r["position"], r["person_key"]))
        insert_many(conn, entries, rows)
        alias.flush(conn)


def create(person_key_of: KeyOf) -> AccessLog:
    return AccessLog(person_key_of)
