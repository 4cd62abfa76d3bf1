"""Management information (ledelsesinformation): the rows leaders' figures are counted from.

Coordinated pathways (anchor unit, tovholder, meetings, progression, closing), cases with their
paragraph, unit, status and primary caseworker, grants with application and decision dates, and
follow-ups. The figures themselves are queries in ``hub.targets.mi``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from hub.domain import events as ev
from projections.base import Projection
from projections.target_groups import INACTIVE_STATUSES, KeyOf, upsert

_TS = sa.DateTime(timezone=True)
FOLLOW_UP_ACTION = "follow_up"


class ManagementProjection(Projection):
    name = "management"
    version = 1

    def __init__(self, person_key_of: KeyOf):
        self.key_of = person_key_of
        super().__init__()

    def define_tables(self, md: sa.MetaData) -> None:
        s = sa.String(200)
        self.persons = sa.Table("mi_persons", md, sa.Column("person_key", s, primary_key=True),
                                sa.Column("birth_date", sa.Date))
        self.pathways = sa.Table(
            "mi_pathways", md, sa.Column("pathway_id", s, primary_key=True),
            sa.Column("anchor_unit_id", s, index=True), sa.Column("anchor_unit_name", s),
            sa.Column("rule_id", s), sa.Column("started_at", _TS), sa.Column("closed_at", _TS),
            sa.Column("close_reason", s), sa.Column("tovholder_id", s, index=True),
            sa.Column("tovholder_name", s), sa.Column("tovholder_unit_id", s),
            sa.Column("first_progression", sa.Integer),
            sa.Column("progression", sa.Integer))
        self.members = sa.Table(
            "mi_pathway_members", md, sa.Column("pathway_id", s, primary_key=True),
            sa.Column("person_key", s, primary_key=True))
        self.meetings = sa.Table(
            "mi_pathway_meetings", md, sa.Column("meeting_id", s, primary_key=True),
            sa.Column("pathway_id", s, index=True), sa.Column("meeting_type", s),
            sa.Column("held_at", _TS), sa.Column("citizen_present", sa.Boolean))
        self.cases = sa.Table(
            "mi_cases", md, sa.Column("case_key", s, primary_key=True),
            sa.Column("person_key", s), sa.Column("department", s), sa.Column("unit_id", s,
                                                                              index=True),
            sa.Column("case_type", s), sa.Column("law", s), sa.Column("paragraph", s),
            sa.Column("status", s), sa.Column("active", sa.Boolean),
            sa.Column("opened_at", _TS), sa.Column("closed_at", _TS),
            sa.Column("caseworker_id", s, index=True), sa.Column("caseworker_unit_id", s))
        self.grants = sa.Table(
            "mi_grants", md, sa.Column("grant_id", s, primary_key=True),
            sa.Column("case_key", s), sa.Column("law", s), sa.Column("paragraph", s),
            sa.Column("granting_unit_id", s), sa.Column("valid_from", sa.Date),
            sa.Column("valid_to", sa.Date), sa.Column("ended_on", sa.Date),
            sa.Column("applied_on", sa.Date), sa.Column("decided_on", sa.Date))
        self.followups = sa.Table(
            "mi_followups", md, sa.Column("action_id", s, primary_key=True),
            sa.Column("case_key", s, index=True), sa.Column("occurred_at", _TS))

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        for e in events:
            handler = getattr(self, f"_on_{e.event_type}", None)
            if handler is not None:
                handler(e, e.payload, conn)

    def _key(self, e: ev.CanonicalEvent) -> str | None:
        return e.person_key or (self.key_of(e.person) if e.person else None)

    def _set(self, conn, table: sa.Table, key: str, value: str, **values: Any) -> None:
        conn.execute(table.update().where(table.c[key] == value).values(**values))

    # --- persons and cases -------------------------------------------------------------------

    def _on_PersonRegistered(self, e, p: ev.PersonRegistered, conn) -> None:  # noqa: N802
        key = self._key(e)
        if key:
            upsert(conn, self.persons, [{"person_key": key, "birth_date": p.birth_date}])

    def _on_CaseOpened(self, e, p: ev.CaseOpened, conn) -> None:  # noqa: N802
        if not e.case_key:
            return
        upsert(conn, self.cases, [{
            "case_key": e.case_key, "person_key": self._key(e), "department": p.department,
            "unit_id": p.unit_id, "case_type": p.case_type, "law": p.law,
            "paragraph": p.paragraph, "status": p.status,
            "active": p.status not in INACTIVE_STATUSES, "opened_at": e.occurred_at,
            "closed_at": None, "caseworker_id": None, "caseworker_unit_id": None}])

    def _on_CaseStatusChanged(self, e, p: ev.CaseStatusChanged, conn) -> None:  # noqa: N802
        active = p.status not in INACTIVE_STATUSES
        self._set(conn, self.cases, "case_key", e.case_key, status=p.status, active=active,
                  closed_at=None if active else e.occurred_at)

    def _on_CasePassivated(self, e, p, conn) -> None:  # noqa: N802
        self._set(conn, self.cases, "case_key", e.case_key, status="passive", active=False,
                  closed_at=e.occurred_at)

    def _on_CaseClosed(self, e, p, conn) -> None:  # noqa: N802
        self._set(conn, self.cases, "case_key", e.case_key, status="closed", active=False,
                  closed_at=e.occurred_at)

    def _on_CaseReopened(self, e, p, conn) -> None:  # noqa: N802
        self._set(conn, self.cases, "case_key", e.case_key, status="open", active=True,
                  closed_at=None)

    def _on_CaseLegalBasisChanged(self, e, p: ev.CaseLegalBasisChanged, conn) -> None:  # noqa: N802
        self._set(conn, self.cases, "case_key", e.case_key, law=p.law, paragraph=p.paragraph)

    def _on_CaseworkerAssigned(self, e, p: ev.CaseworkerAssigned, conn) -> None:  # noqa: N802
        if p.role == "primary":
            self._set(conn, self.cases, "case_key", e.case_key, caseworker_id=p.caseworker_id,
                      caseworker_unit_id=p.unit_id)

    def _on_CaseworkerUnassigned(self, e, p: ev.CaseworkerUnassigned, conn) -> None:  # noqa: N802
        c = self.cases
        if p.role == "primary":
            conn.execute(c.update().where(c.c.case_key == e.case_key,
                                          c.c.caseworker_id == p.caseworker_id)
                         .values(caseworker_id=None, caseworker_unit_id=None))

    def _on_CaseActionRecorded(self, e, p: ev.CaseActionRecorded, conn) -> None:  # noqa: N802
        if p.action_type == FOLLOW_UP_ACTION and e.case_key:
            upsert(conn, self.followups, [{"action_id": f"{e.case_key}:{p.action_id}",
                                           "case_key": e.case_key,
                                           "occurred_at": e.occurred_at}])

    # --- grants -----------------------------------------------------------------------------

    def _on_GrantAwarded(self, e, p: ev.GrantAwarded, conn) -> None:  # noqa: N802
        upsert(conn, self.grants, [{
            "grant_id": p.grant_id, "case_key": e.case_key, "law": p.law,
            "paragraph": p.paragraph, "granting_unit_id": p.granting_unit_id,
            "valid_from": p.valid_from, "valid_to": p.valid_to, "ended_on": None,
            "applied_on": p.applied_on, "decided_on": p.decided_on}])

    def _on_GrantChanged(self, e, p: ev.GrantChanged, conn) -> None:  # noqa: N802
        if p.valid_to is not None:
            self._set(conn, self.grants, "grant_id", p.grant_id, valid_to=p.valid_to)

    def _on_GrantEnded(self, e, p: ev.GrantEnded, conn) -> None:  # noqa: N802
        self._set(conn, self.grants, "grant_id", p.grant_id, ended_on=p.ended_on)

    # --- coordinated pathways ---------------------------------------------------------------

    def _on_PathwayStarted(self, e, p: ev.PathwayStarted, conn) -> None:  # noqa: N802
        upsert(conn, self.pathways, [{
            "pathway_id": p.pathway_id, "anchor_unit_id": p.anchor_unit_id,
            "anchor_unit_name": p.anchor_unit_name, "rule_id": p.rule_id,
            "started_at": e.occurred_at, "closed_at": None, "close_reason": None,
            "tovholder_id": None, "tovholder_name": None, "tovholder_unit_id": None,
            "first_progression": None, "progression": None}])
        keys = {self.key_of(m) for m in p.members} | ({self._key(e)} - {None})
        upsert(conn, self.members, [{"pathway_id": p.pathway_id, "person_key": k}
                                    for k in sorted(keys)])

    def _on_PathwayTovholderAssigned(self, e, p: ev.PathwayTovholderAssigned, conn) -> None:  # noqa: N802
        self._set(conn, self.pathways, "pathway_id", p.pathway_id, tovholder_id=p.caseworker_id,
                  tovholder_name=p.caseworker_name, tovholder_unit_id=p.unit_id)

    def _on_PathwayMeetingHeld(self, e, p: ev.PathwayMeetingHeld, conn) -> None:  # noqa: N802
        upsert(conn, self.meetings, [{
            "meeting_id": f"{e.source_system}:{e.source_record_id}:{e.source_version}",
            "pathway_id": p.pathway_id, "meeting_type": p.meeting_type,
            "held_at": e.occurred_at, "citizen_present": p.citizen_present}])

    def _on_PathwayPlanUpdated(self, e, p: ev.PathwayPlanUpdated, conn) -> None:  # noqa: N802
        if p.progression is None:
            return
        t = self.pathways
        conn.execute(t.update().where(t.c.pathway_id == p.pathway_id).values(
            progression=p.progression,
            first_progression=sa.func.coalesce(t.c.first_progression, p.progression)))

    def _on_PathwayClosed(self, e, p: ev.PathwayClosed, conn) -> None:  # noqa: N802
        self._set(conn, self.pathways, "pathway_id", p.pathway_id, closed_at=e.occurred_at,
                  close_reason=p.reason)


ManagementProjection.topics = tuple(n[len("_on_"):] for n in dir(ManagementProjection)
                                    if n.startswith("_on_"))
