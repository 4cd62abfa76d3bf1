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

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from hub.domain import events as ev
from projections.base import KeyOf, Projection
from projections.db import Instant
from projections.rows import KeyedRows, RowCache

#: Case statuses that end a case's activity (canonical statuses from the connectors' mappings).
INACTIVE_STATUSES = frozenset({"closed", "passive", "dismissed", "completed", "cancelled",
                               "passivated", "ended"})
#: PersonRelationChanged.change values that remove a relation.
RELATION_REMOVED = frozenset({"removed", "ended", "deleted"})
_MATCH_EVENTS = frozenset({"TargetGroupMatchStarted", "TargetGroupMatchEnded"})
#: CaseActionRecorded.action_type of a meeting (its subtype is the meeting type).
MEETING_ACTION = "meeting"

_PERSON = frozenset(n for n in ev.PAYLOAD_TYPES if n.startswith("Person")) - {
    "PersonIdentifierReplaced"}
_OVERLAP = frozenset({"OverlapDetected", "OverlapResolved"})

_TS = Instant()
Row = dict[str, Any]


def define_fact_tables(md: sa.MetaData, prefix: str = "tg") -> dict[str, sa.Table]:
    """The fact tables; management information reuses the same shapes under its own prefix."""
    s = sa.String(200)
    t = {
        "persons": sa.Table(
            f"{prefix}_persons", md, sa.Column("person_key", s, primary_key=True),
            # birth_date: the age-milestone rules read a window of a few birth years
            sa.Column("birth_date", sa.Date, index=True),
            sa.Column("household_key", s, index=True)),
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
            # related_key: the family rule follows relations from either side
            sa.Column("related_key", s, primary_key=True, index=True),
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
    version = 5  # 4: indexes on tg_persons.birth_date and tg_relations.related_key; 5: times
    # kept as instants on SQLite (were written as the events' local wall time)

    def __init__(self, person_key_of: KeyOf):
        """``person_key_of`` turns a CPR/substitute number into its pseudonym (the store's)."""
        self.key_of = person_key_of  # the store's pseudonymizer caches its keys
        self._handlers = self.event_handlers()
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
        """Load the rows the batch touches, apply the events in order in memory, write once.
        A run of match events is applied in bulk by ``apply_match_events`` after the facts so
        far are written (it reads the cases' and grants' units)."""
        from hub.targets.matchstate import apply_match_events

        if not events:
            return
        b = _Batch(self, conn)
        self._preload(b, events)
        run: list[ev.CanonicalEvent] = []
        handlers = self._handlers
        for e in events:
            p = e.payload
            kind = type(p).__name__  # e.event_type, without the property call
            if kind in _MATCH_EVENTS:
                run.append(e)
                continue
            if run:
                b.flush()
                apply_match_events(conn, self, run, self._subject)
                run = []
            handler = handlers.get(kind)
            if handler is not None:
                handler(b, e, p)
        b.flush()
        if run:
            apply_match_events(conn, self, run, self._subject)

    def _preload(self, b: _Batch, events: Sequence[ev.CanonicalEvent]) -> None:
        """Read the rows the batch reads or changes, one query per table (keys found absent
        are then inserted rather than upserted)."""
        keys: dict[Any, set[Any]] = {c: set() for c in b.all}
        cases = keys[b.cases]
        for e in events:
            p = e.payload
            kind = type(p).__name__
            if kind in _PERSON:
                subject = self._subject(e)
                keys[b.persons].add(subject)
                keys[b.identity].add(subject)
            elif kind in ev.CASE_EVENTS:
                if e.case_key:
                    cases.add(e.case_key)
                    if kind == "CaseActionRecorded" and p.action_type == MEETING_ACTION:
                        keys[b.meetings].add(f"{e.case_key}:{p.action_id}")
            elif kind in ev.GRANT_EVENTS:
                keys[b.grants].add(p.grant_id)
                cases.add(e.case_key)
            elif kind in ev.CONSENT_EVENTS:
                keys[b.consents].add(p.consent_id)
            elif kind in _OVERLAP:
                keys[b.overlaps].add(p.overlap_id)
            elif kind in ("PathwayMeetingHeld", "PathwayMembersChanged"):
                keys[b.pathways].add(p.pathway_id)
        for cache, wanted in keys.items():
            cache.load(b.conn, wanted - {None})

    def _subject(self, e: ev.CanonicalEvent) -> str | None:
        if e.person_key:
            return e.person_key
        return self.key_of(e.person) if e.person else None

    def _digest(self, *parts: object, remember: bool = False) -> str:
        """A keyed digest (the pseudonym key) of identifying text: comparable, not readable.
        Not kept in the pseudonym cache unless it recurs (``remember``: a household's, made
        for each of its members): a person's name digests are made once, and at a million
        events 310,479 of them held about 57 MB there. (The values must not change: a
        household's digest is the subject of household matches, a duplicate identity's is in
        its overlap id.)"""
        return self.key_of("identity|" + "|".join([str(p).strip().lower() for p in parts]),
                           remember=remember)

    def _household(self, a: ev.Address | None) -> str | None:
        key = _address_key(a)
        return self._digest("household", key, remember=True) if key else None

    @staticmethod
    def _update(cache: RowCache, key: str | None, **values: Any) -> None:
        """Change the row with this key, if there is one (as an SQL UPDATE would)."""
        row = cache.get(key) if key is not None else None
        if row is not None:
            row.update(values)
            cache.put(row)

    def _identity(self, b: _Batch, key: str, source: str) -> Row:
        row = b.identity.get(b.conn, (key, source))
        return dict(row) if row else {
            "person_key": key, "source_system": source, "name_digest": None,
            "address_digest": None, "identity_digest": None}

    def _on_PersonRegistered(self, b: _Batch, e, p: ev.PersonRegistered) -> None:  # noqa: N802
        key = self._subject(e)
        if key is None:
            return
        household = self._household(p.address)
        b.persons.put({"person_key": key, "birth_date": p.birth_date,
                       "household_key": household})
        b.identity.put({
            "person_key": key, "source_system": e.source_system,
            "name_digest": self._digest(p.first_name, p.last_name),
            "address_digest": household,
            "identity_digest": self._digest(p.first_name, p.last_name, p.birth_date)})

    def _on_PersonNameChanged(self, b: _Batch, e, p: ev.PersonNameChanged) -> None:  # noqa: N802
        key = self._subject(e)
        if key is None:
            return
        person = b.persons.get(key)
        born = person["birth_date"] if person else None
        b.identity.put({**self._identity(b, key, e.source_system),
                        "name_digest": self._digest(p.first_name, p.last_name),
                        "identity_digest": self._digest(p.first_name, p.last_name, born)})

    def _on_PersonAddressChanged(self, b: _Batch, e, p: ev.PersonAddressChanged) -> None:  # noqa: N802
        key = self._subject(e)
        if key is None:
            return
        household = self._household(p.address)
        person = b.persons.get(key)
        if person is not None:
            person["household_key"] = household
            b.persons.put(person)
        else:
            b.persons.put({"person_key": key, "birth_date": None, "household_key": household})
        b.identity.put({**self._identity(b, key, e.source_system), "address_digest": household})

    def _on_PersonRelationChanged(self, b: _Batch, e, p: ev.PersonRelationChanged) -> None:  # noqa: N802
        row = {"person_key": self._subject(e), "related_key": self.key_of(p.related_person),
               "relation": p.relation}
        if p.change in RELATION_REMOVED:
            b.relations.delete(tuple(row.values()))
        else:
            b.relations.put(row)

    def _gone(self, b: _Batch, e, p) -> None:
        self._update(b.persons, self._subject(e), household_key=None)

    _on_PersonDied = _on_PersonEmigrated = _gone  # noqa: N815

    def _on_PersonIdentifierReplaced(self, b: _Batch, e, p: ev.PersonIdentifierReplaced) -> None:  # noqa: N802
        b.links.put({"old_key": self.key_of(p.old_identifier),
                     "new_key": self.key_of(p.new_identifier), "replaced_at": e.occurred_at})

    def _on_CaseOpened(self, b: _Batch, e, p: ev.CaseOpened) -> None:  # noqa: N802
        key = self._subject(e)
        if key is None or e.case_key is None:
            return
        b.cases.put({
            "case_key": e.case_key, "person_key": key, "department": p.department,
            "unit_id": p.unit_id, "active": p.status not in INACTIVE_STATUSES,
            "status": p.status, "case_type": p.case_type, "paragraph": p.paragraph,
            "opened_on": e.occurred_at.date(), "closed_on": None})

    def _on_CaseStatusChanged(self, b: _Batch, e, p: ev.CaseStatusChanged) -> None:  # noqa: N802
        active = p.status not in INACTIVE_STATUSES
        self._update(b.cases, e.case_key, status=p.status, active=active,
                     closed_on=None if active else e.occurred_at.date())

    def _on_CasePassivated(self, b: _Batch, e, p) -> None:  # noqa: N802
        self._update(b.cases, e.case_key, status="passive", active=False,
                     closed_on=e.occurred_at.date())

    def _on_CaseClosed(self, b: _Batch, e, p) -> None:  # noqa: N802
        self._update(b.cases, e.case_key, status="closed", active=False,
                     closed_on=e.occurred_at.date())

    def _on_CaseReopened(self, b: _Batch, e, p) -> None:  # noqa: N802
        self._update(b.cases, e.case_key, status="open", active=True, closed_on=None)

    def _on_CaseLegalBasisChanged(self, b: _Batch, e, p: ev.CaseLegalBasisChanged) -> None:  # noqa: N802
        self._update(b.cases, e.case_key, paragraph=p.paragraph)

    def _case_person(self, b: _Batch, e) -> str | None:
        """The event's person, else its case's person."""
        key = self._subject(e)
        if key is None and e.case_key:
            case = b.cases.get(e.case_key)
            key = case["person_key"] if case else None
        return key

    def _on_GrantAwarded(self, b: _Batch, e, p: ev.GrantAwarded) -> None:  # noqa: N802
        key = self._case_person(b, e)
        if key is None:
            return
        b.grants.put({
            "grant_id": p.grant_id, "case_key": e.case_key, "person_key": key, "law": p.law,
            "paragraph": p.paragraph, "kind": p.kind, "granting_unit_id": p.granting_unit_id,
            "valid_from": p.valid_from, "valid_to": p.valid_to, "ended_on": None,
            "applied_on": p.applied_on, "decided_on": p.decided_on})

    def _on_GrantChanged(self, b: _Batch, e, p: ev.GrantChanged) -> None:  # noqa: N802
        if p.valid_to is not None:
            self._update(b.grants, p.grant_id, valid_to=p.valid_to)

    def _on_GrantEnded(self, b: _Batch, e, p: ev.GrantEnded) -> None:  # noqa: N802
        self._update(b.grants, p.grant_id, ended_on=p.ended_on)

    def _on_ConsentGiven(self, b: _Batch, e, p: ev.ConsentGiven) -> None:  # noqa: N802
        b.consents.put({
            "consent_id": p.consent_id, "person_key": self._subject(e), "purpose": p.purpose,
            "valid_from": p.valid_from, "valid_until": p.valid_until, "withdrawn_on": None})

    def _on_ConsentWithdrawn(self, b: _Batch, e, p: ev.ConsentWithdrawn) -> None:  # noqa: N802
        self._update(b.consents, p.consent_id, withdrawn_on=e.occurred_at.date())

    @staticmethod
    def _meeting(b: _Batch, meeting_id: str, person_key: str | None, meeting_type: str | None,
                 held: datetime) -> None:
        if person_key and meeting_type:
            b.meetings.put({"meeting_id": meeting_id, "person_key": person_key,
                            "meeting_type": meeting_type, "held_on": held.date()})

    def _on_CaseActionRecorded(self, b: _Batch, e, p: ev.CaseActionRecorded) -> None:  # noqa: N802
        if p.action_type == MEETING_ACTION:
            self._meeting(b, f"{e.case_key}:{p.action_id}", self._case_person(b, e), p.subtype,
                          e.occurred_at)

    def _on_PathwayStarted(self, b: _Batch, e, p: ev.PathwayStarted) -> None:  # noqa: N802
        for k in sorted({self.key_of(m) for m in p.members} | ({self._subject(e)} - {None})):
            b.pathways.put({"pathway_id": p.pathway_id, "person_key": k})

    def _on_PathwayMembersChanged(self, b: _Batch, e, p: ev.PathwayMembersChanged) -> None:  # noqa: N802
        wanted = {self.key_of(m) for m in p.members} | ({self._subject(e)} - {None})
        b.pathways.set_group(b.conn, p.pathway_id, [{"pathway_id": p.pathway_id, "person_key": k}
                                                  for k in sorted(wanted)])

    def _on_PathwayMeetingHeld(self, b: _Batch, e, p: ev.PathwayMeetingHeld) -> None:  # noqa: N802
        for row in b.pathways.with_first(b.conn, p.pathway_id):
            k = row["person_key"]
            self._meeting(b, f"pathway:{e.source_record_id}:{e.source_version}:{k}", k,
                          p.meeting_type, e.occurred_at)

    # --- the hub's own derived events -------------------------------------------------------

    def _on_OverlapDetected(self, b: _Batch, e, p: ev.OverlapDetected) -> None:  # noqa: N802
        before = b.overlaps.get(p.overlap_id)
        b.overlaps.put({"overlap_id": p.overlap_id, "kind": p.kind,
                        "subject": e.person_key, "open": True,
                        "episode": (before["episode"] if before else 0) + 1,
                        "detected_at": e.occurred_at, "resolved_at": None,
                        "explanation": p.explanation, "evidence": "\n".join(p.evidence)})

    def _on_OverlapResolved(self, b: _Batch, e, p: ev.OverlapResolved) -> None:  # noqa: N802
        self._update(b.overlaps, p.overlap_id, open=False, resolved_at=e.occurred_at)


class _Batch:
    """The rows of one batch: one cache per fact, identity and overlap table."""

    def __init__(self, p: TargetGroupsProjection, conn: sa.Connection):
        self.conn = conn
        f = p.facts
        self.persons, self.cases = RowCache(f["persons"]), RowCache(f["cases"])
        self.grants, self.consents = RowCache(f["grants"]), RowCache(f["consents"])
        self.meetings, self.overlaps = RowCache(f["meetings"]), RowCache(p.overlaps)
        self.identity, self.relations = KeyedRows(p.identity), KeyedRows(f["relations"])
        self.links, self.pathways = KeyedRows(p.links), KeyedRows(p.pathways)
        self.all: tuple[RowCache | KeyedRows, ...] = (
            self.persons, self.cases, self.grants, self.consents, self.meetings, self.overlaps,
            self.identity, self.relations, self.links, self.pathways)

    def flush(self) -> None:
        for cache in self.all:
            cache.flush(self.conn)


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

