"""The synthetic municipality's BSF and jobcentre cases, journal notes and person-group markings as
Fasit's jobcentre backend shows them.

Read live from the ``Municipality`` (whoever simulates time, or a test, changes it in place).
Citizens are known by a ``citizenId`` UUID derived from the CPR number.
"""

from __future__ import annotations

import threading
import uuid
from datetime import date
from typing import Any

from connectors.fasit.dates import timestamp_to_wire, to_wire
from connectors.fasit.mapping import NOTE_TYPE_OF, STATUS_OF
from connectors.simulation import Faults
from hub.synthetic.model import Case, Marking, Municipality, Person

SYSTEM = "fasit"
_NS = uuid.UUID("5d0c7a43-1f7e-4f0e-8a0e-6c2b9f1d3e55")
#: Person groups every simulated tenant has, besides those its markings use.
DEFAULT_PERSON_GROUPS = ("Sammenhængende borgerforløb", "Tyra - koordineret indsats")
#: "Kommunens markeringer": free-text note fields per citizen. Public clients show
#: ``importantNote2``; the other two names are inferred from it.
NOTE_FIELDS = ("importantNote1", "importantNote2", "importantNote3")


def citizen_id(cpr: str) -> str:
    return str(uuid.uuid5(_NS, f"citizen:{cpr}"))


def group_id(name: str) -> str:
    return str(uuid.uuid5(_NS, f"persongroup:{name}"))


def note_id(action_id: str) -> str:
    return str(uuid.uuid5(_NS, f"note:{action_id}"))


class FasitWorld:
    def __init__(self, municipality: Municipality, faults: Faults):
        self.m = municipality
        self.faults = faults
        self.lock = threading.RLock()
        self.units = {u.unit_id: u for u in municipality.units}
        self.workers = {w.caseworker_id: w for w in municipality.caseworkers}
        self._persons = {p.cpr: p for p in municipality.persons}
        self._signature = (-1, -1, -1)
        self._cases: dict[str, list[Case]] = {}
        self._markings: dict[str, list[Marking]] = {}
        self._citizens: dict[str, tuple[Person | None, str]] = {}
        self._notes: dict[str, dict[str, str | None]] = {}

    def _index(self) -> None:
        """Re-index when cases, markings or persons were added (changes in place need none)."""
        sig = (len(self.m.cases), len(self.m.markings), len(self.m.persons))
        if sig == self._signature:
            return
        self._cases, self._markings = {}, {}
        for c in self.m.cases:
            if c.system == SYSTEM:
                self._cases.setdefault(c.person, []).append(c)
        for mk in self.m.markings:
            if mk.system == SYSTEM:
                self._markings.setdefault(mk.person, []).append(mk)
        self._persons = {p.cpr: p for p in self.m.persons}
        self._citizens = {citizen_id(c): (self._persons.get(c), c)
                          for c in sorted(set(self._cases) | set(self._markings))}
        self._signature = sig

    # --- who is in Fasit ------------------------------------------------------------------

    def citizens(self) -> dict[str, tuple[Person | None, str]]:
        """citizenId -> (person, cpr) for everyone with a Fasit case or marking."""
        with self.lock:
            self._index()
            return self._citizens

    def cases_of(self, cpr: str) -> list[Case]:
        with self.lock:
            self._index()
            return list(self._cases.get(cpr, ()))

    def markings_of(self, cpr: str) -> list[Marking]:
        with self.lock:
            self._index()
            return list(self._markings.get(cpr, ()))

    def person_groups(self) -> list[str]:
        with self.lock:
            names = {mk.marking_type for mk in self.m.markings if mk.system == SYSTEM}
        return sorted(names | set(DEFAULT_PERSON_GROUPS))

    # --- Fasit's shapes -------------------------------------------------------------------

    def case(self, c: Case) -> dict[str, Any]:
        unit = self.units.get(c.unit_id)
        worker = self.workers.get(c.caseworker_id or "")
        record: dict[str, Any] = {
            "caseId": c.case_id,
            "caseNumber": f"F-{c.opened_at.year}-{c.case_id}",
            "title": c.title,
            "caseType": {"name": c.case_type},
            "caseStatus": STATUS_OF.get(c.status, "Aktiv"),
            "department": c.department,
            "createdOn": timestamp_to_wire(c.opened_at),
            "closedOn": timestamp_to_wire(c.closed_at) if c.closed_at else None,
            "responsibleUnit": {"id": c.unit_id, "name": unit.name if unit else c.unit_id},
            "caseworker": None if worker is None else {
                "id": worker.caseworker_id, "name": worker.name, "email": worker.email},
            "legalBasis": ({"law": c.law, "paragraph": c.paragraph} if c.law else None),
        }
        if self.faults.malformed(f"Case/{c.case_id}"):
            record["caseStatus"] = "Ukendt status"
        return record

    def notes(self, cpr: str) -> list[dict[str, Any]]:
        out = []
        for c in self.cases_of(cpr):
            for a in c.actions:
                worker = self.workers.get(a.caseworker_id or "")
                out.append({
                    "id": note_id(a.action_id), "caseId": c.case_id, "title": a.title,
                    "noteType": NOTE_TYPE_OF.get(a.action_type, "Notat"),
                    "subType": a.subtype, "text": a.text,
                    "eventDate": timestamp_to_wire(a.occurred_at),
                    "createdAt": timestamp_to_wire(a.occurred_at),
                    "createdBy": worker.name if worker else None, "attachments": []})
        return out

    def marking(self, mk: Marking) -> dict[str, Any]:
        return {"id": mk.marking_id, "personGroupId": group_id(mk.marking_type),
                "personGroupName": mk.marking_type, "startDate": to_wire(mk.valid_from),
                "endDate": to_wire(mk.valid_to) if mk.valid_to else None}

    def notes_of(self, cpr: str) -> dict[str, str | None]:
        with self.lock:
            return {f: self._notes.get(cpr, {}).get(f) for f in NOTE_FIELDS}

    # --- commands -------------------------------------------------------------------------

    def set_notes(self, cpr: str, notes: dict[str, str | None]) -> None:
        """Replace all note fields (a field not given is emptied, as Fasit's ``updatenotes``)."""
        with self.lock:
            self._notes[cpr] = {f: notes.get(f) or None for f in NOTE_FIELDS}

    def create_marking(self, cpr: str, group: str, start: date, end: date | None) -> Marking:
        with self.lock:
            mk = Marking(marking_id=str(uuid.uuid4()), person=cpr, system=SYSTEM,
                         marking_type=group, valid_from=start, valid_to=end)
            self.m.markings.append(mk)
            return mk

    def find_marking(self, marking_id: str) -> Marking | None:
        with self.lock:
            return next((mk for mk in self.m.markings
                         if mk.system == SYSTEM and mk.marking_id == marking_id), None)
