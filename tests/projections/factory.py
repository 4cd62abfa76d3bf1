"""Hand-made canonical events for projection tests (synthetic CPR numbers only)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta

from hub.domain import events as ev
from hub.domain.cpr import synthetic_cpr

_seq = itertools.count(1)
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def cpr(n: int, born: date | None = None) -> str:
    """A synthetic CPR number (fails modulus 11), distinct per ``n``."""
    return synthetic_cpr(born or date(1940, 1, 1) + timedelta(days=(97 * n) % 30000), n)


def event(payload, *, person: str | None = None, case: str | None = None,
          at: datetime | None = None, source: str = "demo", actor: str | None = None,
          record: str | None = None) -> ev.CanonicalEvent:
    n = next(_seq)
    return ev.CanonicalEvent(
        event_id=uuid.uuid4(), source_system=source,
        source_record_id=record or f"r{n}-{uuid.uuid4().hex[:8]}",
        source_version="1", occurred_at=at or T0 + timedelta(minutes=n), payload=payload,
        person=person, case_key=case, actor=actor)


def address(street: str = "Vestergade", number: str = "12", address_id: str = "dar-1"
            ) -> ev.Address:
    return ev.Address(street=street, house_number=number, postcode="5000", city="Odense C",
                      municipality_code="0461", address_id=address_id)
