"""CPR answers -> canonical person events, by diffing against what the hub already knows.

The register has no change feed here, so a lookup is a snapshot: ``fold`` rebuilds the person as
the hub last saw them from the CPR events in the store, and ``diff`` emits only what changed.
Every event's ``source_record_id`` names the person by pseudonym and the aspect
(``<person_key>/address``), and its ``source_version`` is a content hash chained to the number of
CPR events the person already has, so a re-lookup of an unchanged person produces no events and
a lookup repeated after a crash produces the same events (absorbed by the store's dedupe).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from uuid import NAMESPACE_URL, uuid5

from connectors.cpr.client import CprAddress, PersonRecord
from hub.domain import events as ev

SOURCE = "cpr"


@dataclass(frozen=True)
class KnownPerson:
    """A person as the CPR events in the store describe them."""

    first_name: str
    last_name: str
    address: ev.Address | None
    civil_status: str | None
    protected_address: bool
    died_on: date | None
    relations: frozenset[tuple[str, str]]
    """(relation, related person's CPR)."""
    events: int
    """How many CPR events the person has (chains the versions of the next ones)."""


def fold(events: Iterable[ev.CanonicalEvent], source: str = SOURCE) -> KnownPerson | None:
    state: dict | None = None
    relations: set[tuple[str, str]] = set()
    count = 0
    for e in events:
        if e.source_system != source:
            continue
        p = e.payload
        count += 1
        if isinstance(p, ev.PersonRegistered):
            state = {"first_name": p.first_name, "last_name": p.last_name,
                     "address": p.address, "civil_status": p.civil_status,
                     "protected_address": p.protected_address, "died_on": None}
        elif state is None:
            continue
        elif isinstance(p, ev.PersonNameChanged):
            state.update(first_name=p.first_name, last_name=p.last_name)
        elif isinstance(p, ev.PersonAddressChanged):
            state["address"] = p.address
        elif isinstance(p, ev.PersonCivilStatusChanged):
            state["civil_status"] = p.civil_status
        elif isinstance(p, ev.PersonProtectedAddressChanged):
            state["protected_address"] = p.protected_address
        elif isinstance(p, ev.PersonDied):
            state["died_on"] = p.date_of_death
        elif isinstance(p, ev.PersonRelationChanged):
            pair = (p.relation, p.related_person)
            if p.change == "added":
                relations.add(pair)
            else:
                relations.discard(pair)
    if state is None:
        return None
    return KnownPerson(**state, relations=frozenset(relations), events=count)


def canonical_address(a: CprAddress | None) -> ev.Address | None:
    if a is None:
        return None
    return ev.Address(street=a.street, house_number=a.house_number.lstrip("0") or "0",
                      postcode=a.postcode, city=a.city, floor=a.floor, door=a.door,
                      municipality_code=a.municipality_code, address_id=a.address_id)


def _version(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


def diff(known: KnownPerson | None, record: PersonRecord, *, person_key: str,
         pseudonym: Callable[[str], str], now: datetime) -> list[ev.CanonicalEvent]:
    """The events that bring ``known`` up to ``record`` (all of them for a new person)."""
    n = known.events if known else 0
    out: list[ev.CanonicalEvent] = []

    def emit(aspect: str, payload: ev.Payload, content: object, occurred: datetime | date | None
             ) -> None:
        record_id = f"{person_key}/{aspect}"
        version = _version(n, content)
        when = occurred if isinstance(occurred, datetime) else (
            datetime.combine(occurred, datetime.min.time(), now.tzinfo) if occurred else now)
        out.append(ev.CanonicalEvent(
            event_id=uuid5(NAMESPACE_URL, f"glasplade:cpr:{record_id}:{version}"),
            source_system=SOURCE, source_record_id=record_id, source_version=version,
            occurred_at=when, payload=payload, person=record.pnr))

    address = canonical_address(record.address)
    if known is None:
        emit("registered", ev.PersonRegistered(
            first_name=record.first_name, last_name=record.last_name,
            birth_date=record.birth_date, sex=record.sex, address=address,
            civil_status=record.civil_status, protected_address=record.protected_address),
            "registered", now)
        old_relations: frozenset[tuple[str, str]] = frozenset()
    else:
        if (known.first_name, known.last_name) != (record.first_name, record.last_name):
            emit("name", ev.PersonNameChanged(record.first_name, record.last_name),
                 (record.first_name, record.last_name), now)
        if address is not None and known.address != address:
            emit("address", ev.PersonAddressChanged(address), address,
                 record.address.moved_in if record.address else None)
        if known.civil_status != record.civil_status:
            emit("civil_status", ev.PersonCivilStatusChanged(record.civil_status),
                 record.civil_status, now)
        if known.protected_address != record.protected_address:
            emit("protected_address", ev.PersonProtectedAddressChanged(record.protected_address),
                 record.protected_address, now)
        old_relations = known.relations
    if record.died_on and (known is None or known.died_on is None):
        emit("died", ev.PersonDied(record.died_on), record.died_on, record.died_on)
    new_relations = frozenset(record.relations)
    for relation, other in sorted(new_relations - old_relations):
        emit(f"relation/{relation}/{pseudonym(other)}",
             ev.PersonRelationChanged(relation, other, "added"), ("added", relation, other), now)
    for relation, other in sorted(old_relations - new_relations):
        emit(f"relation/{relation}/{pseudonym(other)}",
             ev.PersonRelationChanged(relation, other, "removed"), ("removed", relation, other),
             now)
    return out
