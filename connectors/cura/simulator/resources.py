"""A Municipality's VOKSEN (Cura) cases as FHIR resources, built on request so that a living
municipality (``hub.synthetic.evolve``) shows its changes.

Each case is a ``Basic`` CitizenCareProvider (citizen <-> organisation relation), each grant a
``ProcedureRequest``, each journal note a ``Communication`` and every other case action a
``Basic`` CuraSimpleTask. Logical ids are the municipality's ids; patients get an opaque id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from connectors.cura import fhir
from hub.synthetic.model import Case, CaseAction, Grant, Municipality


def patient_id(cpr: str) -> str:
    return hashlib.sha256(f"cura-patient:{cpr}".encode()).hexdigest()[:16]


def _at(d: date) -> datetime:
    return datetime.combine(d, time(12, 0), tzinfo=UTC)


def _meta(profile: str, version: int, updated: datetime) -> dict:
    return {"profile": [profile], "versionId": str(version),
            "lastUpdated": fhir.instant(updated)}


@dataclass
class Indexed:
    """A resource with the keys the server searches and sorts on."""

    resource: dict
    sort_at: datetime
    profile: str
    subject: str | None


class Resources:
    def __init__(self, municipality: Municipality):
        self.m = municipality
        self._unit_map: dict = {}
        self._cw_map: dict = {}
        self._cache: dict[str, tuple] = {}
        self._stamps: dict[str, dict[tuple, datetime]] = {}

    def _units(self) -> dict:
        if len(self._unit_map) != len(self.m.units):
            self._unit_map = {u.unit_id: u for u in self.m.units}
        return self._unit_map

    def _caseworkers(self) -> dict:
        if len(self._cw_map) != len(self.m.caseworkers):
            self._cw_map = {c.caseworker_id: c for c in self.m.caseworkers}
        return self._cw_map

    def cases(self) -> list[Case]:
        return [c for c in self.m.cases if c.system == "cura"]

    # --- Patient -------------------------------------------------------------------------

    def patients(self) -> dict[str, dict]:
        key = ("Patient", self.version())
        cached = self._cache.get("Patient")
        if cached is None or cached[0] != key:
            cached = (key, self._patients())
            self._cache["Patient"] = cached
        return cached[1]

    def _patients(self) -> dict[str, dict]:
        persons = {p.cpr: p for p in self.m.persons}
        out = {}
        for cpr in {c.person for c in self.cases()}:
            p = persons.get(cpr)
            pid = patient_id(cpr)
            res = {"resourceType": "Patient", "id": pid,
                   "meta": _meta(fhir.CITIZEN, 1, self.m.as_of),
                   "identifier": [{"system": fhir.CPR_SYSTEM, "value": cpr}]}
            if p is not None:
                res["name"] = [{"text": f"{p.first_name} {p.last_name}",
                                "family": p.last_name, "given": [p.first_name]}]
                res["birthDate"] = p.birth_date.isoformat()
            out[pid] = res
        return out

    # --- Basic: citizen <-> organisation (the case) ------------------------------------------

    def care_provider(self, c: Case) -> Indexed:
        unit = self._units().get(c.unit_id)
        status_at = c.status_history[-1].at if c.status_history else c.opened_at
        # A server never stamps the future: data dated after the simulated clock shows as now.
        updated = min(c.updated_at or status_at, self.m.as_of)
        extensions = [
            {"url": fhir.CP_ORGANIZATION, "valueReference": {
                "reference": f"Organization/{c.unit_id}", "display": unit.name if unit else None}},
            {"url": fhir.CP_DELETED, "valueBoolean": c.status == "closed"},
            {"url": fhir.CP_CREATED, "valueDateTime": fhir.instant(c.opened_at)},
            {"url": fhir.CP_STATUS, "valueString": fhir.STATUS_TO_CURA.get(c.status, c.status)},
            {"url": fhir.CP_STATUS_DATE, "valueDateTime": fhir.instant(max(status_at,
                                                                             c.opened_at))},
            {"url": fhir.CP_CASE_TYPE, "valueString": c.case_type},
            {"url": fhir.CP_TITLE, "valueString": c.title},
        ]
        if c.law and c.paragraph:
            extensions.append({"url": fhir.CP_LEGAL_PARAGRAPH,
                               "valueString": f"{c.law} {c.paragraph}"})
        cw = self._caseworkers().get(c.caseworker_id or "")
        if cw is not None:
            extensions.append({"url": fhir.CP_RESPONSIBLE, "valueReference": {
                "reference": f"Practitioner/{cw.caseworker_id}", "display": cw.name}})
        res = {"resourceType": "Basic", "id": c.case_id,
               "meta": _meta(fhir.CARE_PROVIDER, len(c.status_history) or 1, updated),
               "code": {"coding": [{"code": "CitizenCareProvider"}]},
               "subject": {"reference": f"Patient/{patient_id(c.person)}"},
               "extension": extensions}
        return Indexed(res, updated, fhir.CARE_PROVIDER, patient_id(c.person))

    # --- ProcedureRequest: granted services ---------------------------------------------------

    def grant(self, c: Case, g: Grant) -> Indexed:
        unit = self._units().get(g.granting_unit_id)
        decided = g.decided_on or g.valid_from
        completed = g.valid_to is not None and g.valid_to <= self.m.as_of.date()
        updated = max(_at(decided), c.opened_at)
        if completed:
            updated = max(updated, _at(g.valid_to))
        updated = min(updated, self.m.as_of)  # a stamp from dates, never in the future
        period = {"start": g.valid_from.isoformat()}
        if g.valid_to:
            period["end"] = g.valid_to.isoformat()
        extensions = [
            {"url": fhir.GRANT_PERIOD, "valuePeriod": period},
            {"url": fhir.GRANT_CASE_TYPE, "valueString": g.kind},
            {"url": fhir.GRANT_LEGAL_PARAGRAPH, "valueString": f"{g.law} {g.paragraph}"},
        ]
        if g.hours_per_week is not None:
            extensions += [{"url": fhir.GRANT_RATE, "valueDecimal": g.hours_per_week},
                           {"url": fhir.GRANT_RATE_UNIT, "valueString": "hours/week"}]
        elif g.monthly_rate is not None:
            extensions += [{"url": fhir.GRANT_RATE, "valueDecimal": g.monthly_rate},
                           {"url": fhir.GRANT_RATE_UNIT, "valueString": "DKK/month"}]
        if g.extent:
            extensions.append({"url": fhir.GRANT_REMARK, "valueString": g.extent})
        res = {"resourceType": "ProcedureRequest", "id": g.grant_id,
               "meta": _meta(fhir.GRANT, 2 if completed else 1, updated),
               "status": "completed" if completed else "active", "intent": "order",
               "code": {"coding": [{"code": g.paragraph, "display": g.title}]},
               "subject": {"reference": f"Patient/{patient_id(c.person)}"},
               "basedOn": [{"reference": f"Basic/{c.case_id}"}],
               "performer": {"reference": f"Organization/{g.granting_unit_id}",
                             "display": unit.name if unit else None},
               "authoredOn": decided.isoformat(),
               "extension": extensions}
        return Indexed(res, updated, fhir.GRANT, patient_id(c.person))

    # --- case actions: Communication (journal notes) and Basic tasks -------------------------

    def communication(self, c: Case, a: CaseAction) -> Indexed:
        res = {"resourceType": "Communication", "id": a.action_id,
               "meta": _meta("http://hl7.org/fhir/StructureDefinition/Communication", 1,
                             a.occurred_at),
               "identifier": [{"value": a.action_id}],
               "status": "completed",
               "subject": {"reference": f"Patient/{patient_id(c.person)}"},
               "basedOn": [{"reference": f"Basic/{c.case_id}"}],
               "sent": fhir.instant(a.occurred_at), "received": fhir.instant(a.occurred_at),
               "category": [{"text": a.subtype or a.action_type}],
               "payload": [{"contentString": a.text or ""}],
               "extension": [{"url": fhir.COMMUNICATION_TITLE, "valueString": a.title}]}
        if a.caseworker_id:
            res["sender"] = {"reference": f"Practitioner/{a.caseworker_id}"}
        return Indexed(res, a.occurred_at, "", patient_id(c.person))

    def task(self, c: Case, a: CaseAction) -> Indexed:
        pid = patient_id(c.person)
        extensions = [
            {"url": fhir.TASK_TYPE, "valueString": a.action_type},
            {"url": fhir.TASK_FOR, "valueReference": {"reference": f"Patient/{pid}"}},
            {"url": fhir.TASK_ORGANIZATION, "valueReference": {
                "reference": f"Organization/{c.unit_id}"}},
            {"url": fhir.TASK_CASE, "valueReference": {"reference": f"Basic/{c.case_id}"}},
            {"url": fhir.TASK_TITLE, "valueString": a.title},
            {"url": fhir.TASK_STATUS, "valueString": "completed"},
        ]
        if a.subtype:
            extensions.append({"url": fhir.TASK_TYPE + "/subtype", "valueString": a.subtype})
        if a.caseworker_id:
            extensions.append({"url": fhir.TASK_REQUESTER, "valueReference": {
                "reference": f"Practitioner/{a.caseworker_id}"}})
        meta = _meta(fhir.TASK, 1, a.occurred_at)
        meta["extension"] = [{"url": fhir.SYSTEM_CREATED,
                              "valueDateTime": fhir.instant(a.occurred_at)}]
        res = {"resourceType": "Basic", "id": a.action_id, "meta": meta,
               "code": {"coding": [{"code": "CuraSimpleTask"}]},
               "subject": {"reference": f"Patient/{pid}"}, "extension": extensions}
        return Indexed(res, a.occurred_at, fhir.TASK, pid)

    # --- by type ------------------------------------------------------------------------------

    def version(self) -> tuple:
        """Changes whenever the served resources may have changed (cheap to compute)."""
        cases = self.cases()
        return (self.m.as_of, len(cases), sum(len(c.actions) + len(c.grants) for c in cases),
                max((c.updated_at or c.opened_at for c in cases), default=None),
                tuple(c.status for c in cases))

    def of_type(self, resource_type: str) -> list[Indexed]:
        """Resources of one type sorted by (change time, id), cached until ``version()``
        changes (the list itself must not be modified by callers)."""
        key = (resource_type, self.version())
        cached = self._cache.get(resource_type)
        if cached is None or cached[0] != key:
            items = self._build(resource_type)
            if resource_type == "ProcedureRequest":
                self._stamp(resource_type, items)
            items.sort(key=lambda i: (i.sort_at, i.resource["id"]))
            cached = (key, items)
            self._cache[resource_type] = cached
        return cached[1]

    def _stamp(self, resource_type: str, items: list[Indexed]) -> None:
        """A server stamps ``meta.lastUpdated`` when it stores a version. Grants only carry
        dates, so a version that appears after the first build (the municipality evolved) is
        stamped no earlier than the simulated clock: an incremental reader never misses it."""
        first = resource_type not in self._stamps
        stamps = self._stamps.setdefault(resource_type, {})
        for item in items:
            version = (item.resource["id"], item.resource["meta"]["versionId"])
            at = stamps.get(version)
            if at is None:
                at = item.sort_at if first else max(item.sort_at, self.m.as_of)
                stamps[version] = at
            if at != item.sort_at:
                item.sort_at = at
                item.resource["meta"]["lastUpdated"] = fhir.instant(at)

    def _build(self, resource_type: str) -> list[Indexed]:
        out: list[Indexed] = []
        now = self.m.as_of
        for c in self.cases():
            # What happens after the simulated clock does not exist yet.
            actions = [a for a in c.actions if a.occurred_at <= now]
            if resource_type == "Basic":
                out.append(self.care_provider(c))
                out += [self.task(c, a) for a in actions if a.action_type != "journal_note"]
            elif resource_type == "ProcedureRequest":
                out += [self.grant(c, g) for g in c.grants]
            elif resource_type == "Communication":
                out += [self.communication(c, a) for a in actions
                        if a.action_type == "journal_note"]
        return out
