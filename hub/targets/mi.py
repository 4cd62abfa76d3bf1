"""Management information: the figures leaders ask for (Ballerup 002:L1324-1333, Frederikssund
003:L393-403, the children's area seed 004), filtered by period and unit, as tables that export
to CSV. Each report is a function ``(conn, projection, Filter) -> Table``.
"""

from __future__ import annotations

import csv
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from hub.domain.rules import add_months
from hub.ingest.validate import LOCAL_TZ
from hub.targets.cadence import Cadence, compliance
from projections.management import ManagementProjection

CASELOAD_TARGET = 25  # cases per caseworker in the children's area (seed 004)


@dataclass(frozen=True)
class Filter:
    start: date
    end: date
    unit: str | None = None
    cadences: dict[str, Cadence] = field(default_factory=dict)
    youth_meetings: tuple[tuple[int, str], ...] = ((192, "ungemoede-16"),
                                                   (210, "ungemoede-17.5"))

    @property
    def start_ts(self) -> datetime:
        return datetime.combine(self.start, time.min, LOCAL_TZ)

    @property
    def end_ts(self) -> datetime:
        return datetime.combine(self.end, time.max, LOCAL_TZ)


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, delimiter=";")
            w.writerow(self.headers)
            w.writerows(self.rows)


def _day(ts: datetime) -> date:
    """The Danish calendar day of an instant."""
    return ts.astimezone(LOCAL_TZ).date()


def _days(a: datetime, b: datetime) -> int:
    return (b - a).days


def _pathway_rows(conn: sa.Connection, p: ManagementProjection, f: Filter) -> list[Any]:
    t = p.pathways
    q = sa.select(t).where(t.c.started_at <= f.end_ts,
                           sa.or_(t.c.closed_at.is_(None), t.c.closed_at >= f.start_ts))
    if f.unit:
        q = q.where(t.c.anchor_unit_id == f.unit)
    return conn.execute(q.order_by(t.c.pathway_id)).all()


def pathways(conn: sa.Connection, p: ManagementProjection, f: Filter) -> Table:
    """Every coordinated pathway open in the period: anchor unit, tovholder, duration,
    progression, and whether the 16 and 17½ meetings were held."""
    rows = _pathway_rows(conn, p, f)
    ids = [r.pathway_id for r in rows]
    held: dict[str, set[str]] = defaultdict(set)
    for pid, mtype in conn.execute(sa.select(p.meetings.c.pathway_id, p.meetings.c.meeting_type)
                                   .where(p.meetings.c.pathway_id.in_(ids))):
        held[pid].add(mtype)
    births: dict[str, list[date]] = defaultdict(list)
    for pid, born in conn.execute(
            sa.select(p.members.c.pathway_id, p.persons.c.birth_date)
            .join(p.persons, p.persons.c.person_key == p.members.c.person_key)
            .where(p.members.c.pathway_id.in_(ids), p.persons.c.birth_date.is_not(None))):
        births[pid].append(born)
    out = []
    for r in rows:
        end = r.closed_at or f.end_ts
        meetings = []
        for months, mtype in f.youth_meetings:
            due = any(add_months(b, months) <= f.end for b in births[r.pathway_id]
                      if add_months(b, 216) > _day(r.started_at))
            meetings.append(("ja" if mtype in held[r.pathway_id] else "nej") if due else "")
        out.append((r.pathway_id, r.anchor_unit_id, r.anchor_unit_name, r.tovholder_id or "",
                    r.tovholder_name or "", _day(r.started_at),
                    _day(r.closed_at) if r.closed_at else "", r.close_reason or "",
                    _days(r.started_at, end), r.first_progression, r.progression, *meetings))
    return Table(("forloeb", "forankring", "forankring_navn", "tovholder", "tovholder_navn",
                  "startet", "lukket", "lukkeaarsag", "varighed_dage", "progression_start",
                  "progression_nu", *(f"moede_{m}" for _, m in f.youth_meetings)), out)


def pathway_summary(conn: sa.Connection, p: ManagementProjection, f: Filter) -> Table:
    """Per anchor unit: pathways open in the period, started, closed, mean closed duration."""
    per: dict[str, list[Any]] = defaultdict(list)
    for r in _pathway_rows(conn, p, f):
        per[r.anchor_unit_id].append(r)
    out = []
    for unit, rows in sorted(per.items()):
        closed = [r for r in rows if r.closed_at and r.closed_at <= f.end_ts]
        durations = [_days(r.started_at, r.closed_at) for r in closed]
        out.append((unit, len(rows), sum(1 for r in rows if r.started_at >= f.start_ts),
                    len(closed), round(statistics.fmean(durations), 1) if durations else ""))
    return Table(("forankring", "forloeb_i_perioden", "startet", "lukket",
                  "gns_varighed_lukkede_dage"), out)


def per_tovholder(conn: sa.Connection, p: ManagementProjection, f: Filter) -> Table:
    c = Counter((r.tovholder_id or "(ingen)", r.tovholder_unit_id or "")
                for r in _pathway_rows(conn, p, f) if r.closed_at is None)
    return Table(("tovholder", "enhed", "aabne_forloeb"),
                 [(k[0], k[1], n) for k, n in sorted(c.items())])


def caseload(conn: sa.Connection, p: ManagementProjection, f: Filter) -> Table:
    """Active cases per caseworker and team (the caseworker's unit), against the target."""
    c = p.cases
    q = (sa.select(c.c.caseworker_unit_id, c.c.caseworker_id, sa.func.count())
         .where(c.c.active == sa.true(), c.c.caseworker_id.is_not(None))
         .group_by(c.c.caseworker_unit_id, c.c.caseworker_id)
         .order_by(c.c.caseworker_unit_id, c.c.caseworker_id))
    if f.unit:
        q = q.where(c.c.caseworker_unit_id == f.unit)
    return Table(("team", "sagsbehandler", "aktive_sager", "over_maal"),
                 [(u, w, n, "ja" if n > CASELOAD_TARGET else "nej")
                  for u, w, n in conn.execute(q)])


def cases_by_paragraph(conn: sa.Connection, p: ManagementProjection, f: Filter) -> Table:
    c = p.cases
    active_at_end = sa.and_(c.c.opened_at <= f.end_ts,
                            sa.or_(c.c.closed_at.is_(None), c.c.closed_at > f.end_ts))
    opened = sa.and_(c.c.opened_at >= f.start_ts, c.c.opened_at <= f.end_ts)
    q = (sa.select(c.c.law, c.c.paragraph, c.c.unit_id,
                   sa.func.sum(sa.case((active_at_end, 1), else_=0)),
                   sa.func.sum(sa.case((opened, 1), else_=0)))
         .group_by(c.c.law, c.c.paragraph, c.c.unit_id)
         .order_by(c.c.law, c.c.paragraph, c.c.unit_id))
    if f.unit:
        q = q.where(c.c.unit_id == f.unit)
    return Table(("lov", "paragraf", "enhed", "aktive_ved_periodens_slut", "aabnet_i_perioden"),
                 [tuple(r) for r in conn.execute(q) if r[3] or r[4]])


def grants_by_paragraph(conn: sa.Connection, p: ManagementProjection, f: Filter) -> Table:
    g = p.grants
    active = sa.and_(g.c.valid_from <= f.end,
                     sa.or_(g.c.valid_to.is_(None), g.c.valid_to >= f.end),
                     sa.or_(g.c.ended_on.is_(None), g.c.ended_on > f.end))
    new = sa.and_(g.c.valid_from >= f.start, g.c.valid_from <= f.end)
    q = (sa.select(g.c.law, g.c.paragraph, g.c.granting_unit_id,
                   sa.func.sum(sa.case((active, 1), else_=0)),
                   sa.func.sum(sa.case((new, 1), else_=0)))
         .group_by(g.c.law, g.c.paragraph, g.c.granting_unit_id)
         .order_by(g.c.law, g.c.paragraph, g.c.granting_unit_id))
    if f.unit:
        q = q.where(g.c.granting_unit_id == f.unit)
    return Table(("lov", "paragraf", "bevilgende_enhed", "aktive_ved_periodens_slut",
                  "bevilget_i_perioden"), [tuple(r) for r in conn.execute(q) if r[3] or r[4]])


def decision_time(conn: sa.Connection, p: ManagementProjection, f: Filter) -> Table:
    """Days from application to decision, for grants decided in the period."""
    g = p.grants
    q = sa.select(g.c.law, g.c.paragraph, g.c.granting_unit_id, g.c.applied_on,
                  g.c.decided_on).where(g.c.applied_on.is_not(None),
                                        g.c.decided_on.is_not(None),
                                        g.c.decided_on >= f.start, g.c.decided_on <= f.end)
    if f.unit:
        q = q.where(g.c.granting_unit_id == f.unit)
    days: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for law, par, unit, applied, decided in conn.execute(q):
        days[(law, par, unit)].append((decided - applied).days)
    return Table(("lov", "paragraf", "enhed", "afgjort", "gns_dage", "median_dage", "max_dage"),
                 [(*k, len(v), round(statistics.fmean(v), 1), statistics.median(v), max(v))
                  for k, v in sorted(days.items())])


def followup_compliance(conn: sa.Connection, p: ManagementProjection, f: Filter) -> Table:
    """Due follow-ups in the period that were held on time, per unit and case type."""
    c, fu = p.cases, p.followups
    q = sa.select(c.c.case_key, c.c.unit_id, c.c.case_type, c.c.opened_at, c.c.closed_at).where(
        c.c.case_type.in_(list(f.cadences)), c.c.opened_at <= f.end_ts)
    if f.unit:
        q = q.where(c.c.unit_id == f.unit)
    cases = conn.execute(q).all()
    held: dict[str, list[datetime]] = defaultdict(list)
    keys = [x.case_key for x in cases]
    for i in range(0, len(keys), 500):
        for key, at in conn.execute(sa.select(fu.c.case_key, fu.c.occurred_at).where(
                fu.c.case_key.in_(keys[i:i + 500]))):
            held[key].append(at)
    due: Counter[tuple[str, str]] = Counter()
    met: Counter[tuple[str, str]] = Counter()
    for x in cases:
        until = min(f.end_ts, x.closed_at or f.end_ts)
        for when, ok in compliance(f.cadences[x.case_type], x.opened_at, until,
                                   held[x.case_key]):
            if when >= f.start_ts:
                due[(x.unit_id, x.case_type)] += 1
                met[(x.unit_id, x.case_type)] += ok
    return Table(("enhed", "sagstype", "forfaldne_opfoelgninger", "holdt_rettidigt", "pct"),
                 [(*k, n, met[k], round(100 * met[k] / n, 1)) for k, n in sorted(due.items())])


REPORTS: dict[str, Callable[[sa.Connection, ManagementProjection, Filter], Table]] = {
    "pathways": pathways, "pathway-summary": pathway_summary, "tovholdere": per_tovholder,
    "caseload": caseload, "cases-by-paragraph": cases_by_paragraph,
    "grants-by-paragraph": grants_by_paragraph, "decision-time": decision_time,
    "followup-compliance": followup_compliance,
}
