"""Cura FHIR resources -> canonical events. Pure functions; a resource that cannot be mapped
raises ``MappingError`` with the reason (the stream dead-letters it, the rest goes on).

Cura shows current state, not history, so each event's dedupe key is derived from the state that
produced it (``Basic/<id>`` + "opened", the status and its date, ...): reading the same state
again yields the same keys and stores nothing.

- ``Basic`` CitizenCareProvider (the case): CaseOpened (a new relation starts active),
  CaseworkerAssigned, CaseStatusChanged when the status was set after opening, CasePassivated /
  CaseClosed for those statuses.
- ``ProcedureRequest`` (granted service): GrantAwarded; GrantChanged for later versions;
  GrantEnded when completed.
- ``Basic`` CuraSimpleTask and ``Communication``: CaseActionRecorded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from connectors import MappingError, event
from connectors.cura import fhir
from connectors.snapshot import CaseState, change_version
from hub.domain import events as ev

SYSTEM = "cura"

CprOf = Callable[[str], str | None]
"""Patient logical id -> CPR number (or None when the patient has none)."""


def _value(resource: dict, url: str, kind: str, required: bool = False):
    e = fhir.ext(resource, url)
    value = e.get(kind) if e else None
    if required and value in (None, ""):
        raise MappingError(f"{resource.get('resourceType')} extension {url.rsplit('/', 1)[-1]} "
                           "is missing")
    return value


def _instant(value, what: str) -> datetime:
    if not isinstance(value, str):
        raise MappingError(f"{what} is missing")
    try:
        return fhir.parse_instant(value)
    except ValueError:
        raise MappingError(f"{what} {value!r} is not a FHIR instant") from None


def _person(resource: dict, cpr_of: CprOf) -> str:
    pid = fhir.ref_id(resource.get("subject"), "Patient")
    if pid is None:
        raise MappingError(f"{resource.get('resourceType')} has no Patient subject")
    cpr = cpr_of(pid)
    if not cpr:
        raise MappingError(f"Patient/{pid} has no CPR identifier")
    return cpr


def _case_key(reference: dict | None, what: str) -> str:
    case_id = fhir.ref_id(reference, "Basic")
    if case_id is None:
        raise MappingError(f"{what} does not refer to a case (Basic CitizenCareProvider)")
    return f"{SYSTEM}:{case_id}"


def _law(text: str | None) -> tuple[str, str]:
    """'SEL § 85' -> ('SEL', '§ 85')."""
    if not text or " " not in text.strip():
        raise MappingError(f"legal paragraph {text!r} is not '<law> <paragraph>'")
    law, paragraph = text.strip().split(" ", 1)
    return law, paragraph


def _resource_id(resource: dict) -> str:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise MappingError(f"{resource.get('resourceType', 'resource')} has no id")
    return rid


def care_provider(r: dict, cpr_of: CprOf, known_of: Callable[[str], CaseState | None]
                  ) -> list[ev.CanonicalEvent]:
    """A care-provider case. ``known_of(case key)``: what the store knows of the case (None:
    nothing); the responsible caseworker is an event only when it differs from the store's,
    keyed by the change (``change_version``), so a return to an earlier one is recorded."""
    rid = _resource_id(r)
    key = f"Basic/{rid}"
    person = _person(r, cpr_of)
    case_key = f"{SYSTEM}:{rid}"
    org = _value(r, fhir.CP_ORGANIZATION, "valueReference") or {}
    unit_id = fhir.ref_id(org, "Organization")
    if unit_id is None:
        raise MappingError(f"{key} has no organisation")
    created = _instant(_value(r, fhir.CP_CREATED, "valueDateTime", True), "created")
    status_cura = _value(r, fhir.CP_STATUS, "valueString") or "active"
    status = fhir.STATUS_FROM_CURA.get(status_cura, status_cura)
    status_at = _instant(_value(r, fhir.CP_STATUS_DATE, "valueDateTime") or
                         fhir.instant(created), "statusDate")
    law = paragraph = None
    if (lp := _value(r, fhir.CP_LEGAL_PARAGRAPH, "valueString")):
        law, paragraph = _law(lp)
    responsible = _value(r, fhir.CP_RESPONSIBLE, "valueReference")
    actor = fhir.ref_id(responsible, "Practitioner")

    def mk(suffix: str, version: str, at: datetime, payload: ev.Payload) -> ev.CanonicalEvent:
        return event(SYSTEM, f"{key}/{suffix}", version, at, payload, person=person,
                     case_key=case_key, actor=actor)

    out = [mk("opened", "1", created, ev.CaseOpened(
        department="VOKSEN", unit_id=unit_id, unit_name=org.get("display") or unit_id,
        case_type=_value(r, fhir.CP_CASE_TYPE, "valueString") or "standard", status="open",
        title=_value(r, fhir.CP_TITLE, "valueString"), law=law, paragraph=paragraph))]
    known = known_of(case_key) or CaseState()
    if actor and actor != known.caseworker_id:
        n = known.caseworker_changes + 1
        at = created if n == 1 else _instant((r.get("meta") or {}).get("lastUpdated") or
                                             fhir.instant(created), "lastUpdated")
        out.append(mk("responsible", change_version(n, known.caseworker_id, actor), at,
                      ev.CaseworkerAssigned(caseworker_id=actor,
                                            caseworker_name=responsible.get("display") or actor,
                                            unit_id=unit_id)))
    if status_at > created:
        stamp = fhir.instant(status_at)
        out.append(mk(f"status/{stamp}", status, status_at, ev.CaseStatusChanged(status)))
        if status == "closed" or _value(r, fhir.CP_DELETED, "valueBoolean") is True:
            out.append(mk(f"closed/{stamp}", "1", status_at, ev.CaseClosed()))
        elif status == "passive":
            out.append(mk(f"passivated/{stamp}", "1", status_at, ev.CasePassivated()))
    return out


def procedure_request(r: dict, cpr_of: CprOf) -> list[ev.CanonicalEvent]:
    rid = _resource_id(r)
    key = f"ProcedureRequest/{rid}"
    person = _person(r, cpr_of)
    case_key = _case_key((r.get("basedOn") or [None])[0], key)
    period = _value(r, fhir.GRANT_PERIOD, "valuePeriod", True)
    try:
        valid_from = fhir.parse_date(period["start"])
        valid_to = fhir.parse_date(period["end"]) if period.get("end") else None
    except (KeyError, TypeError, ValueError):
        raise MappingError(f"{key} period {period!r} is not a valid period") from None
    law, paragraph = _law(_value(r, fhir.GRANT_LEGAL_PARAGRAPH, "valueString", True))
    performer = r.get("performer") or {}
    unit_id = fhir.ref_id(performer, "Organization")
    if unit_id is None:
        raise MappingError(f"{key} has no performer organisation")
    codings = (r.get("code") or {}).get("coding") or [{}]
    rate = _value(r, fhir.GRANT_RATE, "valueDecimal")
    unit = _value(r, fhir.GRANT_RATE_UNIT, "valueString")
    hours = float(Decimal(str(rate))) if rate is not None and unit == "hours/week" else None
    monthly = float(Decimal(str(rate))) if rate is not None and unit == "DKK/month" else None
    decided = fhir.parse_date(r["authoredOn"]) if r.get("authoredOn") else None
    meta = r.get("meta") or {}
    updated = _instant(meta.get("lastUpdated"), f"{key} meta.lastUpdated")
    version = str(meta.get("versionId") or "1")
    awarded_at = datetime.combine(decided or valid_from, updated.timetz())
    extent = _value(r, fhir.GRANT_REMARK, "valueString")

    def mk(suffix: str, ver: str, at: datetime, payload: ev.Payload) -> ev.CanonicalEvent:
        return event(SYSTEM, f"{key}/{suffix}", ver, at, payload, person=person,
                     case_key=case_key)

    out = [mk("awarded", "1", min(awarded_at, updated), ev.GrantAwarded(
        grant_id=rid, kind=_value(r, fhir.GRANT_CASE_TYPE, "valueString") or "service",
        law=law, paragraph=paragraph, title=codings[0].get("display") or paragraph,
        granting_unit_id=unit_id, granting_unit_name=performer.get("display") or unit_id,
        valid_from=valid_from, valid_to=valid_to, extent=extent, hours_per_week=hours,
        monthly_rate=monthly, decided_on=decided))]
    status = r.get("status")
    if status in ("completed", "revoked", "entered-in-error"):
        ended = valid_to or updated.date()
        out.append(mk("ended", "1", updated, ev.GrantEnded(grant_id=rid, ended_on=ended,
                                                           reason=status)))
    elif version != "1":
        out.append(mk("changed", version, updated, ev.GrantChanged(
            grant_id=rid, valid_to=valid_to, extent=extent, hours_per_week=hours,
            monthly_rate=monthly)))
    return out


def task(r: dict, cpr_of: CprOf) -> list[ev.CanonicalEvent]:
    rid = _resource_id(r)
    key = f"Basic/{rid}"
    person = _person(r, cpr_of)
    case_key = _case_key(_value(r, fhir.TASK_CASE, "valueReference"), key)
    created = ((r.get("meta") or {}).get("extension") or [])
    at = next((e.get("valueDateTime") for e in created if e.get("url") == fhir.SYSTEM_CREATED),
              (r.get("meta") or {}).get("lastUpdated"))
    requester = fhir.ref_id(_value(r, fhir.TASK_REQUESTER, "valueReference"), "Practitioner")
    return [event(SYSTEM, key, "1", _instant(at, f"{key} created"), ev.CaseActionRecorded(
        action_id=rid, action_type=_value(r, fhir.TASK_TYPE, "valueString", True),
        subtype=_value(r, fhir.TASK_TYPE + "/subtype", "valueString"),
        title=_value(r, fhir.TASK_TITLE, "valueString")),
        person=person, case_key=case_key, actor=requester)]


def communication(r: dict, cpr_of: CprOf) -> list[ev.CanonicalEvent]:
    rid = _resource_id(r)
    key = f"Communication/{rid}"
    person = _person(r, cpr_of)
    case_key = _case_key((r.get("basedOn") or [None])[0], key)
    at = _instant(r.get("sent") or r.get("received"), f"{key} sent")
    payload = r.get("payload") or []
    text = "\n".join(p.get("contentString", "") for p in payload if isinstance(p, dict)) or None
    category = (r.get("category") or [{}])[0].get("text")
    return [event(SYSTEM, key, "1", at, ev.CaseActionRecorded(
        action_id=rid, action_type="journal_note",
        subtype=category if category != "journal_note" else None,
        title=_value(r, fhir.COMMUNICATION_TITLE, "valueString"), text=text),
        person=person, case_key=case_key,
        actor=fhir.ref_id(r.get("sender"), "Practitioner"))]
