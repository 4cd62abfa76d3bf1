"""SBSYS's dialect, shared by the client, the mapping and the simulator: PascalCase JSON, CPR as
``DDMMYY-NNNN``, local times without offset, the status list (see
/shared/reference/fagsystem-apis.md section 2)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Europe/Copenhagen")

#: ``GET api/sag/sagStatusList`` (Odense has four statuses).
STATUS_LIST = [
    {"Id": 1, "Navn": "Oprettet", "SagsTilstand": "Aktiv", "KraeverKommentarer": False},
    {"Id": 2, "Navn": "Aktiv", "SagsTilstand": "Aktiv", "KraeverKommentarer": False},
    {"Id": 3, "Navn": "Passiv", "SagsTilstand": "Passiv", "KraeverKommentarer": True},
    {"Id": 4, "Navn": "Afsluttet", "SagsTilstand": "Afsluttet", "KraeverKommentarer": True},
]
#: Status name -> the hub's case status (names are what clients match on, as Tyra does).
NAME_TO_STATUS = {"Oprettet": "open", "Aktiv": "active", "Passiv": "passive",
                  "Afsluttet": "closed"}
#: SagsTilstand -> the hub's status, for a status name this hub does not know.
STATE_TO_STATUS = {"Aktiv": "active", "Passiv": "passive", "Afsluttet": "closed"}
STATUS_TO_ID = {"open": 1, "active": 2, "passive": 3, "closed": 4}
#: The status comment the write-back passivates with (the connector reads it back as the reason).
PASSIVATED_BY_GLASPLADE = "Passiveret af Glasplade: ikke længere i målgruppen"
#: The template of coordinated-pathway cases (sammenhængende borgerforløb), by display name.
PATHWAY_TEMPLATE = "Sammenhængende borgerforløb"


def cpr_dashed(cpr: str) -> str:
    """'0101901234' -> '010190-1234' (the form SBSYS wants)."""
    digits = cpr.replace("-", "")
    return f"{digits[:6]}-{digits[6:]}"


def cpr_plain(value: str) -> str:
    return value.replace("-", "").strip()


def local_time(value: datetime) -> str:
    """SBSYS timestamps: local time, no offset, milliseconds."""
    return value.astimezone(LOCAL_TZ).replace(tzinfo=None).isoformat(timespec="milliseconds")


def parse_local(value: str) -> datetime:
    d = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return d.replace(tzinfo=LOCAL_TZ) if d.tzinfo is None else d.astimezone(UTC)
