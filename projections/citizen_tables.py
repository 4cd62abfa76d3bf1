"""Tables of the citizen overview (the glasplade). Declarations only: no engine, no I/O.

Every table has a single text primary key (``RowCache`` loads and writes by it) and an index
on each column a page view looks up by (person_key, case_key, address_id, name prefixes).
Read models are derived data in the protected database: they hold CPR numbers and names in
clear, like the store's decrypted events; nothing here is ever logged.
"""

from __future__ import annotations

import sqlalchemy as sa

from projections.db import Instant

NAME = "citizen_overview"
metadata = sa.MetaData()

#: Text compared byte-wise on PostgreSQL too, so a prefix range uses the btree index.
SearchText = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
TS = Instant()


def _t(name: str, *columns: sa.Column, indexes: tuple[str, ...] = ()) -> sa.Table:
    table = sa.Table(f"{NAME}_{name}", metadata, *columns)
    for col in indexes:
        sa.Index(f"ix_{NAME}_{name}_{col}", table.c[col])
    return table


persons = _t(
    "persons",
    sa.Column("person_key", sa.String(64), primary_key=True),
    sa.Column("cpr", sa.String(16)),
    sa.Column("registered", sa.Boolean, nullable=False),
    # The system the name and address came from: the CPR register wins over a fagsystem's own
    # registration (which may spell the name differently).
    sa.Column("name_source", sa.String(32)),
    sa.Column("first_name", sa.Text),
    sa.Column("last_name", sa.Text),
    sa.Column("name_search", SearchText),
    sa.Column("last_name_search", SearchText),
    sa.Column("birth_date", sa.Date),
    sa.Column("sex", sa.String(1)),
    sa.Column("street", sa.Text),
    sa.Column("house_number", sa.Text),
    sa.Column("floor", sa.Text),
    sa.Column("door", sa.Text),
    sa.Column("postcode", sa.Text),
    sa.Column("city", sa.Text),
    sa.Column("municipality_code", sa.Text),
    sa.Column("address_id", sa.Text),
    sa.Column("moved_in", sa.Date),
    sa.Column("civil_status", sa.String(2)),
    sa.Column("protected_address", sa.Boolean, nullable=False),
    sa.Column("died_on", sa.Date),
    sa.Column("emigrated", sa.Boolean, nullable=False),
    sa.Column("emigrated_to", sa.Text),
    sa.Column("updated_at", TS),
    indexes=("cpr", "name_search", "last_name_search", "address_id"),
)

relations = _t(
    "relations",
    sa.Column("relation_key", sa.Text, primary_key=True),
    sa.Column("person_key", sa.String(64), nullable=False),
    sa.Column("relation", sa.String(32), nullable=False),
    sa.Column("related_key", sa.String(64), nullable=False),
    sa.Column("related_cpr", sa.String(16)),
    sa.Column("since", sa.Date),
    indexes=("person_key", "related_key"),
)

cases = _t(
    "cases",
    sa.Column("case_key", sa.Text, primary_key=True),
    sa.Column("person_key", sa.String(64)),
    sa.Column("source_system", sa.Text),
    sa.Column("department", sa.Text),
    sa.Column("unit_id", sa.Text),
    sa.Column("unit_name", sa.Text),
    sa.Column("case_type", sa.Text),
    sa.Column("title", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("law", sa.Text),
    sa.Column("paragraph", sa.Text),
    sa.Column("legal_basis_valid_from", sa.Date),
    sa.Column("primary_caseworker_id", sa.Text),
    sa.Column("opened_at", TS),
    sa.Column("closed_at", TS),
    sa.Column("last_event_at", TS),
    indexes=("person_key",),
)

caseworkers = _t(
    "caseworkers",
    sa.Column("assignment_key", sa.Text, primary_key=True),
    sa.Column("case_key", sa.Text, nullable=False),
    sa.Column("caseworker_id", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("unit_id", sa.Text),
    sa.Column("contact", sa.Text),
    sa.Column("assigned_at", TS),
    indexes=("case_key",),
)

grants = _t(
    "grants",
    sa.Column("grant_key", sa.Text, primary_key=True),
    sa.Column("grant_id", sa.Text, nullable=False),
    sa.Column("source_system", sa.Text),
    sa.Column("case_key", sa.Text),
    sa.Column("person_key", sa.String(64)),
    sa.Column("kind", sa.Text),
    sa.Column("law", sa.Text),
    sa.Column("paragraph", sa.Text),
    sa.Column("title", sa.Text),
    sa.Column("granting_unit_id", sa.Text),
    sa.Column("granting_unit_name", sa.Text),
    sa.Column("valid_from", sa.Date),
    sa.Column("valid_to", sa.Date),
    sa.Column("extent", sa.Text),
    sa.Column("hours_per_week", sa.Float),
    sa.Column("monthly_rate", sa.Float),
    sa.Column("applied_on", sa.Date),
    sa.Column("decided_on", sa.Date),
    sa.Column("ended_on", sa.Date),
    sa.Column("end_reason", sa.Text),
    indexes=("person_key", "case_key"),
)

consents = _t(
    "consents",
    sa.Column("consent_id", sa.Text, primary_key=True),
    sa.Column("person_key", sa.String(64)),
    sa.Column("source_system", sa.Text),
    sa.Column("purpose", sa.Text),
    sa.Column("unit_ids", sa.JSON),
    sa.Column("valid_from", sa.Date),
    sa.Column("valid_until", sa.Date),
    sa.Column("given_at", TS),
    sa.Column("withdrawn_at", TS),
    sa.Column("withdrawn_reason", sa.Text),
    indexes=("person_key",),
)

markings = _t(
    "markings",
    sa.Column("marking_key", sa.Text, primary_key=True),
    sa.Column("person_key", sa.String(64)),
    sa.Column("marking_id", sa.Text, nullable=False),
    sa.Column("system", sa.Text, nullable=False),
    sa.Column("marking_type", sa.Text),
    sa.Column("valid_from", sa.Date),
    sa.Column("valid_to", sa.Date),
    sa.Column("ended_on", sa.Date),
    sa.Column("note", sa.Text),
    indexes=("person_key",),
)

pathways = _t(
    "pathways",
    sa.Column("pathway_id", sa.Text, primary_key=True),
    sa.Column("person_key", sa.String(64)),
    sa.Column("anchor_unit_id", sa.Text),
    sa.Column("anchor_unit_name", sa.Text),
    sa.Column("rule_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("started_at", TS),
    sa.Column("closed_at", TS),
    sa.Column("close_reason", sa.Text),
    sa.Column("tovholder_id", sa.Text),
    sa.Column("tovholder_name", sa.Text),
    sa.Column("tovholder_unit_id", sa.Text),
    sa.Column("meetings", sa.Integer, nullable=False),
    sa.Column("last_meeting_at", TS),
    sa.Column("last_meeting_type", sa.Text),
    sa.Column("plan_summary", sa.Text),
    sa.Column("progression", sa.Integer),
    indexes=("person_key",),
)

pathway_members = _t(
    "pathway_members",
    sa.Column("member_key", sa.Text, primary_key=True),
    sa.Column("pathway_id", sa.Text, nullable=False),
    sa.Column("person_key", sa.String(64), nullable=False),
    indexes=("pathway_id", "person_key"),
)

aliases = _t(
    "aliases",
    sa.Column("old_key", sa.String(64), primary_key=True),
    sa.Column("new_key", sa.String(64), nullable=False),
)


def normalize_name(text: str) -> str:
    """The form names are indexed and searched in: case-folded, single spaces."""
    return " ".join(text.casefold().split())


_EMPTY: dict[str, dict[str, object]] = {}


def new_row(table: sa.Table, **values: object) -> dict[str, object]:
    """A full row (every column present, so bulk upserts share one statement shape)."""
    empty = _EMPTY.get(table.name)
    if empty is None:
        empty = _EMPTY[table.name] = dict.fromkeys(c.name for c in table.columns)
    row = dict(empty)
    row.update(values)
    return row
