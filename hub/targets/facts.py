"""Fact tables <-> ``hub.domain.rules.Facts``: load facts in bulk (tests, benchmark) and read
them back (to check the SQL engine against the reference evaluator on real data)."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from hub.domain import rules as r

#: Facts field -> (table name, fact class).
FACT_TABLES = {
    "persons": r.PersonFact, "cases": r.CaseFact, "grants": r.GrantFact,
    "relations": r.RelationFact, "consents": r.ConsentFact, "meetings": r.MeetingFact,
}


def _row(fact: object, table: sa.Table) -> dict:
    row = {c.name: None for c in table.columns}
    row.update(dataclasses.asdict(fact))
    if isinstance(fact, r.MeetingFact) and row.get("meeting_id") is None:
        row["meeting_id"] = f"{fact.person_key}:{fact.meeting_type}:{fact.held_on}"
    return row


def load_facts(conn: sa.Connection, tables: dict[str, sa.Table], facts: r.Facts) -> None:
    """Insert every fact (tables assumed empty). Missing columns are NULL."""
    for name in FACT_TABLES:
        t = tables[name]
        rows = [_row(f, t) for f in getattr(facts, name)]
        if name == "meetings":  # the same meeting twice is one row
            rows = list({row["meeting_id"]: row for row in rows}.values())
        if rows:
            conn.execute(t.insert(), rows)


def read_facts(conn: sa.Connection, tables: dict[str, sa.Table]) -> r.Facts:
    out = {}
    for name, cls in FACT_TABLES.items():
        fields = [f.name for f in dataclasses.fields(cls)]
        t = tables[name]
        out[name] = tuple(cls(**{k: row._mapping[k] for k in fields})
                          for row in conn.execute(sa.select(*(t.c[k] for k in fields))))
    return r.Facts(**out)
