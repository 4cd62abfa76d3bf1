"""SBSYS cases and journal notes -> canonical events. Pure functions; a case that cannot be
mapped raises ``MappingError`` with the reason.

SBSYS shows current state only (no feed, no status history), so dedupe keys come from the state:
``<Nummer>/opened``, ``<Nummer>/status/<status id>``, ``<Nummer>/caseworker/<login>``,
``<Nummer>/note/<Uuid>``. Reading the same state again stores nothing. A status left and
returned to between two reads is not seen (documented in docs/connectors/sbsys.md).

A coordinated-pathway case (template "Sammenhængende borgerforløb") is the pathway, not a
department's case: it becomes ``PathwayStarted`` (members = its parties, rule = the Glasplade key
in its title, if any), ``PathwayMembersChanged`` (its parties as of its last change),
``PathwayTovholderAssigned`` (its Behandler) and ``PathwayClosed`` (passive or closed).
Counting it as a case would keep the very match that created it alive.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import datetime

from connectors import MappingError, event
from connectors.sbsys import dialect as d
from connectors.snapshot import CaseState, change_version
from hub.domain import cpr as cprs
from hub.domain import events as ev

SYSTEM = "sbsys"
_TAG = re.compile(r"<[^>]+>")
_RULE_KEY = re.compile(r"\[glasplade:([A-Za-z0-9._-]+):[^\]\s]*\]")


def _time(value, what: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise MappingError(f"{what} is missing")
    try:
        return d.parse_local(value)
    except ValueError:
        raise MappingError(f"{what} {value!r} is not a timestamp") from None


def case_key(sag: dict) -> str:
    nummer = sag.get("Nummer")
    if not isinstance(nummer, str) or not nummer:
        raise MappingError("case has no Nummer")
    return f"{SYSTEM}:{nummer}"


def person_of(sag: dict) -> str:
    primary = sag.get("PrimaryPart") or {}
    raw = primary.get("CPRnummer") or primary.get("CprNummer")
    if not isinstance(raw, str) or not raw:
        raise MappingError(f"case {sag.get('Nummer')} has no primary party CPR number")
    cpr = d.cpr_plain(raw)
    if not cprs.is_valid_form(cpr):
        raise MappingError(f"case {sag.get('Nummer')}: primary party CPR number is not of "
                           "valid form")
    return cpr


def _common(sag: dict, statuses: dict[int, dict]) -> tuple[
        str, str, str, datetime, datetime, dict, str, dict, str | None]:
    """What every case reads first: key, number, subject, the two times, the unit, the status
    and its state (``SagsTilstand``, from the status list when the case does not carry it)."""
    key = case_key(sag)
    nummer = key.split(":", 1)[1]
    person = person_of(sag)
    opened = _time(sag.get("Opstaaet"), f"case {nummer} Opstaaet")
    changed = _time(sag.get("SenestAendret"), f"case {nummer} SenestAendret")
    unit = sag.get("Ansaettelsessted") or {}
    unit_id = str(unit.get("Id") or "")
    if not unit_id:
        raise MappingError(f"case {nummer} has no Ansaettelsessted")
    status = sag.get("SagsStatus") or {}
    state = status.get("SagsTilstand") or (statuses.get(status.get("Id")) or {}).get(
        "SagsTilstand")
    return key, nummer, person, opened, changed, unit, unit_id, status, state


def case_events(sag: dict, statuses: dict[int, dict], department: str,
                known_of: Callable[[str], CaseState | None]) -> list[ev.CanonicalEvent]:
    """The case's events, against what the store already knows of it (``known_of(case key)``:
    None for a case not seen before). A status or caseworker is an event only when it differs
    from the store's, keyed by the change (``change_version``): so a case that returns to an
    earlier status or caseworker records the return, and a case read again unchanged records
    nothing."""
    key, nummer, person, opened, changed, unit, unit_id, status, state = _common(sag, statuses)
    canonical = d.NAME_TO_STATUS.get(status.get("Navn") or "") or d.STATE_TO_STATUS.get(
        state or "")
    if canonical is None:
        raise MappingError(f"case {nummer} has unknown status {status.get('Navn')!r}")
    behandler = sag.get("Behandler") or {}
    login = behandler.get("Brugernavn")

    def mk(suffix: str, at: datetime, payload: ev.Payload, version: str = "1"
           ) -> ev.CanonicalEvent:
        return event(SYSTEM, f"{nummer}/{suffix}", version, at, payload, person=person,
                     case_key=key, actor=login)

    out = [mk("opened", opened, ev.CaseOpened(
        department=department, unit_id=unit_id, unit_name=unit.get("Navn") or unit_id,
        case_type=(sag.get("SagSkabelon") or {}).get("Navn") or "sag", status="open",
        title=sag.get("SagsTitel")))]
    known = known_of(key) or CaseState()
    if login and login != known.caseworker_id:
        n = known.caseworker_changes + 1
        out.append(mk("caseworker", opened if changed <= opened else changed,
                      ev.CaseworkerAssigned(caseworker_id=login,
                                            caseworker_name=behandler.get("Navn") or login,
                                            unit_id=str(behandler.get(
                                                "AnsaettelsesstedIdentity") or unit_id)),
                      change_version(n, known.caseworker_id, login)))
    old = known.status or "open"
    if canonical != old:
        n = known.status_changes + 1
        out.append(mk("status", changed, ev.CaseStatusChanged(status=canonical,
                                                              previous_status=old),
                      change_version(n, old, canonical)))
        if state == "Afsluttet":
            out.append(mk("closed", changed, ev.CaseClosed(
                reason=status.get("SagsStatusKommentar")), str(n)))
        elif state == "Passiv":
            out.append(mk("passivated", changed, ev.CasePassivated(
                reason=status.get("SagsStatusKommentar")), str(n)))
    return out


def note_events(sag: dict, notes: list[dict]) -> list[ev.CanonicalEvent]:
    key = case_key(sag)
    nummer = key.split(":", 1)[1]
    person = person_of(sag)
    out = []
    for n in notes:
        uid = n.get("Uuid")
        if not uid:
            raise MappingError(f"case {nummer}: a journal note has no Uuid")
        text = html.unescape(_TAG.sub("", re.sub(r"<br\s*/?>", "\n", n.get("Note") or "")))
        out.append(event(SYSTEM, f"{nummer}/note/{uid}", "1",
                         _time(n.get("Oprettet"), f"note {uid} Oprettet"),
                         ev.CaseActionRecorded(action_id=uid, action_type="journal_note",
                                               title=n.get("Overskrift"), text=text or None),
                         person=person, case_key=key,
                         actor=(n.get("OprettetAf") or {}).get("LogonId")))
    return out


# --- coordinated-pathway cases -------------------------------------------------------------------


def is_pathway(sag: dict, template: str = d.PATHWAY_TEMPLATE) -> bool:
    return (sag.get("SagSkabelon") or {}).get("Navn") == template


def pathway_id(sag: dict) -> str:
    return case_key(sag)


def rule_of(title: str | None) -> str | None:
    """The rule id in a Glasplade key ``[glasplade:<rule id>:<subject>]`` in a case title."""
    m = _RULE_KEY.search(title or "")
    return m.group(1) if m else None


def _members(sag: dict, primary: str) -> tuple[str, ...]:
    found = [primary]
    for p in sag.get("Parter") or []:
        raw = p.get("CPRnummer") or p.get("CprNummer")
        cpr = d.cpr_plain(raw) if isinstance(raw, str) else ""
        if p.get("PartType") == "Person" and cprs.is_valid_form(cpr):
            found.append(cpr)
    return tuple(dict.fromkeys(found))


def pathway_events(sag: dict, statuses: dict[int, dict]) -> list[ev.CanonicalEvent]:
    """A pathway case's events (``Parter`` in ``sag``: its parties, as the search with
    ``InkluderParterIResultat`` gives them)."""
    key, nummer, person, opened, changed, unit, unit_id, status, state = _common(sag, statuses)
    behandler = sag.get("Behandler") or {}
    login = behandler.get("Brugernavn")
    pid, rid = pathway_id(sag), f"{nummer}/pathway"

    def mk(record: str, version: str, at: datetime, payload: ev.Payload) -> ev.CanonicalEvent:
        return event(SYSTEM, record, version, at, payload, person=person, actor=login)

    members = _members(sag, person)
    out = [mk(rid, "started", opened, ev.PathwayStarted(
        pathway_id=pid, anchor_unit_id=unit_id, anchor_unit_name=unit.get("Navn") or unit_id,
        rule_id=rule_of(sag.get("SagsTitel")), members=members)),
        # The member set as of the case's last change (SenestAendret, milliseconds, moves with
        # every change of parties): parties added or removed later reach the store, also a set
        # that returns to an earlier one. The first read repeats the started event's set.
        mk(f"{nummer}/members", changed.isoformat(), max(opened, changed),
           ev.PathwayMembersChanged(pathway_id=pid, members=members))]
    if login:
        out.append(mk(f"{nummer}/tovholder/{login}", "1", max(opened, changed),
                      ev.PathwayTovholderAssigned(
                          pathway_id=pid, caseworker_id=login,
                          caseworker_name=behandler.get("Navn") or login,
                          unit_id=str(behandler.get("AnsaettelsesstedIdentity") or unit_id))))
    if state in ("Passiv", "Afsluttet"):
        comment = status.get("SagsStatusKommentar") or ""
        reason = ("no_longer_in_target_group" if comment.startswith(d.PASSIVATED_BY_GLASPLADE)
                  else "other")
        out.append(mk(rid, f"closed/{status.get('Id')}", changed,
                      ev.PathwayClosed(pathway_id=pid, reason=reason)))
    return out
