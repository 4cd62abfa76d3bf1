"""The synthetic municipality as canonical events.

Every event has a stable source key (source_system, source_record_id, source_version) and an
event id that is the uuid5 of that key, so emitting the same municipality twice gives the same
events and ingesting them again stores nothing new. Person facts come from "cpr"; case facts from
the case's own fagsystem; markings from the marking's system; consents from "sbsys" (the consent
form is journalised in the ESDH system); coordinated pathways from the pathway's system ("sbsys").
A person a fagsystem registered under another spelling of the last name also has that system's
``PersonRegistered`` (same birth date and address as the register), so the systems' names differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from uuid import UUID, uuid5

from hub.domain import events as ev
from hub.synthetic.cases import TZ
from hub.synthetic.model import Case, Consent, Marking, Municipality, Pathway, Person, Relation
from hub.synthetic.population import first_address

#: Namespace of the demo's event ids (uuid5 of the source key).
EVENT_NAMESPACE = UUID("9e3c1b7a-2f4d-4d8e-8f61-5a0b7c2d9e10")
CONSENT_SYSTEM = "sbsys"


def event_id(source_system: str, record_id: str, version: str) -> UUID:
    return uuid5(EVENT_NAMESPACE, f"{source_system}\x1f{record_id}\x1f{version}")


def _noon(d: date) -> datetime:
    return datetime.combine(d, time(12), TZ)


def _event(system: str, record_id: str, version: str, when: datetime, payload: ev.Payload, *,
           person: str | None, case_key: str | None = None, actor: str | None = None
           ) -> ev.CanonicalEvent:
    return ev.CanonicalEvent(
        event_id=event_id(system, record_id, version), source_system=system,
        source_record_id=record_id, source_version=version, occurred_at=when, payload=payload,
        person=person, case_key=case_key, actor=actor)


def municipality_events(m: Municipality, *, time_ordered: bool = False
                        ) -> Iterator[ev.CanonicalEvent]:
    """All events of ``m``: each stream's events together and in business-time order (persons
    with their consents and markings, then cases); or, with ``time_ordered``, all events by
    business time (holds every event in memory: meant for demo sizes)."""
    if time_ordered:
        yield from sorted(municipality_events(m), key=lambda e: e.occurred_at)
        return
    relations: dict[str, list[Relation]] = {}
    for r in m.relations:
        relations.setdefault(r.person, []).append(r)
    own: dict[str, list[ev.CanonicalEvent]] = {}  # consents and markings: the person's stream
    for consent in m.consents:
        own.setdefault(consent.person, []).extend(consent_events(consent, m.as_of))
    for marking in m.markings:
        own.setdefault(marking.person, []).extend(marking_events(marking, m.as_of))
    record_of = {p.cpr: p.person_id for p in m.persons if p.person_id}
    for p in m.persons:
        events = person_events(p, relations.get(p.cpr, ()), record_of)
        if p.cpr in own:
            events = sorted(events + own.pop(p.cpr), key=lambda e: e.occurred_at)
        yield from events
    for person in sorted(own):  # known only by a substitute number
        yield from sorted(own[person], key=lambda e: e.occurred_at)
    units = {u.unit_id: u.name for u in m.units}
    workers = {c.caseworker_id: c for c in m.caseworkers}
    for c in m.cases:
        yield from case_events(c, units, workers, m.as_of)
    for pw in m.pathways:
        yield from pathway_events(pw, units, workers)


def person_events(p: Person, relations=(), record_of: dict[str, str] | None = None
                  ) -> list[ev.CanonicalEvent]:
    """A person's register facts. Record ids use the register's record number, never the CPR
    number (record ids are kept in clear, e.g. with dead letters)."""
    record_of = record_of or {}
    cpr, rid = p.cpr, f"person/{p.person_id or _record_no(p.cpr, record_of)}"
    registered = _noon(p.registered_on or p.birth_date)
    out = [_event("cpr", rid, "registered", registered, ev.PersonRegistered(
        first_name=p.first_name, last_name=p.last_name, birth_date=p.birth_date, sex=p.sex,
        address=first_address(p), civil_status=p.civil_status,
        protected_address=p.protected_address), person=cpr)]
    if p.substitute_number:
        out.append(_event("cpr", rid, "identifier-replaced", registered,
                          ev.PersonIdentifierReplaced(p.substitute_number, cpr), person=cpr))
    for r in relations:
        out.append(_event(
            "cpr", f"{rid}/relation/{r.relation}/{_record_no(r.related_person, record_of)}",
            "added",
            max(registered, _noon(r.since)),
            ev.PersonRelationChanged(r.relation, r.related_person, "added"), person=cpr))
    for move in p.address_changes:
        out.append(_event("cpr", f"{rid}/address/{move.address.address_id}",
                          move.since.isoformat(), max(registered, _noon(move.since)),
                          ev.PersonAddressChanged(move.address), person=cpr))
    if p.alternate_name_system and p.alternate_name_registered_at and p.alternate_last_name:
        out.append(_event(p.alternate_name_system, f"borger/{rid.removeprefix('person/')}",
                          "registered", p.alternate_name_registered_at, ev.PersonRegistered(
                              first_name=p.first_name, last_name=p.alternate_last_name,
                              birth_date=p.birth_date, sex=p.sex,
                              address=address_on(p, p.alternate_name_registered_at.date()),
                              civil_status=p.civil_status,
                              protected_address=p.protected_address), person=cpr))
    if p.died_on:
        out.append(_event("cpr", rid, "died", _noon(p.died_on), ev.PersonDied(p.died_on),
                          person=cpr))
    out.sort(key=lambda e: e.occurred_at)
    return out


def address_on(p: Person, day: date):
    """Where ``p`` lived on ``day`` (so an event never changes when the person moves later)."""
    address = first_address(p)
    for move in p.address_changes:
        if move.since <= day:
            address = move.address
    return address


def _record_no(cpr: str, record_of: dict[str, str]) -> str:
    """The register's record number of ``cpr`` (or an opaque uuid5 when unknown)."""
    return record_of.get(cpr) or str(uuid5(EVENT_NAMESPACE, cpr))


_STATUS_EVENTS = {"closed": ev.CaseClosed, "passive": ev.CasePassivated}


def case_events(c: Case, unit_names: dict[str, str], workers: dict, as_of: datetime
                ) -> list[ev.CanonicalEvent]:
    system, key, rid = c.system, c.case_key, f"sag/{c.case_id}"
    opened = c.opened_at
    first_worker = c.caseworker_history[0].caseworker_id if c.caseworker_history \
        else c.caseworker_id

    def add(record_id: str, version: str, when: datetime, payload: ev.Payload,
            actor: str | None = None) -> None:
        out.append(_event(system, record_id, version, max(when, opened), payload,
                          person=c.person, case_key=key, actor=actor))

    basis = c.legal_bases[0] if c.legal_bases else None
    out: list[ev.CanonicalEvent] = []
    add(rid, "opened", opened, ev.CaseOpened(
        department=c.department, unit_id=c.unit_id, unit_name=unit_names.get(c.unit_id, c.unit_id),
        case_type=c.case_type, status=c.status_history[0].status if c.status_history else "open",
        title=c.title, law=basis.law if basis else c.law,
        paragraph=basis.paragraph if basis else c.paragraph,
        legal_basis_valid_from=basis.valid_from if basis else None), first_worker)
    history = c.caseworker_history or (
        [] if c.caseworker_id is None else [_Change(c.caseworker_id, opened)])
    previous = None
    for ch in history:
        w = workers.get(ch.caseworker_id)
        if previous is not None:
            add(f"{rid}/behandler/{previous}", f"unassigned/{ch.at.isoformat()}", ch.at,
                ev.CaseworkerUnassigned(previous), ch.caseworker_id)
        add(f"{rid}/behandler/{ch.caseworker_id}", ch.at.isoformat(), ch.at,
            ev.CaseworkerAssigned(ch.caseworker_id, w.name if w else ch.caseworker_id,
                                  w.unit_id if w else c.unit_id, contact=w.email if w else None),
            ch.caseworker_id)
        previous = ch.caseworker_id
    for lb in c.legal_bases[1:]:
        add(f"{rid}/hjemmel", lb.valid_from.isoformat(),
            datetime.combine(lb.valid_from, time(0), TZ),
            ev.CaseLegalBasisChanged(lb.law, lb.paragraph, lb.valid_from))
    prev_status = c.status_history[0].status if c.status_history else "open"
    for i, st in enumerate(c.status_history[1:], start=1):
        if st.status in _STATUS_EVENTS:
            payload = _STATUS_EVENTS[st.status](reason=None)
        elif prev_status == "closed":
            payload = ev.CaseReopened(reason=None)
        else:
            payload = ev.CaseStatusChanged(st.status, prev_status)
        add(f"{rid}/status/{i}", st.status, st.at, payload)
        prev_status = st.status
    for a in c.actions:
        add(f"{rid}/aktivitet/{a.action_id}", "1", a.occurred_at, ev.CaseActionRecorded(
            a.action_id, a.action_type, a.subtype, a.title, a.text), a.caseworker_id)
    today = as_of.date()
    for g in c.grants:
        grid = f"bevilling/{g.grant_id}"
        decided = g.decided_on or g.valid_from
        add(grid, "awarded", _noon(decided), ev.GrantAwarded(
            grant_id=g.grant_id, kind=g.kind, law=g.law, paragraph=g.paragraph, title=g.title,
            granting_unit_id=g.granting_unit_id,
            granting_unit_name=unit_names.get(g.granting_unit_id, g.granting_unit_id),
            # an end that came later is told by GrantEnded, so this event never changes
            valid_from=g.valid_from, valid_to=None if g.ended_reason else g.valid_to,
            extent=g.extent,
            hours_per_week=g.hours_per_week, monthly_rate=g.monthly_rate,
            applied_on=g.applied_on, decided_on=g.decided_on))
        if g.valid_to is not None and g.valid_to <= today and g.ended_reason:
            add(grid, "ended", _noon(g.valid_to), ev.GrantEnded(g.grant_id, g.valid_to,
                                                                g.ended_reason))
    out.sort(key=lambda e: e.occurred_at)  # stable: CaseOpened stays first at its instant
    return out


class _Change:
    def __init__(self, caseworker_id: str, at: datetime):
        self.caseworker_id, self.at = caseworker_id, at


def consent_events(c: Consent, as_of: datetime) -> list[ev.CanonicalEvent]:
    rid = f"samtykke/{c.consent_id}"
    out = [_event(CONSENT_SYSTEM, rid, "given", _noon(c.valid_from), ev.ConsentGiven(
        c.consent_id, c.purpose, tuple(c.unit_ids), c.valid_from, c.valid_until),
        person=c.person)]
    if c.withdrawn_on is not None and c.withdrawn_on <= as_of.date():
        out.append(_event(CONSENT_SYSTEM, rid, "withdrawn", _noon(c.withdrawn_on),
                          ev.ConsentWithdrawn(c.consent_id, "trukket tilbage af borgeren"),
                          person=c.person))
    return out


def marking_events(mk: Marking, as_of: datetime) -> list[ev.CanonicalEvent]:
    rid = f"markering/{mk.marking_id}"
    out = [_event(mk.system, rid, "set", _noon(mk.valid_from), ev.MarkingSet(
        mk.marking_id, mk.system, mk.marking_type, mk.valid_from), person=mk.person)]
    if mk.valid_to is not None and mk.valid_to <= as_of.date():
        out.append(_event(mk.system, rid, "ended", _noon(mk.valid_to), ev.MarkingEnded(
            mk.marking_id, mk.system, mk.marking_type, mk.valid_to), person=mk.person))
    return out


def pathway_events(pw: Pathway, unit_names: dict[str, str], workers: dict
                   ) -> list[ev.CanonicalEvent]:
    """A coordinated pathway's events (its own stream), filed under the consenting person."""
    system, rid = pw.system, f"forloeb/{pw.pathway_id}"

    def add(record_id: str, version: str, when: datetime, payload: ev.Payload,
            actor: str | None = None) -> None:
        out.append(_event(system, record_id, version, max(when, pw.started_at), payload,
                          person=pw.person, actor=actor))

    out: list[ev.CanonicalEvent] = []
    add(rid, "started", pw.started_at, ev.PathwayStarted(
        pw.pathway_id, pw.anchor_unit_id, unit_names.get(pw.anchor_unit_id, pw.anchor_unit_id),
        None, tuple(pw.members)))
    if pw.tovholder_id and pw.tovholder_at:
        w = workers.get(pw.tovholder_id)
        add(f"{rid}/tovholder/{pw.tovholder_id}", pw.tovholder_at.isoformat(), pw.tovholder_at,
            ev.PathwayTovholderAssigned(pw.pathway_id, pw.tovholder_id,
                                        w.name if w else pw.tovholder_id,
                                        w.unit_id if w else pw.anchor_unit_id), pw.tovholder_id)
    for mt in pw.meetings:
        add(f"{rid}/moede/{mt.meeting_id}", "1", mt.held_at, ev.PathwayMeetingHeld(
            pw.pathway_id, mt.meeting_type, mt.citizen_present, tuple(mt.participants)),
            pw.tovholder_id)
    for i, pu in enumerate(pw.plan_updates, start=1):
        add(f"{rid}/plan/{i}", "1", pu.at, ev.PathwayPlanUpdated(
            pw.pathway_id, pu.summary, pu.progression), pw.tovholder_id)
    if pw.closed_at is not None and pw.close_reason:
        add(rid, "closed", pw.closed_at, ev.PathwayClosed(pw.pathway_id, pw.close_reason))
    out.sort(key=lambda e: e.occurred_at)  # stable: PathwayStarted stays first at its instant
    return out
