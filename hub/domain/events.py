"""Canonical events: the envelope and one frozen dataclass per payload record.

The Avro schemas in ``schemas/*.avsc`` are the contract on the wire; these classes are the same
records in memory. ``tests/unit/test_schemas.py`` fails when the two disagree. Registering a new
event type means: add the record to a schema file, add its class here, add it to ``PAYLOAD_TYPES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID

# --- shared records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    street: str
    house_number: str
    postcode: str
    city: str
    floor: str | None = None
    door: str | None = None
    municipality_code: str | None = None
    address_id: str | None = None


# --- person ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonRegistered:
    first_name: str
    last_name: str
    birth_date: date
    sex: str
    address: Address | None = None
    civil_status: str | None = None
    protected_address: bool = False


@dataclass(frozen=True, slots=True)
class PersonNameChanged:
    first_name: str
    last_name: str


@dataclass(frozen=True, slots=True)
class PersonAddressChanged:
    address: Address


@dataclass(frozen=True, slots=True)
class PersonRelationChanged:
    relation: str
    related_person: str
    change: str


@dataclass(frozen=True, slots=True)
class PersonCivilStatusChanged:
    civil_status: str


@dataclass(frozen=True, slots=True)
class PersonProtectedAddressChanged:
    protected_address: bool


@dataclass(frozen=True, slots=True)
class PersonDied:
    date_of_death: date


@dataclass(frozen=True, slots=True)
class PersonEmigrated:
    country: str | None = None


@dataclass(frozen=True, slots=True)
class PersonIdentifierReplaced:
    old_identifier: str
    new_identifier: str


# --- case (sag) -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseOpened:
    department: str
    unit_id: str
    unit_name: str
    case_type: str
    status: str
    title: str | None = None
    law: str | None = None
    paragraph: str | None = None
    legal_basis_valid_from: date | None = None


@dataclass(frozen=True, slots=True)
class CaseStatusChanged:
    status: str
    previous_status: str | None = None


@dataclass(frozen=True, slots=True)
class CaseLegalBasisChanged:
    law: str
    paragraph: str
    valid_from: date


@dataclass(frozen=True, slots=True)
class CaseworkerAssigned:
    caseworker_id: str
    caseworker_name: str
    unit_id: str
    role: str = "primary"
    contact: str | None = None


@dataclass(frozen=True, slots=True)
class CaseworkerUnassigned:
    caseworker_id: str
    role: str = "primary"


@dataclass(frozen=True, slots=True)
class CaseActionRecorded:
    action_id: str
    action_type: str
    subtype: str | None = None
    title: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class CasePassivated:
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CaseClosed:
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CaseReopened:
    reason: str | None = None


# --- grant (bevilling / ydelse / indsats) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantAwarded:
    grant_id: str
    kind: str
    law: str
    paragraph: str
    title: str
    granting_unit_id: str
    granting_unit_name: str
    valid_from: date
    valid_to: date | None = None
    extent: str | None = None
    hours_per_week: float | None = None
    monthly_rate: float | None = None
    applied_on: date | None = None
    decided_on: date | None = None


@dataclass(frozen=True, slots=True)
class GrantChanged:
    grant_id: str
    valid_to: date | None = None
    extent: str | None = None
    hours_per_week: float | None = None
    monthly_rate: float | None = None


@dataclass(frozen=True, slots=True)
class GrantEnded:
    grant_id: str
    ended_on: date
    reason: str | None = None


# --- consent (samtykke) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsentGiven:
    consent_id: str
    purpose: str
    unit_ids: tuple[str, ...]
    valid_from: date
    valid_until: date | None = None


@dataclass(frozen=True, slots=True)
class ConsentWithdrawn:
    consent_id: str
    reason: str | None = None


# --- marking (markering) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarkingSet:
    marking_id: str
    system: str
    marking_type: str
    valid_from: date
    valid_to: date | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class MarkingEnded:
    marking_id: str
    system: str
    marking_type: str
    ended_on: date


# --- coordinated pathway (sammenhængende borgerforløb) --------------------------------------


@dataclass(frozen=True, slots=True)
class PathwayStarted:
    pathway_id: str
    anchor_unit_id: str
    anchor_unit_name: str
    rule_id: str | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathwayMembersChanged:
    pathway_id: str
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathwayTovholderAssigned:
    pathway_id: str
    caseworker_id: str
    caseworker_name: str
    unit_id: str


@dataclass(frozen=True, slots=True)
class PathwayMeetingHeld:
    pathway_id: str
    meeting_type: str
    citizen_present: bool
    participants: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathwayPlanUpdated:
    pathway_id: str
    summary: str | None = None
    progression: int | None = None


@dataclass(frozen=True, slots=True)
class PathwayClosed:
    pathway_id: str
    reason: str


# --- derived by the hub ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetGroupMatchStarted:
    rule_id: str
    rule_version: str
    subject_kind: str
    explanation: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TargetGroupMatchEnded:
    rule_id: str
    rule_version: str
    reason: str


@dataclass(frozen=True, slots=True)
class OverlapDetected:
    overlap_id: str
    kind: str
    explanation: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OverlapResolved:
    overlap_id: str
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class PersonRecordAccessed:
    user_id: str
    purpose: str
    view: str
    access: str = "full"
    others: tuple[str, ...] = ()
    """Person keys of the other persons the view showed (the household an overview names): one
    event per view, filed under each of them by the access log too."""


@dataclass(frozen=True, slots=True)
class SupervisionSampleDrawn:
    sample_id: str
    month: str
    paragraph: str
    team: str
    case_keys: tuple[str, ...] = ()


Payload = (
    PersonRegistered | PersonNameChanged | PersonAddressChanged | PersonRelationChanged
    | PersonCivilStatusChanged | PersonProtectedAddressChanged | PersonDied | PersonEmigrated
    | PersonIdentifierReplaced | CaseOpened | CaseStatusChanged | CaseLegalBasisChanged
    | CaseworkerAssigned | CaseworkerUnassigned | CaseActionRecorded | CasePassivated | CaseClosed
    | CaseReopened | GrantAwarded | GrantChanged | GrantEnded | ConsentGiven | ConsentWithdrawn
    | MarkingSet | MarkingEnded | PathwayStarted | PathwayTovholderAssigned | PathwayMeetingHeld
    | PathwayPlanUpdated | PathwayClosed | TargetGroupMatchStarted | TargetGroupMatchEnded
    | OverlapDetected | OverlapResolved | PersonRecordAccessed | SupervisionSampleDrawn
)

#: The explicit registry: event type name -> payload class. Names equal the Avro record names.
PAYLOAD_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        PersonRegistered, PersonNameChanged, PersonAddressChanged, PersonRelationChanged,
        PersonCivilStatusChanged, PersonProtectedAddressChanged, PersonDied, PersonEmigrated,
        PersonIdentifierReplaced, CaseOpened, CaseStatusChanged, CaseLegalBasisChanged,
        CaseworkerAssigned, CaseworkerUnassigned, CaseActionRecorded, CasePassivated, CaseClosed,
        CaseReopened, GrantAwarded, GrantChanged, GrantEnded, ConsentGiven, ConsentWithdrawn,
        MarkingSet, MarkingEnded, PathwayStarted, PathwayTovholderAssigned, PathwayMeetingHeld,
        PathwayPlanUpdated, PathwayClosed, TargetGroupMatchStarted, TargetGroupMatchEnded,
        OverlapDetected, OverlapResolved, PersonRecordAccessed, SupervisionSampleDrawn,
        PathwayMembersChanged,
    )
}

def _named(prefix: str) -> frozenset[str]:
    return frozenset(name for name in PAYLOAD_TYPES if name.startswith(prefix))


#: Event types by what they are about (the projections' and queries' groups).
CASE_EVENTS = _named("Case")  # a case's own and its caseworkers'
GRANT_EVENTS = _named("Grant")
CONSENT_EVENTS = _named("Consent")
MARKING_EVENTS = _named("Marking")
PATHWAY_EVENTS = _named("Pathway")

#: Event types whose stream is the person's own (no case involved).
PERSON_EVENTS = frozenset(
    name for name in PAYLOAD_TYPES if name.startswith("Person") and name != "PersonRecordAccessed"
) | {"ConsentGiven", "ConsentWithdrawn", "MarkingSet", "MarkingEnded"}


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    """One canonical event as it crosses a boundary (connector -> ingest -> store -> projection).

    ``person`` is the subject's CPR or substitute number: present in clear between a connector
    and the ingest, encrypted at rest. ``person_key`` is its pseudonym, filled by the ingest.
    ``recorded_at`` and ``position`` are set by the store.
    """

    event_id: UUID
    source_system: str
    source_record_id: str
    source_version: str
    occurred_at: datetime
    payload: Payload
    person: str | None = None
    person_key: str | None = None
    case_key: str | None = None
    actor: str | None = None
    schema_version: int = 1
    recorded_at: datetime | None = None
    position: int | None = field(default=None, compare=False)

    @property
    def event_type(self) -> str:
        return type(self.payload).__name__

    @property
    def dedupe_key(self) -> tuple[str, str, str]:
        return (self.source_system, self.source_record_id, self.source_version)
