"""Read queries over the target-group model: lists per rule and unit, one person's matches with
their explanation, counts over time. Index lookups, no scans of the fact tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from projections.target_groups import TargetGroupsProjection


@dataclass(frozen=True, slots=True)
class MatchRow:
    rule_id: str
    rule_version: str
    subject: str
    group_key: str
    since: datetime
    explanation: str
    evidence: tuple[str, ...]


def _rows(result) -> list[MatchRow]:  # noqa: ANN001
    return [MatchRow(x.rule_id, x.rule_version, x.subject, x.group_key, x.started_at,
                     x.explanation, tuple((x.evidence or "").split("\n")) if x.evidence else ())
            for x in result]


def match_list(conn: sa.Connection, p: TargetGroupsProjection, rule_id: str,
               unit_id: str | None = None, limit: int = 100, offset: int = 0) -> list[MatchRow]:
    m, u = p.matches, p.match_units
    q = sa.select(m).where(m.c.rule_id == rule_id)
    if unit_id:
        q = q.where(sa.exists().where(u.c.rule_id == m.c.rule_id, u.c.subject == m.c.subject,
                                      u.c.unit_id == unit_id))
    return _rows(conn.execute(q.order_by(m.c.started_at, m.c.subject).limit(limit)
                              .offset(offset)))


def person_matches(conn: sa.Connection, p: TargetGroupsProjection, person_key: str
                   ) -> list[MatchRow]:
    """"Why is this person on the list": every open match of the person, with its evidence."""
    m = p.matches
    return _rows(conn.execute(sa.select(m).where(m.c.subject == person_key)
                              .order_by(m.c.rule_id)))


def counts_by_rule_and_unit(conn: sa.Connection, p: TargetGroupsProjection
                            ) -> list[tuple[str, str, int]]:
    u = p.match_units
    return [tuple(x) for x in conn.execute(
        sa.select(u.c.rule_id, u.c.unit_id, sa.func.count()).group_by(u.c.rule_id, u.c.unit_id)
        .order_by(u.c.rule_id, u.c.unit_id))]


def counts_over_time(conn: sa.Connection, p: TargetGroupsProjection, rule_id: str,
                     moments: list[datetime]) -> list[tuple[datetime, int]]:
    """How many matched ``rule_id`` at each moment (from the match history)."""
    h = p.match_history
    out = []
    for t in moments:
        n = conn.execute(sa.select(sa.func.count()).where(
            h.c.rule_id == rule_id, h.c.started_at <= t,
            sa.or_(h.c.ended_at.is_(None), h.c.ended_at > t))).scalar()
        out.append((t, n))
    return out
