"""The municipality's BUF cases as DUBU shows them (``Sag``, ``Aktivitet``, ``OrgBruger``).

The simulator reads the ``Municipality`` live: whoever keeps it alive over simulated time (or a
test) changes case objects in place or adds cases with ``add_case``. A case added after start is
invisible to OData for ``read_after_create_delay`` seconds (DUBU's eventual consistency); a case
appended to ``municipality.cases`` directly starts its delay when the simulator first notices it.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from connectors.dubu.mapping import ACTIVITY_TITLE, STATUS_KEY, STATUSES
from connectors.simulation import Faults
from hub.synthetic.model import Case, CaseAction, Municipality

SYSTEM = "dubu"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LETTER_DIGITS = re.compile(r"([A-Za-z])(\d{8})")  # the synthetic model's fixed-width ids


def _int_id(value: str, space: int) -> int:
    """DUBU ids are integers, unique per kind: numeric model ids are kept; a letter and eight
    digits (the synthetic model's ``d00000123``) map one-to-one into ``space`` (above any numeric
    model id of the kind); any other id gets a stable 53-bit number (a collision would merge two
    records, so no short hash here)."""
    if value.isdigit():
        return int(value)
    match = _LETTER_DIGITS.fullmatch(value)
    if match:
        return space + int(match[2]) * 64 + _LETTERS.index(match[1])
    digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return (1 << 52) | int.from_bytes(digest, "big") & ((1 << 52) - 1)


def _iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value.isoformat()


class DubuWorld:
    def __init__(self, municipality: Municipality, faults: Faults,
                 clock: Callable[[], float] = time.monotonic):
        self.m = municipality
        self.faults = faults
        self.clock = clock
        self._lock = threading.Lock()
        self._visible_at: dict[int, float] = {}
        self._by_id: dict[int, Case] = {}
        self._seen = 0
        self.units = {u.unit_id: u for u in municipality.units}
        self.workers = {w.caseworker_id: w for w in municipality.caseworkers}
        self.persons = {p.cpr: p for p in municipality.persons}
        self._notice(initial=True)

    # --- keeping up with the municipality -------------------------------------------------

    def sag_id(self, case: Case) -> int:
        return _int_id(case.case_id, 100_000)

    def _notice(self, initial: bool = False) -> None:
        with self._lock:
            cases = self.m.cases
            if len(cases) == self._seen:
                return
            now = self.clock()
            delay = 0.0 if initial else self.faults.config.read_after_create_delay
            for case in cases[self._seen:]:
                if case.system != SYSTEM:
                    continue
                sid = self.sag_id(case)
                self._by_id[sid] = case
                self._visible_at.setdefault(sid, now + delay)
            self._seen = len(cases)
            self.units.update({u.unit_id: u for u in self.m.units})
            self.workers.update({w.caseworker_id: w for w in self.m.caseworkers})
            self.persons.update({p.cpr: p for p in self.m.persons})

    def add_case(self, case: Case) -> int:
        """A caseworker creates a case: stored now, readable after the configured delay."""
        sid = self.sag_id(case)
        with self._lock:
            self._visible_at[sid] = self.clock() + self.faults.config.read_after_create_delay
        self.m.cases.append(case)
        self._notice()
        return sid

    def visible_cases(self) -> list[tuple[int, Case]]:
        self._notice()
        now = self.clock()
        with self._lock:
            return sorted((sid, c) for sid, c in self._by_id.items()
                          if self._visible_at.get(sid, 0.0) <= now)

    def case(self, sag_id: int) -> Case | None:
        self._notice()
        case = self._by_id.get(sag_id)
        if case is None or self._visible_at.get(sag_id, 0.0) > self.clock():
            return None
        return case

    # --- DUBU's shapes --------------------------------------------------------------------

    def sag(self, sid: int, case: Case) -> dict[str, Any]:
        """The full ``Sag`` with every navigation property (the app projects it)."""
        status_key = STATUS_KEY.get(case.status, "SagStatus1")
        unit = self.units.get(case.unit_id)
        person = self.persons.get(case.person)
        worker = self.workers.get(case.caseworker_id or "")
        record: dict[str, Any] = {
            "id": sid,
            "sagsnummer": f"{case.opened_at.year}-{sid:06d}",
            "titel": case.title,
            "tvang": False,
            "isSensitive": False,
            "sekundaerBehandlerNavne": "",
            "status": {"brugervendtNoegle": status_key, "titel": STATUSES[status_key][0]},
            "sagstype": {"brugervendtNoegle": case.case_type, "titel": case.case_type},
            "startDato": _iso(case.opened_at),
            "slutDato": _iso(case.closed_at),
            "lovgrundlag": {"lov": case.law, "paragraf": case.paragraph} if case.law else None,
            "afdeling": {"orgEnhedId": _int_id(case.unit_id, 1000),
                         "brugervendtNoegle": case.unit_id,
                         "navn": unit.name if unit else case.unit_id},
            "primaerPerson": {
                "id": _int_id(case.person, 2_000_000),
                "cprnr": case.person,
                "fornavn": person.first_name if person else None,
                "mellemnavn": None,
                "efternavn": person.last_name if person else None,
                "fuldeNavn": f"{person.first_name} {person.last_name}" if person else None,
                "navn": f"{person.first_name} {person.last_name}" if person else None,
                "alder": _age(person.birth_date, self.m.as_of.date()) if person else None,
                "organisationsnavn": None,
            },
            "primaerBehandler": None if worker is None else {
                "id": _int_id(worker.caseworker_id, 5000), "brugernavn": worker.caseworker_id,
                "navn": worker.name, "email": worker.email},
            "foerstkommendeFrist": None,
        }
        if self.faults.malformed(f"Sag/{sid}"):
            # Real bad data: a case without a usable person number, or an unknown status.
            if sid % 2:
                record["primaerPerson"]["cprnr"] = "ukendt"
            else:
                record["status"] = {"brugervendtNoegle": "SagStatus99", "titel": "?"}
        return record

    def activities(self, sid: int, case: Case) -> list[dict[str, Any]]:
        return [self.activity(sid, case, a) for a in case.actions]

    def activity(self, sid: int, case: Case, a: CaseAction) -> dict[str, Any]:
        title = ACTIVITY_TITLE.get(a.action_type, "Henvendelse")
        worker = self.workers.get(a.caseworker_id or case.caseworker_id or "")
        return {
            "id": _int_id(a.action_id, 10_000_000),
            "beskrivelse": a.title,
            "notat": a.text,
            "haendelsesDato": _iso(a.occurred_at),
            "type": {"titel": title, "brugervendtNoegle": title},
            "undertype": {"titel": a.subtype} if a.subtype else None,
            "status": {"titel": "Aktiv"},
            "primaerBehandlerNavn": worker.name if worker else None,
            "sagReference": {"sagId": sid},
        }


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def status_key_of(canonical: str) -> str:
    return STATUS_KEY.get(canonical, "SagStatus1")
