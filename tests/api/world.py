"""A small municipality as canonical events, for the API and browser tests.

A mother with a jobcentre case and an adult-support case (with a grant), her child with a
children's case, and a person with a protected address. Users: a caseworker in the children's
unit, one in the jobcentre, a leader, an auditor and an admin.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from hub.api.users import UserDirectory
from hub.domain import events as ev
from hub.domain.cpr import synthetic_cpr
from hub.store.eventstore import EventStore

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
ADDRESS = ev.Address("Glasvej", "7", "5000", "Glasby", address_id="addr-glasvej-7")
SECRET_ADDRESS = ev.Address("Skjultvej", "1", "5000", "Glasby", address_id="addr-skjult-1")

USERS = UserDirectory.from_mapping({"users": [
    {"id": "anne", "name": "Anne Holm", "roles": ["caseworker"], "units": ["BUF-MYN-N"]},
    {"id": "jonas", "name": "Jonas Vestergaard", "roles": ["caseworker"], "units": ["JC-KONT"]},
    {"id": "lise", "name": "Lise Berg", "roles": ["leader"], "units": ["BUF-MYN-N"]},
    {"id": "rikke", "name": "Rikke Revisor", "roles": ["auditor"]},
    {"id": "dennis", "name": "Dennis Drift", "roles": ["admin"]},
]})


@dataclass(frozen=True)
class World:
    mother_cpr: str
    child_cpr: str
    hidden_cpr: str
    mother: str  # person keys
    child: str
    hidden: str
    job_case: str = "fasit:F-100"
    adult_case: str = "cura:C-200"
    child_case: str = "dubu:S-300"


def event(payload, *, person: str | None = None, case: str | None = None, at: datetime = T0,
       source: str = "test", actor: str | None = "sagsbehandler") -> ev.CanonicalEvent:
    return ev.CanonicalEvent(event_id=uuid.uuid4(), source_system=source,
                             source_record_id=str(uuid.uuid4()), source_version="1",
                             occurred_at=at, payload=payload, person=person, case_key=case,
                             actor=actor)


def populate(store: EventStore) -> World:
    mother = synthetic_cpr(date(1988, 4, 12), 11)
    child = synthetic_cpr(date(2014, 9, 3), 22)
    hidden = synthetic_cpr(date(1975, 1, 30), 33)
    events = [
        event(ev.PersonRegistered("Maja", "Glasmose", date(1988, 4, 12), "K", ADDRESS, "U"),
           person=mother, source="cpr"),
        event(ev.PersonRegistered("Emil", "Glasmose", date(2014, 9, 3), "M", ADDRESS, "U"),
           person=child, source="cpr"),
        event(ev.PersonRelationChanged("child", child, "added"), person=mother, source="cpr"),
        event(ev.PersonRegistered("Henrik", "Skjulesen", date(1975, 1, 30), "M", SECRET_ADDRESS,
                               "G", protected_address=True), person=hidden, source="cpr"),
        # The mother's jobcentre case (JC-KONT) with a grant
        event(ev.CaseOpened("JOBCENTER", "JC-KONT", "Jobcenter, kontanthjælp", "kontanthjaelp",
                         "open", "Kontanthjælp — aktivitetsparat", "LAB", "2"),
           person=mother, case="fasit:F-100", source="fasit"),
        event(ev.CaseworkerAssigned("JC-KONT-001", "Jonas Vestergaard", "JC-KONT", "primary",
                                 "jonas@glasby.dk"), person=mother, case="fasit:F-100",
           source="fasit"),
        event(ev.GrantAwarded("G-1", "benefit", "LAB", "2", "Kontanthjælp", "JC-KONT",
                           "Jobcenter, kontanthjælp", date(2025, 3, 1), monthly_rate=12000.0),
           person=mother, case="fasit:F-100", source="fasit"),
        event(ev.CaseActionRecorded("A-1", "meeting", "samtale", "Første samtale"),
           person=mother, case="fasit:F-100", source="fasit",
           at=datetime(2025, 3, 10, 10, 0, tzinfo=UTC)),
        # Her adult-support case (VOK-STOTTE)
        event(ev.CaseOpened("VOKSEN", "VOK-STOTTE", "Voksenstøtte", "sel85", "open",
                         "Socialpædagogisk støtte", "SEL", "85"),
           person=mother, case="cura:C-200", source="cura"),
        # The child's case in the children's unit (BUF-MYN-N)
        event(ev.CaseOpened("BUF", "BUF-MYN-N", "Myndighed Børn og Familie, team Nord",
                         "forebyggende", "open", "Forebyggende foranstaltning", "BL", "32"),
           person=child, case="dubu:S-300", source="dubu"),
        event(ev.CaseworkerAssigned("BUF-MYN-N-001", "Anne Holm", "BUF-MYN-N", "primary",
                                 "anne@glasby.dk"), person=child, case="dubu:S-300",
           source="dubu"),
    ]
    store.append(events)
    return World(mother, child, hidden, store.person_key(mother), store.person_key(child),
                 store.person_key(hidden))
