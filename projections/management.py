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
from projections.base import KeyOf, Projection
from projections.db import Instant
from projections.rows import KeyedRows, RowCache
from projections.target_groups import INACTIVE_STATUSES

_TS = Instant()
FOLLOW_UP_ACTION = "follow_up"


class ManagementProjection(Projection):
    name = "management"
    version = 2  # 2: times kept as instants on SQLite (were written as local wall time)

    def __init__(self, person_key_of: KeyOf):
        self.key_of = person_key_of  # the store's pseudonymizer keeps its keys
        self._handlers = self.event_handlers()
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
        """Load the rows the batch touches, apply the events in order in memory, write once."""
        if not events:
            return
        b = _Batch(self, conn)
        keys: dict[RowCache, set[str]] = {c: set() for c in b.caches}
        cases = keys[b.cases]
        members: set[str] = set()
        for e in events:
            p = e.payload
            kind = type(p).__name__  # e.event_type, without the property call
            if kind == "PersonRegistered":
                keys[b.persons].add(self._key(e))
            elif kind in ev.CASE_EVENTS:
                if e.case_key:
                    cases.add(e.case_key)
                    if kind == "CaseActionRecorded" and p.action_type == FOLLOW_UP_ACTION:
                        keys[b.followups].add(f"{e.case_key}:{p.action_id}")
            elif kind in ev.GRANT_EVENTS:
                keys[b.grants].add(p.grant_id)
            elif kind == "PathwayMeetingHeld":
                keys[b.meetings].add(_meeting_id(e))
            elif kind == "PathwayMembersChanged":  # reads and replaces the members only
                members.add(p.pathway_id)
            elif kind in ev.PATHWAY_EVENTS and hasattr(p, "pathway_id"):
                keys[b.pathways].add(p.pathway_id)
        for cache, wanted in keys.items():
            cache.load(conn, wanted - {None})
        b.members.load(conn, members)
        handlers = self._handlers
        for e in events:
            handler = handlers.get(type(e.payload).__name__)
            if handler is not None:
                handler(b, e, e.payload)
        for cache in (*b.caches, b.members):
            cache.flush(conn)

    def _key(self, e: ev.CanonicalEvent) -> str | None:
        return e.person_key or (self.key_of(e.person) if e.person else None)

    @staticmethod
    def _set(cache: RowCache, key: str | None, **values: Any) -> None:
        """Change the row with this key, if there is one (as an SQL UPDATE would)."""
        row = cache.get(key) if key is not None else None
        if row is not None:
            row.update(values)
            cache.put(row)

    # --- persons and cases -------------------------------------------------------------------

    def _on_PersonRegistered(self, b: _Batch, e, p: ev.PersonRegistered) -> None:  # noqa: N802
        key = self._key(e)
        if key:
            b.persons.put({"person_key": key, "birth_date": p.birth_date})

    def _on_CaseOpened(self, b: _Batch, e, p: ev.CaseOpened) -> None:  # noqa: N802
        if not e.case_key:
            return
        b.cases.put({
            "case_key": e.case_key, "person_key": self._key(e), "department": p.department,
            "unit_id": p.unit_id, "case_type": p.case_type, "law": p.law,
            "paragraph": p.paragraph, "status": p.status,
            "active": p.status not in INACTIVE_STATUSES, "opened_at": e.occurred_at,
            "closed_at": None, "caseworker_id": None, "caseworker_unit_id": None})

    def _on_CaseStatusChanged(self, b: _Batch, e, p: ev.CaseStatusChanged) -> None:  # noqa: N802
        active = p.status not in INACTIVE_STATUSES
        self._set(b.cases, e.case_key, status=p.status, active=active,
                  closed_at=None if active else e.occurred_at)

    def _on_CasePassivated(self, b: _Batch, e, p) -> None:  # noqa: N802
        self._set(b.cases, e.case_key, status="passive", active=False, closed_at=e.occurred_at)

    def _on_CaseClosed(self, b: _Batch, e, p) -> None:  # noqa: N802
        self._set(b.cases, e.case_key, status="closed", active=False, closed_at=e.occurred_at)

    def _on_CaseReopened(self, b: _Batch, e, p) -> None:  # noqa: N802
        self._set(b.cases, e.case_key, status="open", active=True, closed_at=None)

    def _on_CaseLegalBasisChanged(self, b: _Batch, e, p: ev.CaseLegalBasisChanged) -> None:  # noqa: N802
        self._set(b.cases, e.case_key, law=p.law, paragraph=p.paragraph)

    def _on_CaseworkerAssigned(self, b: _Batch, e, p: ev.CaseworkerAssigned) -> None:  # noqa: N802
        if p.role == "primary":
            self._set(b.cases, e.case_key, caseworker_id=p.caseworker_id,
                      caseworker_unit_id=p.unit_id)

    def _on_CaseworkerUnassigned(self, b: _Batch, e, p: ev.CaseworkerUnassigned) -> None:  # noqa: N802
        case = b.cases.get(e.case_key) if p.role == "primary" and e.case_key else None
        if case is not None and case["caseworker_id"] == p.caseworker_id:
            self._set(b.cases, e.case_key, caseworker_id=None, caseworker_unit_id=None)

    def _on_CaseActionRecorded(self, b: _Batch, e, p: ev.CaseActionRecorded) -> None:  # noqa: N802
        if p.action_type == FOLLOW_UP_ACTION and e.case_key:
            b.followups.put({"action_id": f"{e.case_key}:{p.action_id}",
                             "case_key": e.case_key, "occurred_at": e.occurred_at})

    # --- grants -----------------------------------------------------------------------------

    def _on_GrantAwarded(self, b: _Batch, e, p: ev.GrantAwarded) -> None:  # noqa: N802
        b.grants.put({
            "grant_id": p.grant_id, "case_key": e.case_key, "law": p.law,
            "paragraph": p.paragraph, "granting_unit_id": p.granting_unit_id,
            "valid_from": p.valid_from, "valid_to": p.valid_to, "ended_on": None,
            "applied_on": p.applied_on, "decided_on": p.decided_on})

    def _on_GrantChanged(self, b: _Batch, e, p: ev.GrantChanged) -> None:  # noqa: N802
        if p.valid_to is not None:
            self._set(b.grants, p.grant_id, valid_to=p.valid_to)

    def _on_GrantEnded(self, b: _Batch, e, p: ev.GrantEnded) -> None:  # noqa: N802
        self._set(b.grants, p.grant_id, ended_on=p.ended_on)

    # --- coordinated pathways ---------------------------------------------------------------

    def _on_PathwayStarted(self, b: _Batch, e, p: ev.PathwayStarted) -> None:  # noqa: N802
        b.pathways.put({
            "pathway_id": p.pathway_id, "anchor_unit_id": p.anchor_unit_id,
            "anchor_unit_name": p.anchor_unit_name, "rule_id": p.rule_id,
            "started_at": e.occurred_at, "closed_at": None, "close_reason": None,
            "tovholder_id": None, "tovholder_name": None, "tovholder_unit_id": None,
            "first_progression": None, "progression": None})
        for k in sorted({self.key_of(m) for m in p.members} | ({self._key(e)} - {None})):
            b.members.put({"pathway_id": p.pathway_id, "person_key": k})

    def _on_PathwayMembersChanged(self, b: _Batch, e, p: ev.PathwayMembersChanged) -> None:  # noqa: N802
        wanted = {self.key_of(m) for m in p.members} | ({self._key(e)} - {None})
        b.members.set_group(b.conn, p.pathway_id, [{"pathway_id": p.pathway_id, "person_key": k}
                                                  for k in sorted(wanted)])

    def _on_PathwayTovholderAssigned(self, b: _Batch, e, p: ev.PathwayTovholderAssigned) -> None:  # noqa: N802
        self._set(b.pathways, p.pathway_id, tovholder_id=p.caseworker_id,
                  tovholder_name=p.caseworker_name, tovholder_unit_id=p.unit_id)

    def _on_PathwayMeetingHeld(self, b: _Batch, e, p: ev.PathwayMeetingHeld) -> None:  # noqa: N802
        b.meetings.put({
            "meeting_id": _meeting_id(e), "pathway_id": p.pathway_id,
            "meeting_type": p.meeting_type, "held_at": e.occurred_at,
            "citizen_present": p.citizen_present})

    def _on_PathwayPlanUpdated(self, b: _Batch, e, p: ev.PathwayPlanUpdated) -> None:  # noqa: N802
        pathway = b.pathways.get(p.pathway_id) if p.progression is not None else None
        if pathway is not None:
            first = pathway["first_progression"]
            self._set(b.pathways, p.pathway_id, progression=p.progression,
                      first_progression=p.progression if first is None else first)

    def _on_PathwayClosed(self, b: _Batch, e, p: ev.PathwayClosed) -> None:  # noqa: N802
        self._set(b.pathways, p.pathway_id, closed_at=e.occurred_at, close_reason=p.reason)


def _meeting_id(e: ev.CanonicalEvent) -> str:
    return f"{e.source_system}:{e.source_record_id}:{e.source_version}"


class _Batch:
    """The rows of one batch, one cache per table."""

    def __init__(self, p: ManagementProjection, conn: sa.Connection):
        self.conn = conn
        self.persons, self.cases = RowCache(p.persons), RowCache(p.cases)
        self.grants, self.followups = RowCache(p.grants), RowCache(p.followups)
        self.pathways, self.meetings = RowCache(p.pathways), RowCache(p.meetings)
        self.members = KeyedRows(p.members)
        self.caches = (self.persons, self.cases, self.grants, self.followups, self.pathways,
                       self.meetings)


ManagementProjection.topics = tuple(n[len("_on_"):] for n in dir(ManagementProjection)
                                    if n.startswith("_on_"))
