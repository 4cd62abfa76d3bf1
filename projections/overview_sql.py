"""The statements behind one citizen overview, fetched in ONE round trip on PostgreSQL.

Every statement depends only on the person key (the household's members are found with
subqueries), so on PostgreSQL all of them go to the server in one psycopg pipeline; on SQLite
(in-process, no round trips) they simply run one after the other. Rows come back as dicts.

When the connection is not in a transaction yet (the usual case: one just taken from the pool),
the pipeline carries its own ``BEGIN`` and ``COMMIT`` (no round trip of its own), and the
connection goes back to the pool idle. That keeps psycopg's prepared statements: a
``ROLLBACK`` (what the pool sends to a connection returned inside a transaction) makes psycopg
drop them, and PostgreSQL would then plan all eight statements again for every overview.
"""

from __future__ import annotations

from contextlib import ExitStack, nullcontext
from typing import Any

import sqlalchemy as sa
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from projections import citizen_tables as t

KEY = "key"


def _statements() -> dict[str, Any]:
    key = sa.bindparam(KEY, type_=sa.String)
    p, r, c = t.persons, t.relations, t.cases
    home = sa.select(p.c.address_id).where(p.c.person_key == key).scalar_subquery()
    mine = t.pathway_members.alias("mine")
    everyone = t.pathway_members.alias("everyone")
    pw = t.pathways
    return {
        "person": sa.select(p).where(p.c.person_key == key),
        "relations": sa.select(r.c.person_key, r.c.related_key, r.c.relation).where(
            sa.or_(r.c.person_key == key, r.c.related_key == key)),
        # three index lookups (an OR over subqueries would scan every person)
        "household": sa.union(
            sa.select(p).where(p.c.address_id == home, p.c.person_key != key),
            sa.select(p).where(p.c.person_key.in_(
                sa.select(r.c.related_key).where(r.c.person_key == key))),
            sa.select(p).where(p.c.person_key.in_(
                sa.select(r.c.person_key).where(r.c.related_key == key)))),
        "cases": cases_statement(c.c.person_key == key),
        "grants": sa.select(t.grants).where(t.grants.c.person_key == key)
        .order_by(t.grants.c.valid_from, t.grants.c.grant_key),
        "consents": sa.select(t.consents).where(t.consents.c.person_key == key)
        .order_by(t.consents.c.valid_from, t.consents.c.consent_id),
        "markings": sa.select(t.markings).where(t.markings.c.person_key == key)
        .order_by(t.markings.c.valid_from, t.markings.c.marking_key),
        "pathways": sa.select(pw, everyone.c.person_key.label("member"))
        .select_from(mine.join(pw, pw.c.pathway_id == mine.c.pathway_id)
                     .join(everyone, everyone.c.pathway_id == pw.c.pathway_id))
        .where(mine.c.person_key == key).order_by(pw.c.pathway_id, everyone.c.member_key),
    }


def cases_statement(where: sa.ColumnElement[bool]) -> sa.Select:
    """Cases with their caseworkers (LEFT JOIN, one row per assignment)."""
    c, w = t.cases, t.caseworkers
    return (sa.select(c, w.c.assignment_key, w.c.caseworker_id, w.c.role,
                      w.c.name.label("cw_name"), w.c.unit_id.label("cw_unit_id"), w.c.contact)
            .select_from(c.outerjoin(w, w.c.case_key == c.c.case_key)).where(where)
            .order_by(c.c.opened_at, c.c.case_key, w.c.assignment_key))


STATEMENTS: dict[str, Any] = _statements()
_compiled: dict[str, list[tuple[str, str]]] = {}


def rows(conn: sa.Connection, stmt: sa.Select, params: dict[str, Any] | None = None
         ) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(stmt, params or {})]


def fetch(conn: sa.Connection, person_key: str) -> dict[str, list[dict[str, Any]]]:
    """Every section's rows for one person key."""
    params = {KEY: person_key}
    if conn.dialect.name != "postgresql":
        return {name: rows(conn, stmt, params) for name, stmt in STATEMENTS.items()}
    compiled = _compiled.get(conn.dialect.name)
    if compiled is None:
        compiled = _compiled[conn.dialect.name] = [
            (name, str(stmt.compile(dialect=conn.dialect,
                                    compile_kwargs={"render_postcompile": True})))
            for name, stmt in STATEMENTS.items()]
    raw = conn.connection.dbapi_connection
    own = (not conn.in_transaction()
           and raw.info.transaction_status == TransactionStatus.IDLE)
    with ExitStack() as cursors:
        results = []
        with raw.pipeline(), (raw.transaction() if own else nullcontext()):
            for name, sql in compiled:
                cur = cursors.enter_context(raw.cursor(row_factory=dict_row))
                cur.execute(sql, params)
                results.append((name, cur))
        return {name: cur.fetchall() for name, cur in results}
