"""Case history: every event of a case as a timeline row (business time, recorded time, source
system, actor, what changed in words). Append-only: one row per event, keyed by its position.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import orjson
import sqlalchemy as sa

from hub.domain import events as ev
from projections.base import Projection
from projections.db import Instant
from projections.rows import insert_tuples

NAME = "case_history"
metadata = sa.MetaData()
TS = Instant()

entries = sa.Table(
    f"{NAME}_entries", metadata,
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("case_key", sa.Text, nullable=False),
    sa.Column("person_key", sa.String(64)),
    sa.Column("occurred_at", TS, nullable=False),
    sa.Column("recorded_at", TS),
    sa.Column("source_system", sa.Text, nullable=False),
    sa.Column("actor", sa.Text),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    # ^ the payload as JSON text (orjson of the dataclass: dates as ISO strings)
    sa.Index(f"ix_{NAME}_entries_case", "case_key", "occurred_at", "position"),
)

TOPICS = (
    "CaseOpened", "CaseStatusChanged", "CaseLegalBasisChanged", "CaseworkerAssigned",
    "CaseworkerUnassigned", "CaseActionRecorded", "CasePassivated", "CaseClosed", "CaseReopened",
    "GrantAwarded", "GrantChanged", "GrantEnded",
)

_ROLE = {"primary": "primær sagsbehandler", "secondary": "sekundær sagsbehandler",
         "tovholder": "tovholder"}


def _d(value: date | None) -> str:
    return value.isoformat() if value else "ukendt"


def _basis(law: str | None, paragraph: str | None) -> str:
    if not law and not paragraph:
        return "uden lovgrundlag"
    return f"{law or ''} § {paragraph or '?'}".strip()


def summarize(p: ev.Payload) -> str:
    """What the event changed, in words (Danish: the dashboard shows it as is)."""
    match p:  # (cases are tried in order: the most frequent event first)
        case ev.CaseActionRecorded():
            kind = p.action_type + (f"/{p.subtype}" if p.subtype else "")
            return f"Handling registreret ({kind})" + (f": {p.title}" if p.title else "")
        case ev.CaseOpened():
            return (f"Sag oprettet i {p.department}, {p.unit_name} ({p.case_type}), status "
                    f"'{p.status}', {_basis(p.law, p.paragraph)}")
        case ev.CaseStatusChanged():
            before = f"'{p.previous_status}'" if p.previous_status else "ukendt"
            return f"Status ændret fra {before} til '{p.status}'"
        case ev.CaseLegalBasisChanged():
            return f"Lovgrundlag ændret til {_basis(p.law, p.paragraph)} fra {_d(p.valid_from)}"
        case ev.CaseworkerAssigned():
            return (f"{p.caseworker_name} tilknyttet som {_ROLE.get(p.role, p.role)} "
                    f"(enhed {p.unit_id})")
        case ev.CaseworkerUnassigned():
            return f"Sagsbehandler {p.caseworker_id} fjernet som {_ROLE.get(p.role, p.role)}"
        case ev.CasePassivated():
            return "Sag passiveret" + (f": {p.reason}" if p.reason else "")
        case ev.CaseClosed():
            return "Sag lukket" + (f": {p.reason}" if p.reason else "")
        case ev.CaseReopened():
            return "Sag genåbnet" + (f": {p.reason}" if p.reason else "")
        case ev.GrantAwarded():
            until = p.valid_to.isoformat() if p.valid_to else "ubestemt"
            period = f"{_d(p.valid_from)} til {until}"
            return (f"Bevilling '{p.title}' efter {_basis(p.law, p.paragraph)} bevilget af "
                    f"{p.granting_unit_name}, {period}")
        case ev.GrantChanged():
            changes = []
            if p.valid_to is not None:
                changes.append(f"gyldig til {p.valid_to.isoformat()}")
            if p.extent is not None:
                changes.append(f"omfang {p.extent}")
            if p.hours_per_week is not None:
                changes.append(f"{p.hours_per_week:g} timer/uge")
            if p.monthly_rate is not None:
                changes.append(f"{p.monthly_rate:,.2f} kr./md.")
            return f"Bevilling {p.grant_id} ændret: " + (", ".join(changes) or "ingen felter")
        case ev.GrantEnded():
            return (f"Bevilling {p.grant_id} ophørt {_d(p.ended_on)}"
                    + (f": {p.reason}" if p.reason else ""))
    return type(p).__name__


def details(p: ev.Payload) -> str:
    """The payload's fields as JSON text (dates as ISO strings)."""
    return orjson.dumps(p).decode()


COLUMNS = ("position", "case_key", "person_key", "occurred_at", "recorded_at", "source_system",
           "actor", "event_type", "summary", "details")


def entry_values(e: ev.CanonicalEvent) -> tuple[Any, ...]:
    """The timeline row of one case event as values in ``COLUMNS`` order (pure)."""
    p = e.payload
    return (e.position, e.case_key, e.person_key, e.occurred_at, e.recorded_at,
            e.source_system, e.actor, type(p).__name__, summarize(p), details(p))


class CaseHistory(Projection):
    name = NAME
    version = 1
    topics = TOPICS

    def define_tables(self, metadata: sa.MetaData) -> None:
        entries.to_metadata(metadata)

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        insert_tuples(conn, entries, COLUMNS, [entry_values(e) for e in events if e.case_key])


def create(person_key_of: object = None) -> CaseHistory:
    return CaseHistory()
