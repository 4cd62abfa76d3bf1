"""Fasit records (cases from ``getcases``, journal notes, person-group markings, the
write-back's lines in "Kommunens markeringer") -> canonical.

Cases become ``CaseSnapshot``s (their status changes are found by diffing, as Fasit has no feed
for them); journal notes and markings carry their own ids and become events directly. A record
that cannot be mapped raises ``Malformed``; the reason names the field, never its value.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

from connectors.fasit.dates import from_wire, parse_timestamp
from connectors.snapshot import CaseSnapshot, CaseworkerRef, make_event
from hub.domain import cpr as cprmod
from hub.domain import events as ev

SOURCE_SYSTEM = "fasit"

#: Fasit case status (display name) -> canonical status.
STATUSES = {"Aktiv": "open", "Passiv": "passive", "Afsluttet": "closed"}
#: canonical (and the synthetic model's) status -> Fasit's display name.
STATUS_OF = {"open": "Aktiv", "active": "Aktiv", "passive": "Passiv", "closed": "Afsluttet",
             "dismissed": "Afsluttet", "completed": "Afsluttet", "cancelled": "Afsluttet"}
#: Journal note types -> canonical action types.
NOTE_TYPES = {"Notat": "journal_note", "Aktivitet": "activity", "Møde": "meeting",
              "Afgørelse": "decision", "Opfølgning": "follow_up", "Ansøgning": "application"}
NOTE_TYPE_OF = {v: k for k, v in NOTE_TYPES.items()}


class Malformed(ValueError):
    """A Fasit record that cannot become canonical events; ``str()`` is the dead-letter reason."""


def case_key(case_id: str) -> str:
    return f"{SOURCE_SYSTEM}:{case_id}"


def cpr_of(formatted: Any) -> str:
    """``CitizenCprFormatted`` (DDMMYY-NNNN) -> 10 digits."""
    digits = formatted.replace("-", "") if isinstance(formatted, str) else ""
    if not cprmod.is_valid_form(digits):
        raise Malformed("CitizenCprFormatted is missing or not a CPR number")
    return digits


def _text_id(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
        raise Malformed(f"{name} is missing")
    return str(value)


def _when(record: dict[str, Any], name: str) -> datetime:
    value = record.get(name)
    if not isinstance(value, str):
        raise Malformed(f"{name} is missing")
    try:
        return parse_timestamp(value)
    except ValueError:
        raise Malformed(f"{name} is not an ISO timestamp") from None


def _day(record: dict[str, Any], name: str) -> date | None:
    value = record.get(name)
    if value is None:
        return None
    try:
        return from_wire(value)
    except (ValueError, TypeError, AttributeError):
        raise Malformed(f"{name} is not a Fasit date") from None


def to_snapshot(record: Any, person: str) -> CaseSnapshot:
    if not isinstance(record, dict):
        raise Malformed(f"expected a case object, got {type(record).__name__}")
    case_id = _text_id(record, "caseId")
    status = record.get("caseStatus")
    if status not in STATUSES:
        raise Malformed(f"caseStatus {status!r} is not a known Fasit status")
    unit = record.get("responsibleUnit") or {}
    if not isinstance(unit, dict) or not unit.get("id"):
        raise Malformed("responsibleUnit.id is missing")
    worker = record.get("caseworker")
    caseworker = None
    if isinstance(worker, dict) and worker.get("id"):
        caseworker = CaseworkerRef(str(worker["id"]), str(worker.get("name") or ""),
                                   str(unit["id"]), worker.get("email"))
    basis = record.get("legalBasis") or {}
    case_type = (record.get("caseType") or {}).get("name") or "Sag"
    closed = record.get("closedOn")
    return CaseSnapshot(
        case_key=case_key(case_id), source_record_id=f"Case/{case_id}", person=person,
        department=str(record.get("department") or "JOBCENTER"), unit_id=str(unit["id"]),
        unit_name=str(unit.get("name") or unit["id"]), case_type=str(case_type),
        status=STATUSES[status], opened_at=_when(record, "createdOn"),
        title=record.get("title"), law=basis.get("law"), paragraph=basis.get("paragraph"),
        caseworker=caseworker, closed_at=_when(record, "closedOn") if closed else None)


def note_event(record: Any, person: str) -> ev.CanonicalEvent:
    if not isinstance(record, dict):
        raise Malformed(f"expected a journal note, got {type(record).__name__}")
    nid = _text_id(record, "id")
    case_id = record.get("caseId")
    note_type = record.get("noteType")
    payload = ev.CaseActionRecorded(
        action_id=f"JournalNote/{nid}", action_type=NOTE_TYPES.get(note_type, "journal_note"),
        subtype=record.get("subType") or (note_type if note_type not in NOTE_TYPES else None),
        title=record.get("title"), text=record.get("text"))
    return make_event(SOURCE_SYSTEM, f"JournalNote/{nid}", "1", _when(record, "eventDate"),
                      payload, person=person, case_key=case_key(case_id) if case_id else None)


def marking_events(record: Any, person: str, today: date) -> list[ev.CanonicalEvent]:
    """MarkingSet once per marking; MarkingEnded once its end date has come."""
    if not isinstance(record, dict):
        raise Malformed(f"expected a person-group marking, got {type(record).__name__}")
    mid = _text_id(record, "id")
    group = record.get("personGroupName")
    if not isinstance(group, str) or not group:
        raise Malformed("personGroupName is missing")
    start = _day(record, "startDate")
    if start is None:
        raise Malformed("startDate is missing")
    end = _day(record, "endDate")
    rid = f"PersonGroupMarking/{mid}"
    out = [make_event(SOURCE_SYSTEM, rid, "set", _midnight(start), ev.MarkingSet(
        marking_id=mid, system=SOURCE_SYSTEM, marking_type=group, valid_from=start,
        valid_to=end), person=person, case_key=None)]
    if end is not None and end <= today:
        out.append(make_event(SOURCE_SYSTEM, rid, f"ended:{end.isoformat()}", _midnight(end),
                              ev.MarkingEnded(marking_id=mid, system=SOURCE_SYSTEM,
                                              marking_type=group, ended_on=end),
                              person=person, case_key=None))
    return out


#: The marking type of a "has a case in another system" line in the citizen's note field.
OTHER_SYSTEM_MARKING = "Sag i andet system"


def note_marking_events(citizen_id: str, key: str, person: str, since: date,
                        line: str | None, ended_on: date | None = None, on: date | None = None
                        ) -> list[ev.CanonicalEvent]:
    """A "case in another system" line as a marking: ``MarkingSet`` (note = the line; a changed
    line is a new version, occurring ``on``) or, with ``ended_on``, ``MarkingEnded``. The
    marking is the line for ``key`` on one citizen, from ``since`` (the day it was first set in
    this episode)."""
    mid = f"{citizen_id}:{key}"
    rid = f"CitizenNote/{mid}"
    if ended_on is not None:
        return [make_event(SOURCE_SYSTEM, rid, f"ended:{ended_on.isoformat()}",
                           _midnight(ended_on), ev.MarkingEnded(
                               marking_id=mid, system=SOURCE_SYSTEM,
                               marking_type=OTHER_SYSTEM_MARKING, ended_on=ended_on),
                           person=person, case_key=None)]
    digest = hashlib.sha256((line or "").encode()).hexdigest()[:12]
    return [make_event(SOURCE_SYSTEM, rid, f"set:{since.isoformat()}:{digest}",
                       _midnight(max(since, on or since)),
                       ev.MarkingSet(marking_id=mid, system=SOURCE_SYSTEM,
                                     marking_type=OTHER_SYSTEM_MARKING, valid_from=since,
                                     note=line), person=person, case_key=None)]


def _midnight(day: date) -> datetime:
    from hub.ingest.validate import LOCAL_TZ

    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
