"""The target-group read model: the facts the rules read, and who matches which rule since when.

Fact tables (``tg_persons``, ``tg_cases``, ``tg_grants``, ``tg_relations``, ``tg_consents``,
``tg_meetings``) mirror ``hub.domain.rules.Facts`` column for column, so a rule compiled to SQL
(``hub.targets.compile``) reads exactly what the reference evaluator reads. Identity tables
(``tg_identity``, ``tg_identifier_links``) feed the identity-overlap checks; they hold keyed
digests only, never names or CPR numbers. Match tables are built from the hub's own
TargetGroupMatchStarted/Ended and OverlapDetected/Resolved events, so "the previous run" is
whatever the store says, and a rebuild gives the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hub.domain import events as ev
from projections.base import Projection
from projections.rows import upsert as _upsert_rows

#: Case statuses that end a case's activity (canonical statuses from the connectors' mappings).
INACTIVE_STATUSES = frozenset({"closed", "passive", "dismissed", "completed", "cancelled",
                               "passivated", "ended"})
#: PersonRelationChanged.change values that remove a relation.
RELATION_REMOVED = frozenset({"removed", "ended", "deleted"})
_MATCH_EVENTS = frozenset({"TargetGroupMatchStarted", "TargetGroupMatchEnded"})
#: CaseActionRecorded.action_type of a meeting (its subtype is the meeting type).
MEETING_ACTION = "meeting"

KeyOf = Callable[[str], str]
_TS = sa.DateTime(timezone=True)


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert; for tables whose every column is in the key: insert, ignoring duplicates."""
    if all(c.primary_key for c in table.columns):
        for row in rows:
            keys = [table.c[k] == v for k, v in row.items()]
            if conn.execute(sa.select(sa.literal(1)).where(*keys)).first() is None:
                conn.execute(table.insert().values(**row))
        return
    _upsert_rows(conn, table, rows)


def define_fact_tables(md: sa.MetaData, prefix: str = "tg") -> dict[str, sa.Table]:
    """The fact tables; management information reuses the same shapes under its own prefix."""
    s = sa.String(200)
    t = {
        "persons": sa.Table(
            f"{prefix}_persons", md, sa.Column("person_key", s, primary_key=True),
            sa.Column("birth_date", sa.Date), sa.Column("household_key", s, index=True)),
        "cases": sa.Table(
            f"{prefix}_cases", md, sa.Column("case_key", s, primary_key=True),
            sa.Column("person_key", s, nullable=False, index=True),
            sa.Column("department", s, nullable=False), sa.Column("unit_id", s, nullable=False),
            sa.Column("active", sa.Boolean, nullable=False), sa.Column("status", s),
            sa.Column("case_type", s), sa.Column("paragraph", s),
            sa.Column("opened_on", sa.Date), sa.Column("closed_on", sa.Date),
            # The rules read active cases only: a covering partial index lets them skip the rest.
            sa.Index(f"{prefix}_cases_active", "person_key", "department", "case_key",
                     postgresql_where=sa.text("active"), sqlite_where=sa.text("active"))),
        "grants": sa.Table(
            f"{prefix}_grants", md, sa.Column("grant_id", s, primary_key=True),
            sa.Column("case_key", s), sa.Column("person_key", s, nullable=False, index=True),
            sa.Column("law", s, nullable=False), sa.Column("paragraph", s, nullable=False),
            sa.Column("kind", s, nullable=False), sa.Column("granting_unit_id", s, nullable=False),
            sa.Column("valid_from", sa.Date, nullable=False), sa.Column("valid_to", sa.Date),
            sa.Column("ended_on", sa.Date), sa.Column("applied_on", sa.Date),
            sa.Column("decided_on", sa.Date)),
        "relations": sa.Table(
            f"{prefix}_relations", md, sa.Column("person_key", s, primary_key=True),
            sa.Column("related_key", s, primary_key=True),
            sa.Column("relation", s, primary_key=True)),
        "consents": sa.Table(
            f"{prefix}_consents", md, sa.Column("consent_id", s, primary_key=True),
            sa.Column("person_key", s, nullable=False, index=True),
            sa.Column("purpose", s, nullable=False), sa.Column("valid_from", sa.Date,
                                                               nullable=False),
            sa.Column("valid_until", sa.Date), sa.Column("withdrawn_on", sa.Date)),
        "meetings": sa.Table(
            f"{prefix}_meetings", md, sa.Column("meeting_id", s, primary_key=True),
            sa.Column("person_key", s, nullable=False, index=True),
            sa.Column("meeting_type", s, nullable=False), sa.Column("held_on", sa.Date)),
    }
    return t


class TargetGroupsProjection(Projection):
    name = "target_groups"
    version = 3

    def __init__(self, person_key_of: KeyOf):
        """``person_key_of`` turns a CPR/substitute number into its pseudonym (the store's)."""
        self.key_of = person_key_of
        super().__init__()

    def define_tables(self, md: sa.MetaData) -> None:
        self.facts = define_fact_tables(md, "tg")
        s = sa.String(200)
        self.identity = sa.Table(
            "tg_identity", md, sa.Column("person_key", s, primary_key=True),
            sa.Column("source_system", s, primary_key=True), sa.Column("name_digest", s),
            sa.Column("address_digest", s), sa.Column("identity_digest", s, index=True))
        self.links = sa.Table(
            "tg_identifier_links", md, sa.Column("old_key", s, primary_key=True),
            sa.Column("new_key", s, primary_key=True), sa.Column("replaced_at", _TS))
        self.pathways = sa.Table(
            "tg_pathway_members", md, sa.Column("pathway_id", s, primary_key=True),
            sa.Column("person_key", s, primary_key=True))
        self.matches = sa.Table(
            "tg_matches", md, sa.Column("rule_id", s, primary_key=True),
            sa.Column("subject", s, primary_key=True, index=True), sa.Column("rule_version", s),
            sa.Column("group_key", s), sa.Column("episode", sa.Integer, nullable=False),
            sa.Column("started_at", _TS), sa.Column("explanation", sa.Text),
            sa.Column("evidence", sa.Text))  # newline-separated evidence items
        self.match_units = sa.Table(
            "tg_match_units", md, sa.Column("rule_id", s, primary_key=True),
            sa.Column("subject", s, primary_key=True),
            sa.Column("unit_id", s, primary_key=True, index=True))
        self.match_history = sa.Table(
            "tg_match_history", md, sa.Column("rule_id", s, primary_key=True),
            sa.Column("subject", s, primary_key=True, index=True),
            sa.Column("episode", sa.Integer, primary_key=True),
            sa.Column("started_at", _TS), sa.Column("ended_at", _TS),
            sa.Column("reason", sa.Text))
        self.overlaps = sa.Table(
            "tg_overlaps", md, sa.Column("overlap_id", s, primary_key=True),
            sa.Column("kind", s), sa.Column("subject", s), sa.Column("open", sa.Boolean),
            sa.Column("episode", sa.Integer, nullable=False), sa.Column("detected_at",
                                                                        _TS),
            sa.Column("resolved_at", _TS), sa.Column("explanation", sa.Text),
            sa.Column("evidence", sa.Text))

    # --- events ------------------------------------------------------------------------------

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        from hub.targets.matchstate import apply_match_events

        run: list[ev.CanonicalEvent] = []  # consecutive match events are applied in bulk
        for e in events:
            if e.event_type in _MATCH_EVENTS:
                run.append(e)
                continue
            if run:
                apply_match_events(conn, self, run, self._subject)
                run = []
            handler = getattr(self, f"_on_{e.event_type}", None)
            if handler is not None:
                handler(e, e.payload, conn)
        if run:
            apply_match_events(conn, self, run, self._subject)

    def _subject(self, e: ev.CanonicalEvent) -> str | None:
        if e.person_key:
            return e.person_key
        return self.key_of(e.person) if e.person else None

    def _digest(self, *parts: object) -> str:
        """A keyed digest (the pseudonym key) of identifying text: comparable, not readable."""
        return self.key_of("identity|" + "|".join(str(p).strip().lower() for p in parts))

    def _household(self, a: ev.Address | None) -> str | None:
        key = _address_key(a)
        return self._digest("household", key) if key else None

    def _update(self, conn: sa.Connection, table: sa.Table, where: dict[str, Any],
                **values: Any) -> None:
        cond = sa.and_(*(table.c[k] == v for k, v in where.items()))
        conn.execute(table.update().where(cond).values(**values))

    def _on_PersonRegistered(self, e, p: ev.PersonRegistered, conn) -> None:  # noqa: N802
        key = self._subject(e)
        if key is None:
            return
        household = self._household(p.address)
        upsert(conn, self.facts["persons"], [{"person_key": key, "birth_date": p.birth_date,
                                              "household_key": household}])
        upsert(conn, self.identity, [{
            "person_key": key, "source_system": e.source_system,
            "name_digest": self._digest(p.first_name, p.last_name),
            "address_digest": household,
            "identity_digest": self._digest(p.first_name, p.last_name, p.birth_date)}])

    def _on_PersonNameChanged(self, e, p: ev.PersonNameChanged, conn) -> None:  # noqa: N802
        key = self._subject(e)
        born = conn.execute(sa.select(self.facts["persons"].c.birth_date).where(
            self.facts["persons"].c.person_key == key)).scalar()
        upsert(conn, self.identity, [{
            **self._identity_row(conn, key, e.source_system),
            "name_digest": self._digest(p.first_name, p.last_name),
            "identity_digest": self._digest(p.first_name, p.last_name, born)}])

    def _identity_row(self, conn, key: str, source: str) -> dict[str, Any]:
        row = conn.execute(sa.select(self.identity).where(
            self.identity.c.person_key == key, self.identity.c.source_system == source)).first()
        return dict(row._mapping) if row else {
            "person_key": key, "source_system": source, "name_digest": None,
            "address_digest": None, "identity_digest": None}

    def _on_PersonAddressChanged(self, e, p: ev.PersonAddressChanged, conn) -> None:  # noqa: N802
        key = self._subject(e)
        household = self._household(p.address)
        t = self.facts["persons"]
        if conn.execute(sa.select(t.c.person_key).where(t.c.person_key == key)).first():
            self._update(conn, t, {"person_key": key}, household_key=household)
        else:
            upsert(conn, t, [{"person_key": key, "birth_date": None, "household_key": household}])
        upsert(conn, self.identity, [{**self._identity_row(conn, key, e.source_system),
                                      "address_digest": household}])

    def _on_PersonRelationChanged(self, e, p: ev.PersonRelationChanged, conn) -> None:  # noqa: N802
        row = {"person_key": self._subject(e), "related_key": self.key_of(p.related_person),
               "relation": p.relation}
        t = self.facts["relations"]
        conn.execute(t.delete().where(*(t.c[k] == v for k, v in row.items())))
        if p.change not in RELATION_REMOVED:
            conn.execute(t.insert().values(**row))

    def _gone(self, e, p, conn) -> None:
        self._update(conn, self.facts["persons"], {"person_key": self._subject(e)},
                     household_key=None)

    _on_PersonDied = _on_PersonEmigrated = _gone  # noqa: N815

    def _on_PersonIdentifierReplaced(self, e, p: ev.PersonIdentifierReplaced, conn) -> None:  # noqa: N802
        upsert(conn, self.links, [{"old_key": self.key_of(p.old_identifier),
                                   "new_key": self.key_of(p.new_identifier),
                                   "replaced_at": e.occurred_at}])

    def _on_CaseOpened(self, e, p: ev.CaseOpened, conn) -> None:  # noqa: N802
        key = self._subject(e)
        if key is None or e.case_key is None:
            return
        upsert(conn, self.facts["cases"], [{
            "case_key": e.case_key, "person_key": key, "department": p.department,
            "unit_id": p.unit_id, "active": p.status not in INACTIVE_STATUSES,
            "status": p.status, "case_type": p.case_type, "paragraph": p.paragraph,
            "opened_on": e.occurred_at.date(), "closed_on": None}])

    def _case(self, e, conn, **values: Any) -> None:
        if e.case_key:
            self._update(conn, self.facts["cases"], {"case_key": e.case_key}, **values)

    def _on_CaseStatusChanged(self, e, p: ev.CaseStatusChanged, conn) -> None:  # noqa: N802
        active = p.status not in INACTIVE_STATUSES
        self._case(e, conn, status=p.status, active=active,
                   closed_on=None if active else e.occurred_at.date())

    def _on_CasePassivated(self, e, p, conn) -> None:  # noqa: N802
        self._case(e, conn, status="passive", active=False, closed_on=e.occurred_at.date())

    def _on_CaseClosed(self, e, p, conn) -> None:  # noqa: N802
        self._case(e, conn, status="closed", active=False, closed_on=e.occurred_at.date())

    def _on_CaseReopened(self, e, p, conn) -> None:  # noqa: N802
        self._case(e, conn, status="open", active=True, closed_on=None)

    def _on_CaseLegalBasisChanged(self, e, p: ev.CaseLegalBasisChanged, conn) -> None:  # noqa: N802
        self._case(e, conn, paragraph=p.paragraph)

    def _on_GrantAwarded(self, e, p: ev.GrantAwarded, conn) -> None:  # noqa: N802
        key = self._subject(e)
        if key is None and e.case_key:
            t = self.facts["cases"]
            key = conn.execute(sa.select(t.c.person_key).where(t.c.case_key == e.case_key)
                               ).scalar()
        if key is None:
            return
        upsert(conn, self.facts["grants"], [{
            "grant_id": p.grant_id, "case_key": e.case_key, "person_key": key, "law": p.law,
            "paragraph": p.paragraph, "kind": p.kind, "granting_unit_id": p.granting_unit_id,
            "valid_from": p.valid_from, "valid_to": p.valid_to, "ended_on": None,
            "applied_on": p.applied_on, "decided_on": p.decided_on}])

    def _on_GrantChanged(self, e, p: ev.GrantChanged, conn) -> None:  # noqa: N802
        if p.valid_to is not None:
            self._update(conn, self.facts["grants"], {"grant_id": p.grant_id},
                         valid_to=p.valid_to)

    def _on_GrantEnded(self, e, p: ev.GrantEnded, conn) -> None:  # noqa: N802
        self._update(conn, self.facts["grants"], {"grant_id": p.grant_id}, ended_on=p.ended_on)

    def _on_ConsentGiven(self, e, p: ev.ConsentGiven, conn) -> None:  # noqa: N802
        upsert(conn, self.facts["consents"], [{
            "consent_id": p.consent_id, "person_key": self._subject(e), "purpose": p.purpose,
            "valid_from": p.valid_from, "valid_until": p.valid_until, "withdrawn_on": None}])

    def _on_ConsentWithdrawn(self, e, p: ev.ConsentWithdrawn, conn) -> None:  # noqa: N802
        self._update(conn, self.facts["consents"], {"consent_id": p.consent_id},
                     withdrawn_on=e.occurred_at.date())

    def _meeting(self, conn, meeting_id: str, person_key: str | None, meeting_type: str | None,
                 held: datetime) -> None:
        if person_key and meeting_type:
            upsert(conn, self.facts["meetings"], [{
                "meeting_id": meeting_id, "person_key": person_key,
                "meeting_type": meeting_type, "held_on": held.date()}])

    def _on_CaseActionRecorded(self, e, p: ev.CaseActionRecorded, conn) -> None:  # noqa: N802
        if p.action_type != MEETING_ACTION:
            return
        key = self._subject(e)
        if key is None and e.case_key:
            t = self.facts["cases"]
            key = conn.execute(sa.select(t.c.person_key).where(t.c.case_key == e.case_key)
                               ).scalar()
        self._meeting(conn, f"{e.case_key}:{p.action_id}", key, p.subtype, e.occurred_at)

    def _on_PathwayStarted(self, e, p: ev.PathwayStarted, conn) -> None:  # noqa: N802
        keys = {self.key_of(m) for m in p.members} | ({self._subject(e)} - {None})
        upsert(conn, self.pathways, [{"pathway_id": p.pathway_id, "person_key": k}
                                     for k in sorted(keys)])

    def _on_PathwayMeetingHeld(self, e, p: ev.PathwayMeetingHeld, conn) -> None:  # noqa: N802
        members = conn.execute(sa.select(self.pathways.c.person_key).where(
            self.pathways.c.pathway_id == p.pathway_id)).scalars().all()
        for k in members:
            self._meeting(conn, f"pathway:{e.source_record_id}:{e.source_version}:{k}", k,
                          p.meeting_type, e.occurred_at)

    # --- the hub's own derived events -------------------------------------------------------

    def _on_OverlapDetected(self, e, p: ev.OverlapDetected, conn) -> None:  # noqa: N802
        o = self.overlaps
        before = conn.execute(sa.select(o.c.episode).where(o.c.overlap_id == p.overlap_id)
                              ).scalar() or 0
        upsert(conn, o, [{"overlap_id": p.overlap_id, "kind": p.kind,
                          "subject": e.person_key, "open": True, "episode": before + 1,
                          "detected_at": e.occurred_at, "resolved_at": None,
                          "explanation": p.explanation, "evidence": "\n".join(p.evidence)}])

    def _on_OverlapResolved(self, e, p: ev.OverlapResolved, conn) -> None:  # noqa: N802
        self._update(conn, self.overlaps, {"overlap_id": p.overlap_id}, open=False,
                     resolved_at=e.occurred_at)


def _address_key(a: ev.Address | None) -> str | None:
    """The household: the address id when the register gives one, else the address itself."""
    if a is None:
        return None
    if a.address_id:
        return a.address_id
    return "|".join(str(x or "").strip().lower() for x in (
        a.street, a.house_number, a.floor, a.door, a.postcode))


TOPICS = tuple(sorted({name[len("_on_"):] for name in dir(TargetGroupsProjection)
                      if name.startswith("_on_")} | _MATCH_EVENTS))
TargetGroupsProjection.topics = TOPICS

