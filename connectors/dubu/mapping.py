"""DUBU records (OData ``Sag`` with its expansions, ``Aktivitet``) -> canonical case snapshots.

Field names are DUBU's (docs/connectors/dubu.md lists which are seen in public clients and which
are inferred). A record that cannot be mapped raises ``Malformed`` with a reason that names the
field but never its value (values can be CPR numbers).
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from connectors.snapshot import ActionSnapshot, CaseSnapshot, CaseworkerRef
from hub.domain import cpr
from hub.ingest.validate import LOCAL_TZ

SOURCE_SYSTEM = "dubu"

#: ``status.brugervendtNoegle`` -> (display title, canonical status). The public client treats
#: 2, 5, 6 and 7 as not active; the titles and the meaning of 3 and 4 are inferred.
STATUSES: dict[str, tuple[str, str]] = {
    "SagStatus1": ("Åben", "open"),
    "SagStatus2": ("Lukket", "closed"),
    "SagStatus3": ("Aktiv", "active"),
    "SagStatus4": ("Passiv", "passive"),
    "SagStatus5": ("Henlagt", "dismissed"),
    "SagStatus6": ("Afsluttet", "completed"),
    "SagStatus7": ("Annulleret", "cancelled"),
}
STATUS_KEY = {canonical: key for key, (_, canonical) in STATUSES.items()}

#: Activity type titles -> canonical action types; any other type is an "activity" whose
#: subtype keeps DUBU's title.
ACTIVITY_TYPES = {
    "Notat": "journal_note",
    "Henvendelse": "activity",
    "Møde": "meeting",
    "Afgørelse": "decision",
    "Opfølgning": "follow_up",
    "Ansøgning": "application",
    "Statusudtalelse": "journal_note",
}
ACTIVITY_TITLE = {v: k for k, v in ACTIVITY_TYPES.items() if k != "Statusudtalelse"}


class Malformed(ValueError):
    """A DUBU record that cannot become canonical events; ``str()`` is the dead-letter reason."""


def case_key(sag_id: Any) -> str:
    return f"{SOURCE_SYSTEM}:{sag_id}"


def sag_record_id(sag_id: Any) -> str:
    return f"Sag/{sag_id}"


def timestamp(value: Any, name: str) -> datetime:
    """ISO date or timestamp; a date is local midnight, a naive timestamp local time."""
    if isinstance(value, str):
        try:
            if len(value) == 10:
                value = datetime.combine(date.fromisoformat(value), time())
            else:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Malformed(f"{name} is not an ISO date or timestamp") from None
    if not isinstance(value, datetime):
        raise Malformed(f"{name} is missing or not a timestamp")
    return value if value.tzinfo else value.replace(tzinfo=LOCAL_TZ)


def _obj(record: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Malformed(f"{name} is not an object")
    return value


def sag_id_of(record: Any) -> str:
    if not isinstance(record, dict):
        raise Malformed(f"expected a Sag object, got {type(record).__name__}")
    sag_id = record.get("id")
    if isinstance(sag_id, bool) or not isinstance(sag_id, int | str) or sag_id == "":
        raise Malformed("id is missing or not an integer")
    return str(sag_id)


def to_snapshot(record: Any, activities: list[ActionSnapshot], department: str,
                detected_at: datetime) -> CaseSnapshot:
    """One ``Sag`` (with ``primaerPerson``, ``primaerBehandler``, ``afdeling`` expanded)."""
    sag_id = sag_id_of(record)
    person = _obj(record, "primaerPerson")
    cprnr = person.get("cprnr") if person else None
    if not isinstance(cprnr, str) or not cpr.is_valid_form(cprnr):
        raise Malformed("primaerPerson.cprnr is missing or not a CPR number")
    status = _obj(record, "status") or {}
    key = status.get("brugervendtNoegle")
    if key not in STATUSES:
        raise Malformed(f"status.brugervendtNoegle {key!r} is not a known SagStatus")
    unit = _obj(record, "afdeling") or {}
    unit_id = unit.get("brugervendtNoegle") or unit.get("orgEnhedId")
    if unit_id in (None, ""):
        raise Malformed("afdeling.orgEnhedId is missing")
    sagstype = _obj(record, "sagstype") or {}
    basis = _obj(record, "lovgrundlag") or {}
    worker = _obj(record, "primaerBehandler")
    caseworker = None
    if worker is not None:
        worker_id = worker.get("brugernavn") or worker.get("id")
        if worker_id in (None, ""):
            raise Malformed("primaerBehandler.id is missing")
        caseworker = CaseworkerRef(caseworker_id=str(worker_id),
                                   name=str(worker.get("navn") or ""), unit_id=str(unit_id),
                                   contact=worker.get("email"))
    opened = record.get("startDato")
    closed = record.get("slutDato")
    return CaseSnapshot(
        case_key=case_key(sag_id), source_record_id=sag_record_id(sag_id), person=cprnr,
        department=department, unit_id=str(unit_id), unit_name=str(unit.get("navn") or unit_id),
        case_type=str(sagstype.get("titel") or sagstype.get("brugervendtNoegle") or "Sag"),
        status=STATUSES[key][1],
        opened_at=timestamp(opened, "startDato") if opened else detected_at,
        title=record.get("titel"), law=basis.get("lov"), paragraph=basis.get("paragraf"),
        caseworker=caseworker,
        closed_at=timestamp(closed, "slutDato") if closed else None,
        actions=tuple(activities))


def to_action(record: Any) -> ActionSnapshot:
    """One ``Aktivitet`` from ``Aktivitet/Default.GetBySag``."""
    if not isinstance(record, dict):
        raise Malformed(f"expected an Aktivitet object, got {type(record).__name__}")
    act_id = record.get("id")
    if isinstance(act_id, bool) or not isinstance(act_id, int | str) or act_id == "":
        raise Malformed("Aktivitet.id is missing")
    kind = _obj(record, "type") or {}
    sub = _obj(record, "undertype") or {}
    title = kind.get("titel")
    action_type = ACTIVITY_TYPES.get(title, "activity")
    subtype = sub.get("titel") or (title if title not in ACTIVITY_TYPES else None)
    return ActionSnapshot(
        action_id=f"Aktivitet/{act_id}", action_type=action_type,
        occurred_at=timestamp(record.get("haendelsesDato"), "Aktivitet.haendelsesDato"),
        source_record_id=f"Aktivitet/{act_id}", subtype=subtype,
        title=record.get("beskrivelse"), text=record.get("notat"))
