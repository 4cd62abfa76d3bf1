"""Canonical events for small hand-made municipalities (synthetic CPR numbers only)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime

from hub.domain import events as ev
from hub.domain.cpr import synthetic_cpr

_seq = itertools.count(1)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
AS_OF = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def cpr(born: date, serial: int = 0, substitute: bool = False) -> str:
    return synthetic_cpr(born, serial, substitute=substitute)


def event(payload: ev.Payload, *, person: str | None = None, case: str | None = None,
          source: str = "dubu", at: datetime = T0, record: str | None = None
          ) -> ev.CanonicalEvent:
    n = next(_seq)
    return ev.CanonicalEvent(
        event_id=uuid.uuid4(), source_system=source, source_record_id=record or f"r{n}",
        source_version="1", occurred_at=at, payload=payload, person=person, case_key=case)


def address(street: str = "Glasvej", number: str = "1", address_id: str | None = None
            ) -> ev.Address:
    return ev.Address(street, number, "5000", "Odense C", address_id=address_id)


def person(who: str, born: date, addr: ev.Address | None = None, source: str = "cpr",
           first: str = "Test", last: str = "Person") -> ev.CanonicalEvent:
    return event(ev.PersonRegistered(first, last, born, "K", address=addr), person=who,
                 source=source)


def open_case(who: str, case_key: str, department: str, unit: str = "U1",
              status: str = "open") -> ev.CanonicalEvent:
    return event(ev.CaseOpened(department, unit, unit, "sag", status), person=who, case=case_key,
                 source=case_key.split(":")[0])


def close_case(who: str, case_key: str, at: datetime = T0) -> ev.CanonicalEvent:
    return event(ev.CaseClosed("done"), person=who, case=case_key, at=at,
                 source=case_key.split(":")[0])


def relation(who: str, other: str, rel: str, change: str = "added") -> ev.CanonicalEvent:
    return event(ev.PersonRelationChanged(rel, other, change), person=who, source="cpr")


def grant(who: str, case_key: str, grant_id: str, unit: str, paragraph: str = "85",
          law: str = "SEL", valid_from: date = date(2025, 1, 1), kind: str = "service",
          applied: date | None = None, decided: date | None = None) -> ev.CanonicalEvent:
    return event(ev.GrantAwarded(grant_id, kind, law, paragraph, "Støtte", unit, unit,
                                 valid_from, applied_on=applied, decided_on=decided),
                 person=who, case=case_key, source=case_key.split(":")[0])
