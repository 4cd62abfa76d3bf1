"""Cura's FHIR vocabulary, shared by the client, the mapping and the simulator.

Profiles and extension URLs as public Cura clients use them (see
/shared/reference/fagsystem-apis.md section 8). Extensions marked *inferred* are not seen in
public code; the simulator serves them and the mapping reads them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

P = "http://curafhir.dk/p/"
CITIZEN = P + "CuraCitizen"
GRANT = P + "CuraGrantedProcedureRequest"
CARE_PROVIDER = P + "CitizenCareProvider"
TASK = P + "CuraSimpleTask"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"  # the Danish CPR number's OID

# Granted services (ProcedureRequest)
GRANT_PERIOD = GRANT + "/period"
GRANT_CASE_TYPE = GRANT + "/caseType"
GRANT_LEGAL_PARAGRAPH = GRANT + "/legalParagraph"
GRANT_RATE = GRANT + "/rate"
GRANT_RATE_UNIT = GRANT + "/rateUnit"
GRANT_REMARK = GRANT + "/remark"

# Citizen <-> organisation relation (Basic); the case in Cura's terms
CP_ORGANIZATION = CARE_PROVIDER + "/organization"
CP_DELETED = CARE_PROVIDER + "/deleted"
CP_CREATED = CARE_PROVIDER + "/created"            # inferred
CP_STATUS = CARE_PROVIDER + "/status"              # inferred
CP_STATUS_DATE = CARE_PROVIDER + "/statusDate"     # inferred
CP_CASE_TYPE = CARE_PROVIDER + "/caseType"         # inferred
CP_TITLE = CARE_PROVIDER + "/title"                # inferred
CP_RESPONSIBLE = CARE_PROVIDER + "/responsible"    # inferred
CP_LEGAL_PARAGRAPH = CARE_PROVIDER + "/legalParagraph"  # inferred

# Tasks (Basic)
TASK_TYPE = TASK + "/type"
TASK_REQUESTER = TASK + "/requester"
TASK_FOR = TASK + "/for"
TASK_ORGANIZATION = TASK + "/managingOrganization"
TASK_CASE = TASK + "/case"                          # inferred
TASK_TITLE = TASK + "/title"                        # inferred
TASK_STATUS = P + "task/status"
SYSTEM_CREATED = P + "systemCreatedTimestamp"

# Communication
COMMUNICATION_TITLE = P + "Communication/title"     # inferred

#: The hub's case statuses <-> Cura's relation statuses.
STATUS_TO_CURA = {"open": "requested", "active": "active", "passive": "inactive",
                  "closed": "completed"}
STATUS_FROM_CURA = {v: k for k, v in STATUS_TO_CURA.items()}


def instant(value: datetime) -> str:
    """A FHIR instant: UTC with milliseconds."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(value: str) -> datetime:
    d = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if d.tzinfo is None:
        raise ValueError(f"instant without time zone: {value!r}")
    return d


def parse_date(value: str) -> date:
    return date.fromisoformat(value[:10])


def ext(resource: dict, url: str) -> dict | None:
    """The extension with ``url`` on a resource (or an element), or None."""
    for e in resource.get("extension") or []:
        if isinstance(e, dict) and e.get("url") == url:
            return e
    return None


def ref_id(reference: dict | None, kind: str) -> str | None:
    """'Patient/123' -> '123' when the reference is of ``kind``."""
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str) or not ref.startswith(kind + "/"):
        return None
    return ref.split("/", 1)[1] or None


def cpr_of_patient(patient: dict) -> str | None:
    """The CPR number among a Patient's identifiers, or None."""
    for ident in patient.get("identifier") or []:
        if ident.get("system") == CPR_SYSTEM and ident.get("value"):
            return ident["value"]
    return None
