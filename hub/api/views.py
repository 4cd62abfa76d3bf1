"""What a user is shown: the read models filtered by the access policy (frozen dataclasses).

The API serialises these as JSON and the dashboard renders them; neither sees a read-model row
the policy has not filtered. Where a read-model result needs no filtering it is used as is
(``projections.queries``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from hub.domain.access import Decision
from projections.queries import (
    CaseworkerView,
    GrantView,
    HouseholdMember,
    MarkingView,
    PathwayView,
    PersonSummary,
    SystemFlag,
    TimelineEntry,
)


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case as the user may see it. When ``decision.level`` is ``existence`` only that it
    exists and who is responsible are filled (SAPA-style); the content fields are None."""

    case_key: str
    source_system: str | None
    department: str | None
    unit_id: str | None
    unit_name: str | None
    decision: Decision
    primary: CaseworkerView | None
    case_type: str | None = None
    title: str | None = None
    status: str | None = None
    law: str | None = None
    paragraph: str | None = None
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    caseworkers: tuple[CaseworkerView, ...] = ()

    @property
    def hidden(self) -> bool:
        return self.decision.level != "full"


@dataclass(frozen=True, slots=True)
class ConsentView:
    consent_id: str
    purpose: str
    purpose_label: str
    unit_ids: tuple[str, ...]
    valid_from: date
    valid_until: date | None
    state: str
    """given, withdrawn, expired or pending."""


@dataclass(frozen=True, slots=True)
class Overview:
    """The glasplade for one person, filtered for one user and purpose."""

    person: PersonSummary
    purpose: str
    access: str
    """What the view showed: full, existence (cases only as existing) or person."""
    household: tuple[HouseholdMember, ...]
    children: tuple[HouseholdMember, ...]
    cases: tuple[CaseView, ...]
    grants: tuple[GrantView, ...]
    """Only grants on cases whose content the user may see."""
    hidden_grants: int
    consents: tuple[ConsentView, ...]
    markings: tuple[MarkingView, ...]
    pathways: tuple[PathwayView, ...]
    systems: tuple[SystemFlag, ...]
    """The fagsystemer/departments the person has cases in ("has a case in another system")."""


@dataclass(frozen=True, slots=True)
class Household:
    person_key: str
    purpose: str
    members: tuple[Overview, ...]


@dataclass(frozen=True, slots=True)
class CaseHistory:
    case: CaseView
    person: PersonSummary | None
    purpose: str
    entries: tuple[TimelineEntry, ...]
    """Empty unless the user may see the case's content."""


@dataclass(frozen=True, slots=True)
class AccessEntry:
    position: int
    person_key: str
    person_name: str | None
    user_id: str
    purpose: str
    view: str
    access: str
    occurred_at: datetime
