"""The citizen overview (the glasplade): per person their register data, household relations,
cases across systems, grants, consents, markings and coordinated pathways.

``handle`` loads the rows a batch touches (one query per table), applies each event with a
pure function of (rows, event), and writes the changed rows back in bulk. Tables:
``projections.citizen_tables``; queries: ``projections.queries``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from hub.domain import events as ev
from projections import citizen_tables as t
from projections.base import KeyOf, Projection
from projections.rows import RowCache, put_alias

PERSON = ("PersonRegistered", "PersonNameChanged", "PersonAddressChanged",
          "PersonRelationChanged", "PersonCivilStatusChanged", "PersonProtectedAddressChanged",
          "PersonDied", "PersonEmigrated", "PersonIdentifierReplaced")
CASE = tuple(sorted(ev.CASE_EVENTS))
OTHER = tuple(sorted(ev.GRANT_EVENTS | ev.CONSENT_EVENTS | ev.MARKING_EVENTS | ev.PATHWAY_EVENTS))
#: Events that make a person known to the overview (a row is made if none exists yet).
PRESENCE = frozenset(PERSON) | {"CaseOpened", "GrantAwarded", "ConsentGiven", "MarkingSet",
                                "PathwayStarted"}
Row = dict[str, Any]


def grant_key(e: ev.CanonicalEvent, grant_id: str) -> str:
    return f"{e.source_system}:{grant_id}"


def marking_key(system: str, marking_id: str) -> str:
    return f"{system}:{marking_id}"


def assignment_key(case_key: str, caseworker_id: str, role: str) -> str:
    return f"{case_key}|{caseworker_id}|{role}"


def relation_key(person_key: str, relation: str, related_key: str) -> str:
    return f"{person_key}|{relation}|{related_key}"


def member_key(pathway_id: str, person_key: str) -> str:
    return f"{pathway_id}|{person_key}"


def set_address(row: Row, a: ev.Address | None) -> None:
    fields = ("street", "house_number", "floor", "door", "postcode", "city",
              "municipality_code", "address_id")
    for f in fields:
        row[f] = getattr(a, f) if a is not None else None


def set_name(row: Row, first: str, last: str) -> None:
    row["first_name"], row["last_name"] = first, last
    row["name_search"] = t.normalize_name(f"{first} {last}")
    row["last_name_search"] = t.normalize_name(f"{last} {first}")


#: The person register: its name and address win over a fagsystem's registration.
CPR_SOURCE = "cpr"


class _PersonRows(RowCache):
    """A RowCache whose rows name persons (in ``columns``), found by person for an identifier
    replacement (``naming``) without a scan of every row in memory per replacement: a batch
    of a rebuild holds tens of thousands of rows and about a dozen replacements, whose scans
    were a fifth of the overview's work at a million events.

    The index is made by one scan when first asked in a batch. After that, ``put`` and
    ``touch`` note the rows' keys, and the next ask indexes them by their values then: a
    handler changes a row and puts it (in either order) while it handles one event, so by
    the next event every change is in place. A load drops the index (the next ask scans
    again). An entry may be stale (the row names another person now): ``naming`` checks
    each row it returns, in the order of their keys."""

    def __init__(self, table: sa.Table, columns: tuple[str, ...] = ("person_key",)):
        super().__init__(table)
        self._columns = columns
        self._by_person: dict[str, set[str]] | None = None
        self._since: list[str] = []
        """Keys put or touched since the index was last brought up to date."""

    def naming(self, person_key: str) -> list[Row]:
        """The rows in memory that name the person (in any of ``columns``)."""
        rows = self.in_memory()
        if self._by_person is None:
            self._by_person = {}
            self._since = list(rows)
        by_person = self._by_person
        for key in self._since:
            if (row := rows.get(key)) is not None:
                for column in self._columns:
                    if (person := row[column]) is not None:
                        by_person.setdefault(person, set()).add(key)
        self._since = []
        # in key order: not the set's (string hashes vary by process), and the same in a batch
        # as in batches of one event (two relations may become one: the last one put wins)
        return [row for key in sorted(by_person.get(person_key, ()))
                if (row := rows.get(key)) is not None
                and any(row[c] == person_key for c in self._columns)]

    def put(self, row: Row) -> None:
        super().put(row)
        if self._by_person is not None:
            self._since.append(row[self._key_name])

    def touch(self, key: str) -> None:
        super().touch(key)
        if self._by_person is not None:
            self._since.append(key)

    def load(self, conn: sa.Connection, keys: Iterable[str]) -> None:
        super().load(conn, keys)
        self._by_person = None

    def load_where(self, conn: sa.Connection, column: str, values: Iterable[str]) -> None:
        super().load_where(conn, column, values)
        self._by_person = None


class _Rows:
    """One RowCache per table for the events of one batch."""

    def __init__(self) -> None:
        self.persons = RowCache(t.persons)
        self.relations = _PersonRows(t.relations, ("person_key", "related_key"))
        self.cases = _PersonRows(t.cases)
        self.caseworkers = RowCache(t.caseworkers)
        self.grants = _PersonRows(t.grants)
        self.consents = _PersonRows(t.consents)
        self.markings = _PersonRows(t.markings)
        self.pathways = _PersonRows(t.pathways)
        self.members = _PersonRows(t.pathway_members)
        self.aliases = RowCache(t.aliases)
        self.all = (self.persons, self.relations, self.cases, self.caseworkers, self.grants,
                    self.consents, self.markings, self.pathways, self.members, self.aliases)
        self.alias_of: dict[str, str] = {}
        """Replaced person key -> the key now (the alias rows as a map: ``current`` is one
        dict look-up per event; ``load_aliases`` fills it, ``put_alias`` keeps it)."""
        self._members: dict[str, set[str]] | None = None
        """Pathway id -> person keys of its member rows in memory (made when first asked)."""

    def current(self, person_key: str) -> str:
        """The person's key now (a replaced identifier's key leads to the new one). The whole
        alias table is in memory (``_preload``): a key it does not hold has no alias."""
        return self.alias_of.get(person_key, person_key)

    def load_aliases(self, conn: sa.Connection) -> None:
        self.aliases.load_all(conn)  # a few rows: one per replaced identifier
        self.alias_of = {k: r["new_key"] for k, r in self.aliases.in_memory().items() if r}

    def put_alias(self, old_key: str, new_key: str) -> None:
        """File ``old_key`` (and every key that led to it) under ``new_key``."""
        for key in put_alias(self.aliases, old_key, new_key):
            self.alias_of[key] = new_key

    def members_of(self, pathway_id: str) -> set[str]:
        """The person keys of the pathway's member rows in memory: all its members when
        ``_preload`` read them (a batch that changes its members). Members are added and
        removed through ``add_member`` and ``remove_member`` only, which keep this index."""
        if self._members is None:
            self._members = {}
            for row in self.members.in_memory().values():
                if row is not None:
                    self._members.setdefault(row["pathway_id"], set()).add(row["person_key"])
        return self._members.setdefault(pathway_id, set())

    def add_member(self, pathway_id: str, person_key: str) -> None:
        self.members.put(t.new_row(t.pathway_members, member_key=member_key(pathway_id, person_key),
                                   pathway_id=pathway_id, person_key=person_key))
        if self._members is not None:
            self._members.setdefault(pathway_id, set()).add(person_key)

    def remove_member(self, pathway_id: str, person_key: str) -> None:
        self.members.delete(member_key(pathway_id, person_key))
        if self._members is not None:
            self._members.get(pathway_id, set()).discard(person_key)


class CitizenOverviewProjection(Projection):
    name = t.NAME
    version = 3  # 2: name_source (the CPR register's name wins); 3: only CPR lifts protection
    topics = PERSON + CASE + OTHER

    def __init__(self, person_key_of: KeyOf):
        self.person_key_of = person_key_of  # the store's pseudonymizer keeps its keys
        self._handlers = self.event_handlers()
        super().__init__()

    def define_tables(self, metadata: sa.MetaData) -> None:
        for table in t.metadata.sorted_tables:
            table.to_metadata(metadata)

    # --- batch ------------------------------------------------------------------------------

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        if not events:
            return
        rows = _Rows()
        self._preload(rows, events, conn)
        handlers, persons, alias_of = self._handlers, rows.persons, rows.alias_of
        for e in events:
            p = e.payload
            kind = type(p).__name__  # e.event_type, without the property call
            if kind == "PersonIdentifierReplaced":
                self._replace_identifier(rows, p)
                continue
            person_key = e.person_key
            if person_key:
                now = alias_of.get(person_key, person_key)  # rows.current, inlined
                if now != person_key:
                    e = replace(e, person_key=now)
                    person_key = now
                if kind in PRESENCE and persons.get(person_key) is None:
                    persons.put(t.new_row(t.persons, person_key=person_key, cpr=e.person,
                                          registered=False, protected_address=False,
                                          emigrated=False))
            handler = handlers.get(kind)
            if handler is not None:
                handler(rows, e, p)
        for cache in rows.all:
            cache.flush(conn)

    def _preload(self, rows: _Rows, events: Sequence[ev.CanonicalEvent],
                 conn: sa.Connection) -> None:
        """Read every row the batch will touch, one query per table (keys known as absent
        are then inserted rather than upserted)."""
        rows.load_aliases(conn)
        current, key_of = rows.current, self.person_key_of
        alias = rows.alias_of.get  # current(), inlined in the loop below
        keys: dict[RowCache, set[str]] = {c: set() for c in rows.all if c is not rows.aliases}
        persons, cases, relations = keys[rows.persons], keys[rows.cases], keys[rows.relations]
        replaced: set[str] = set()
        changed_members: set[str] = set()
        for e in events:
            p = e.payload
            kind = type(p).__name__
            if e.person_key and kind in PRESENCE:
                persons.add(alias(e.person_key, e.person_key))
            if e.case_key and kind in ev.CASE_EVENTS:
                cases.add(e.case_key)
            if kind == "PersonRelationChanged":
                if e.person_key:
                    relations.add(relation_key(current(e.person_key), p.relation,
                                               current(key_of(p.related_person))))
            elif kind == "CaseworkerAssigned":
                if e.case_key:
                    keys[rows.caseworkers].add(assignment_key(e.case_key, p.caseworker_id,
                                                              p.role))
            elif kind in ev.GRANT_EVENTS:
                keys[rows.grants].add(grant_key(e, p.grant_id))
            elif kind in ev.CONSENT_EVENTS:
                keys[rows.consents].add(p.consent_id)
            elif kind in ev.MARKING_EVENTS:
                keys[rows.markings].add(marking_key(p.system, p.marking_id))
            elif kind in ev.PATHWAY_EVENTS:
                keys[rows.pathways].add(p.pathway_id)
                if kind == "PathwayMembersChanged":
                    changed_members.add(p.pathway_id)
                if kind in ("PathwayStarted", "PathwayMembersChanged"):
                    keys[rows.members].update(
                        member_key(p.pathway_id, current(key_of(m))) for m in p.members)
                    if e.person_key:
                        keys[rows.members].add(member_key(p.pathway_id, current(e.person_key)))
            elif kind == "PersonIdentifierReplaced":
                old = key_of(p.old_identifier)
                persons.add(old)
                persons.add(key_of(p.new_identifier))
                replaced.add(old)
        if replaced:
            replaced |= {current(k) for k in replaced}
            persons |= replaced  # (their rows: by key, with the others)
        for cache, wanted in keys.items():
            cache.load(conn, wanted)
        if changed_members:  # the members they have now, to drop those who left
            rows.members.load_where(conn, "pathway_id", changed_members)
        if replaced:
            self._load_replaced(rows, replaced, conn)

    # --- person -----------------------------------------------------------------------------

    def _person(self, rows: _Rows, e: ev.CanonicalEvent) -> Row:
        row = rows.persons.get(e.person_key or "")
        assert row is not None  # made in _apply for every event with a person
        row["updated_at"] = e.occurred_at
        rows.persons.put(row)
        return row

    def _on_PersonRegistered(self, rows: _Rows, e: ev.CanonicalEvent,  # noqa: N802
                             p: ev.PersonRegistered) -> None:
        row = self._person(rows, e)
        if e.source_system == CPR_SOURCE or row.get("name_source") in (None, e.source_system):
            set_name(row, p.first_name, p.last_name)
            set_address(row, p.address)
            row["name_source"] = e.source_system
        row.update(registered=True, cpr=e.person or row["cpr"], birth_date=p.birth_date,
                   sex=p.sex, civil_status=p.civil_status)
        # CPR decides protection; another system may add it, never lift it
        row["protected_address"] = (p.protected_address if e.source_system == CPR_SOURCE
                                    else bool(row.get("protected_address"))
                                    or p.protected_address)

    def _on_PersonNameChanged(self, rows, e, p: ev.PersonNameChanged) -> None:  # noqa: N802
        set_name(self._person(rows, e), p.first_name, p.last_name)

    def _on_PersonAddressChanged(self, rows, e, p: ev.PersonAddressChanged) -> None:  # noqa: N802
        row = self._person(rows, e)
        set_address(row, p.address)
        row["moved_in"] = e.occurred_at.date()

    def _on_PersonCivilStatusChanged(self, rows, e, p) -> None:  # noqa: N802
        self._person(rows, e)["civil_status"] = p.civil_status

    def _on_PersonProtectedAddressChanged(self, rows, e, p) -> None:  # noqa: N802
        self._person(rows, e)["protected_address"] = p.protected_address

    def _on_PersonDied(self, rows, e, p: ev.PersonDied) -> None:  # noqa: N802
        self._person(rows, e)["died_on"] = p.date_of_death

    def _on_PersonEmigrated(self, rows, e, p: ev.PersonEmigrated) -> None:  # noqa: N802
        self._person(rows, e).update(emigrated=True, emigrated_to=p.country)

    def _on_PersonRelationChanged(self, rows, e, p: ev.PersonRelationChanged) -> None:  # noqa: N802
        if not e.person_key:
            return
        related = rows.current(self.person_key_of(p.related_person))
        key = relation_key(e.person_key, p.relation, related)
        if p.change == "removed":
            rows.relations.delete(key)
        else:
            rows.relations.put(t.new_row(
                t.relations, relation_key=key, person_key=e.person_key, relation=p.relation,
                related_key=related, related_cpr=p.related_person, since=e.occurred_at.date()))

    # --- case -------------------------------------------------------------------------------

    def _case(self, rows: _Rows, e: ev.CanonicalEvent) -> Row:
        key = e.case_key or ""
        row = rows.cases.get(key)
        if row is None:  # an event before its CaseOpened: keep what it tells
            row = t.new_row(t.cases, case_key=key, source_system=e.source_system)
        if row["person_key"] is None:
            row["person_key"] = e.person_key
        at = e.occurred_at
        if row["last_event_at"] is None or at > row["last_event_at"]:
            row["last_event_at"] = at
        rows.cases.put(row)
        return row

    def _on_CaseOpened(self, rows, e, p: ev.CaseOpened) -> None:  # noqa: N802
        row = self._case(rows, e)
        at = e.occurred_at
        row.update(person_key=e.person_key or row["person_key"], source_system=e.source_system,
                   department=p.department, unit_id=p.unit_id, unit_name=p.unit_name,
                   case_type=p.case_type, title=p.title, status=p.status, law=p.law,
                   paragraph=p.paragraph, legal_basis_valid_from=p.legal_basis_valid_from)
        if row["opened_at"] is None or at < row["opened_at"]:
            row["opened_at"] = at
        row["closed_at"] = at if p.status == "closed" else None

    def _on_CaseStatusChanged(self, rows, e, p: ev.CaseStatusChanged) -> None:  # noqa: N802
        row = self._case(rows, e)
        row["status"] = p.status
        row["closed_at"] = (row["closed_at"] or e.occurred_at) if p.status == "closed" \
            else None

    def _on_CaseLegalBasisChanged(self, rows, e, p) -> None:  # noqa: N802
        self._case(rows, e).update(law=p.law, paragraph=p.paragraph,
                                   legal_basis_valid_from=p.valid_from)

    def _on_CaseworkerAssigned(self, rows, e, p: ev.CaseworkerAssigned) -> None:  # noqa: N802
        case = self._case(rows, e)
        if p.role == "primary":
            old = case["primary_caseworker_id"]
            if old and old != p.caseworker_id:  # a new primary replaces the old one
                rows.caseworkers.delete(assignment_key(case["case_key"], old, "primary"))
            case["primary_caseworker_id"] = p.caseworker_id
        rows.caseworkers.put(t.new_row(
            t.caseworkers, assignment_key=assignment_key(case["case_key"], p.caseworker_id,
                                                         p.role),
            case_key=case["case_key"], caseworker_id=p.caseworker_id, role=p.role,
            name=p.caseworker_name, unit_id=p.unit_id, contact=p.contact,
            assigned_at=e.occurred_at))

    def _on_CaseworkerUnassigned(self, rows, e, p: ev.CaseworkerUnassigned) -> None:  # noqa: N802
        case = self._case(rows, e)
        rows.caseworkers.delete(assignment_key(case["case_key"], p.caseworker_id, p.role))
        if p.role == "primary" and case["primary_caseworker_id"] == p.caseworker_id:
            case["primary_caseworker_id"] = None

    def _on_CaseActionRecorded(self, rows, e, p) -> None:  # noqa: N802
        self._case(rows, e)

    def _on_CasePassivated(self, rows, e, p) -> None:  # noqa: N802
        self._case(rows, e)["status"] = "passive"

    def _on_CaseClosed(self, rows, e, p) -> None:  # noqa: N802
        self._case(rows, e).update(status="closed", closed_at=e.occurred_at)

    def _on_CaseReopened(self, rows, e, p) -> None:  # noqa: N802
        self._case(rows, e).update(status="open", closed_at=None)

    # --- grants, consents, markings ---------------------------------------------------------

    def _grant(self, rows: _Rows, e: ev.CanonicalEvent, grant_id: str) -> Row:
        key = grant_key(e, grant_id)
        row = rows.grants.get(key) or t.new_row(t.grants, grant_key=key, grant_id=grant_id,
                                                source_system=e.source_system)
        row["case_key"] = row["case_key"] or e.case_key
        row["person_key"] = row["person_key"] or e.person_key
        rows.grants.put(row)
        return row

    def _on_GrantAwarded(self, rows, e, p: ev.GrantAwarded) -> None:  # noqa: N802
        self._grant(rows, e, p.grant_id).update(
            kind=p.kind, law=p.law, paragraph=p.paragraph, title=p.title,
            granting_unit_id=p.granting_unit_id, granting_unit_name=p.granting_unit_name,
            valid_from=p.valid_from, valid_to=p.valid_to, extent=p.extent,
            hours_per_week=p.hours_per_week, monthly_rate=p.monthly_rate,
            applied_on=p.applied_on, decided_on=p.decided_on)

    def _on_GrantChanged(self, rows, e, p: ev.GrantChanged) -> None:  # noqa: N802
        row = self._grant(rows, e, p.grant_id)
        for f in ("valid_to", "extent", "hours_per_week", "monthly_rate"):
            if getattr(p, f) is not None:
                row[f] = getattr(p, f)

    def _on_GrantEnded(self, rows, e, p: ev.GrantEnded) -> None:  # noqa: N802
        self._grant(rows, e, p.grant_id).update(ended_on=p.ended_on, end_reason=p.reason)

    def _on_ConsentGiven(self, rows, e, p: ev.ConsentGiven) -> None:  # noqa: N802
        rows.consents.put(t.new_row(
            t.consents, consent_id=p.consent_id, person_key=e.person_key,
            source_system=e.source_system, purpose=p.purpose, unit_ids=sorted(p.unit_ids),
            valid_from=p.valid_from, valid_until=p.valid_until, given_at=e.occurred_at))

    def _on_ConsentWithdrawn(self, rows, e, p: ev.ConsentWithdrawn) -> None:  # noqa: N802
        row = rows.consents.get(p.consent_id) or t.new_row(
            t.consents, consent_id=p.consent_id, person_key=e.person_key,
            source_system=e.source_system, unit_ids=[])
        row.update(withdrawn_at=e.occurred_at, withdrawn_reason=p.reason)
        rows.consents.put(row)

    def _on_MarkingSet(self, rows, e, p: ev.MarkingSet) -> None:  # noqa: N802
        rows.markings.put(t.new_row(
            t.markings, marking_key=marking_key(p.system, p.marking_id),
            person_key=e.person_key, marking_id=p.marking_id, system=p.system,
            marking_type=p.marking_type, valid_from=p.valid_from, valid_to=p.valid_to,
            note=p.note))

    def _on_MarkingEnded(self, rows, e, p: ev.MarkingEnded) -> None:  # noqa: N802
        key = marking_key(p.system, p.marking_id)
        row = rows.markings.get(key) or t.new_row(
            t.markings, marking_key=key, person_key=e.person_key, marking_id=p.marking_id,
            system=p.system, marking_type=p.marking_type)
        row["ended_on"] = p.ended_on
        rows.markings.put(row)

    # --- coordinated pathway ----------------------------------------------------------------

    def _pathway(self, rows: _Rows, e: ev.CanonicalEvent, pathway_id: str) -> Row:
        row = rows.pathways.get(pathway_id) or t.new_row(
            t.pathways, pathway_id=pathway_id, person_key=e.person_key, status="active",
            meetings=0)
        rows.pathways.put(row)
        return row

    def _on_PathwayStarted(self, rows, e, p: ev.PathwayStarted) -> None:  # noqa: N802
        self._pathway(rows, e, p.pathway_id).update(
            person_key=e.person_key, anchor_unit_id=p.anchor_unit_id,
            anchor_unit_name=p.anchor_unit_name, rule_id=p.rule_id, status="active",
            started_at=e.occurred_at, closed_at=None, close_reason=None)
        members = {rows.current(self.person_key_of(m)) for m in p.members}
        if e.person_key:
            members.add(e.person_key)
        for key in sorted(members):
            rows.add_member(p.pathway_id, key)

    def _on_PathwayMembersChanged(self, rows, e, p: ev.PathwayMembersChanged) -> None:  # noqa: N802
        wanted = {rows.current(self.person_key_of(m)) for m in p.members}
        if e.person_key:
            wanted.add(e.person_key)
        now = rows.members_of(p.pathway_id)  # all of them: _preload read them
        for key in sorted(now - wanted):
            rows.remove_member(p.pathway_id, key)
        for key in sorted(wanted - now):
            rows.add_member(p.pathway_id, key)

    def _on_PathwayTovholderAssigned(self, rows, e, p) -> None:  # noqa: N802
        self._pathway(rows, e, p.pathway_id).update(
            tovholder_id=p.caseworker_id, tovholder_name=p.caseworker_name,
            tovholder_unit_id=p.unit_id)

    def _on_PathwayMeetingHeld(self, rows, e, p: ev.PathwayMeetingHeld) -> None:  # noqa: N802
        row = self._pathway(rows, e, p.pathway_id)
        row.update(meetings=row["meetings"] + 1, last_meeting_at=e.occurred_at,
                   last_meeting_type=p.meeting_type)

    def _on_PathwayPlanUpdated(self, rows, e, p: ev.PathwayPlanUpdated) -> None:  # noqa: N802
        row = self._pathway(rows, e, p.pathway_id)
        row["plan_summary"] = p.summary if p.summary is not None else row["plan_summary"]
        row["progression"] = p.progression if p.progression is not None else row["progression"]

    def _on_PathwayClosed(self, rows, e, p: ev.PathwayClosed) -> None:  # noqa: N802
        self._pathway(rows, e, p.pathway_id).update(
            status="closed", closed_at=e.occurred_at, close_reason=p.reason)

    # --- identifier replaced ----------------------------------------------------------------

    def _load_replaced(self, rows: _Rows, old_keys: set[str], conn: sa.Connection) -> None:
        """Read every row that names a person whose identifier the batch replaces, so the
        replacement is done in memory and written with the rest of the batch (their persons
        rows are read by key in ``_preload``)."""
        for cache in (rows.cases, rows.grants, rows.consents, rows.markings, rows.pathways,
                      rows.relations, rows.members):
            cache.load_where(conn, "person_key", old_keys)
        rows.relations.load_where(conn, "related_key", old_keys)
        # (aliases: the whole table is read for every batch)

    def _replace_identifier(self, rows: _Rows, p: ev.PersonIdentifierReplaced) -> None:
        """Move everything known under the old identifier to the new one (one person); later
        events naming the old identifier are filed under the new one (aliases)."""
        old = rows.current(self.person_key_of(p.old_identifier))
        new = rows.current(self.person_key_of(p.new_identifier))
        if old == new:
            return
        before, now = rows.persons.get(old), rows.persons.get(new)
        if before is not None:
            rows.persons.delete(old)
            if now is None or not now["registered"]:
                rows.persons.put(before | {"person_key": new, "cpr": p.new_identifier})
        for cache in (rows.cases, rows.grants, rows.consents, rows.markings, rows.pathways):
            for row in cache.naming(old):
                row["person_key"] = new
                cache.touch(row[cache.key_column.name])
        for row in rows.relations.naming(old):
            moved = dict(row)
            if moved["person_key"] == old:
                moved["person_key"] = new
            if moved["related_key"] == old:
                moved.update(related_key=new, related_cpr=p.new_identifier)
            moved["relation_key"] = relation_key(moved["person_key"], moved["relation"],
                                                 moved["related_key"])
            rows.relations.delete(row["relation_key"])
            rows.relations.put(moved)
        for row in rows.members.naming(old):
            rows.remove_member(row["pathway_id"], old)
            rows.add_member(row["pathway_id"], new)
        rows.put_alias(old, new)


def create(person_key_of: KeyOf) -> CitizenOverviewProjection:
    return CitizenOverviewProjection(person_key_of)
