"""The typed, frozen results of ``projections.queries`` (re-exported there)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddressView:
    street: str | None
    house_number: str | None
    floor: str | None
    door: str | None
    postcode: str | None
    city: str | None
    municipality_code: str | None
    address_id: str | None

    @property
    def text(self) -> str:
        unit = ", ".join(x for x in (self.floor, self.door) if x)
        line = f"{self.street or ''} {self.house_number or ''}".strip()
        place = f"{self.postcode or ''} {self.city or ''}".strip()
        return f"{line}{', ' + unit if unit else ''}, {place}".strip(" ,")


@dataclass(frozen=True, slots=True)
class PersonSummary:
    person_key: str
    cpr: str | None
    registered: bool
    """False: known only from a fagsystem (no PersonRegistered yet)."""
    first_name: str | None
    last_name: str | None
    birth_date: date | None
    sex: str | None
    civil_status: str | None
    protected_address: bool
    address: AddressView | None
    address_hidden: bool
    died_on: date | None
    emigrated: bool

    @property
    def name(self) -> str:
        return f"{self.first_name or ''} {self.last_name or ''}".strip()

    def age(self, today: date) -> int | None:
        if self.birth_date is None:
            return None
        b = self.birth_date
        return today.year - b.year - ((today.month, today.day) < (b.month, b.day))


@dataclass(frozen=True, slots=True)
class HouseholdMember:
    person: PersonSummary
    relation: str | None
    """What the member is to the person: parent, child, spouse, co_resident, ... or None."""
    same_address: bool


@dataclass(frozen=True, slots=True)
class CaseworkerView:
    caseworker_id: str
    name: str | None
    unit_id: str | None
    role: str
    contact: str | None


@dataclass(frozen=True, slots=True)
class CaseView:
    case_key: str
    person_key: str | None
    source_system: str | None
    department: str | None
    unit_id: str | None
    unit_name: str | None
    case_type: str | None
    title: str | None
    status: str | None
    law: str | None
    paragraph: str | None
    legal_basis_valid_from: date | None
    opened_at: datetime | None
    closed_at: datetime | None
    last_event_at: datetime | None
    primary_caseworker: CaseworkerView | None
    caseworkers: tuple[CaseworkerView, ...]

    @property
    def active(self) -> bool:
        return self.status not in ("closed", "passive") and self.closed_at is None


@dataclass(frozen=True, slots=True)
class GrantView:
    grant_key: str
    grant_id: str
    source_system: str | None
    case_key: str | None
    kind: str | None
    law: str | None
    paragraph: str | None
    title: str | None
    granting_unit_id: str | None
    granting_unit_name: str | None
    valid_from: date | None
    valid_to: date | None
    extent: str | None
    hours_per_week: float | None
    monthly_rate: float | None
    ended_on: date | None
    active: bool


@dataclass(frozen=True, slots=True)
class ConsentView:
    consent_id: str
    purpose: str | None
    unit_ids: tuple[str, ...]
    valid_from: date | None
    valid_until: date | None
    withdrawn_at: datetime | None
    active: bool
    """Given, not withdrawn, and valid on the query's ``today``."""

    def covers(self, unit_id: str, purpose: str | None = None) -> bool:
        return self.active and unit_id in self.unit_ids and (
            purpose is None or self.purpose == purpose)


@dataclass(frozen=True, slots=True)
class MarkingView:
    marking_key: str
    marking_id: str
    system: str
    marking_type: str | None
    valid_from: date | None
    valid_to: date | None
    ended_on: date | None
    note: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class PathwayView:
    pathway_id: str
    person_key: str | None
    anchor_unit_id: str | None
    anchor_unit_name: str | None
    rule_id: str | None
    status: str
    started_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    tovholder: CaseworkerView | None
    member_keys: tuple[str, ...]
    meetings: int
    last_meeting_at: datetime | None
    last_meeting_type: str | None
    plan_summary: str | None
    progression: int | None


@dataclass(frozen=True, slots=True)
class SystemFlag:
    """The person has cases in this fagsystem / department."""

    source_system: str
    department: str | None
    active_cases: int
    cases: int


@dataclass(frozen=True, slots=True)
class CitizenOverview:
    person: PersonSummary
    household: tuple[HouseholdMember, ...]
    children: tuple[HouseholdMember, ...]
    cases: tuple[CaseView, ...]
    grants: tuple[GrantView, ...]
    consents: tuple[ConsentView, ...]
    markings: tuple[MarkingView, ...]
    pathways: tuple[PathwayView, ...]
    systems: tuple[SystemFlag, ...]
    as_of: date

    @property
    def active_consents(self) -> tuple[ConsentView, ...]:
        return tuple(c for c in self.consents if c.active)

    @property
    def pathway(self) -> PathwayView | None:
        """The coordinated pathway in progress, if any."""
        return next((p for p in self.pathways if p.status == "active"), None)

    def has_case_outside(self, source_system: str) -> bool:
        """The "has a case in another system" flag, seen from ``source_system``."""
        return any(f.source_system != source_system and f.active_cases for f in self.systems)


@dataclass(frozen=True, slots=True)
class HouseholdOverview:
    person_key: str
    address: AddressView | None
    members: tuple[CitizenOverview, ...]
    """The person first, then adults, then children (each a full overview)."""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    position: int
    case_key: str
    occurred_at: datetime
    recorded_at: datetime | None
    source_system: str
    actor: str | None
    event_type: str
    summary: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AccessEntry:
    position: int
    person_key: str
    user_id: str
    purpose: str
    view: str
    access: str
    occurred_at: datetime
    recorded_at: datetime | None
