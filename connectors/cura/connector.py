"""The Cura connector: four FHIR streams read incrementally by their change time.

| stream | search | cursor |
|---|---|---|
| cases | ``Basic?_profile=CitizenCareProvider&_lastUpdated=ge..`` | meta.lastUpdated + id |
| grants | ``ProcedureRequest?_profile=CuraGrantedProcedureRequest&_lastUpdated=ge..`` | same |
| tasks | ``Basic?_profile=CuraSimpleTask&_lastUpdated=ge..`` | same |
| communications | ``Communication?received=ge..`` | received + id |

A cursor is ``<instant>|<id>`` of the last resource committed; a read asks for ``ge`` that
instant and skips what sorts at or before the cursor, so resources sharing a timestamp across a
page boundary are neither lost nor read twice. Each Bundle page is one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import orjson

from connectors import MappingError
from connectors.cura import fhir, mapping
from connectors.cura.client import CuraAuth, CuraClient
from connectors.http import RequestRejected, RetryPolicy
from connectors.snapshot import KnownCasesSource
from connectors.stores import StoreOrFactory, store_or_opener
from hub.config import ConfigError, Settings
from hub.domain import events as ev
from hub.ingest.connector import Batch, Connector, Stream
from hub.store.contract import DeadLetter

Mapper = Callable[[dict, mapping.CprOf], list[ev.CanonicalEvent]]


def _last_updated(r: dict) -> str | None:
    return (r.get("meta") or {}).get("lastUpdated")


def _received(r: dict) -> str | None:
    return r.get("received")


class FhirStream(Stream):
    def __init__(self, name: str, resource_type: str, params: dict[str, str], order_param: str,
                 order_value: Callable[[dict], str | None], mapper: Mapper,
                 connector: CuraConnector, before: Callable[[], None] | None = None):
        self.name = name
        self.resource_type = resource_type
        self.params = params
        self.order_param = order_param
        self.order_value = order_value
        self.mapper = mapper
        self.connector = connector
        self.before = before
        """Called when a read starts (the cases stream: catch up what the store knows)."""

    def read(self, cursor: str | None) -> Iterator[Batch]:
        if self.before is not None:
            self.before()
        after: tuple[datetime, str] | None = None
        params = {**self.params, "_count": str(self.connector.page_size),
                  "_sort": self.order_param, "_include": f"{self.resource_type}:subject"}
        if cursor:
            at, _, rid = cursor.partition("|")
            after = (fhir.parse_instant(at), rid)
            params[self.order_param] = f"ge{at}"
        for bundle in self.connector.client.search(self.resource_type, params):
            events: list[ev.CanonicalEvent] = []
            dead: list[DeadLetter] = []
            last: tuple[datetime, str] | None = None
            entries = bundle.get("entry") or []
            self.connector.remember_patients(
                e.get("resource") or {} for e in entries
                if (e.get("search") or {}).get("mode") == "include")
            for entry in entries:
                if (entry.get("search") or {}).get("mode") == "include":
                    continue
                resource = entry.get("resource") or {}
                rid = str(resource.get("id", ""))
                try:
                    position = (fhir.parse_instant(self.order_value(resource) or ""), rid)
                except ValueError:
                    position = None
                if position is not None and after is not None and position <= after:
                    continue  # committed before (same instant as the cursor)
                try:
                    if position is None:
                        raise MappingError(f"{self.resource_type}/{rid} has no valid "
                                           f"{self.order_param}")
                    events.extend(self.mapper(resource, self.connector.cpr_of))
                except MappingError as exc:
                    dead.append(DeadLetter(mapping.SYSTEM, str(exc), orjson.dumps(resource),
                                           f"{self.resource_type}/{rid}"))
                if position is not None:
                    last = position
            new_cursor = f"{fhir.instant(last[0])}|{last[1]}" if last else None
            if events or dead or new_cursor:
                yield Batch(events, dead, new_cursor)


class CuraConnector(Connector):
    name = "cura"

    def __init__(self, client: CuraClient, store: StoreOrFactory, page_size: int = 200):
        self.client = client
        self.page_size = page_size
        self._cprs: dict[str, str | None] = {}
        # what the store knows of each case's caseworker (a return to an earlier one is a
        # change too), caught up when the cases stream starts reading
        self._known_cases = KnownCasesSource(store, mapping.SYSTEM)

    def _care_provider(self, r: dict, cpr_of: mapping.CprOf) -> list[ev.CanonicalEvent]:
        return mapping.care_provider(r, cpr_of, self._known_cases.get().get)

    def _catch_up_known(self) -> None:
        self._known_cases.get().catch_up()

    def remember_patients(self, patients) -> None:
        """Patients included in a Bundle (``_include=<type>:subject``) save a lookup each."""
        for p in patients:
            if p.get("resourceType") == "Patient" and p.get("id"):
                self._cprs[p["id"]] = fhir.cpr_of_patient(p)

    def cpr_of(self, patient_id: str) -> str | None:
        if patient_id not in self._cprs:
            try:
                self._cprs[patient_id] = self.client.patient_cpr(patient_id)
            except RequestRejected as exc:
                if exc.status_code != 404:
                    raise
                self._cprs[patient_id] = None
        return self._cprs[patient_id]

    def check(self) -> None:
        self.client.get_json("Basic", params={"_profile": fhir.CARE_PROVIDER, "_count": "1"})

    def streams(self) -> list[Stream]:
        return [
            FhirStream("cases", "Basic", {"_profile": fhir.CARE_PROVIDER}, "_lastUpdated",
                       _last_updated, self._care_provider, self, before=self._catch_up_known),
            FhirStream("grants", "ProcedureRequest", {"_profile": fhir.GRANT}, "_lastUpdated",
                       _last_updated, mapping.procedure_request, self),
            FhirStream("tasks", "Basic", {"_profile": fhir.TASK}, "_lastUpdated",
                       _last_updated, mapping.task, self),
            FhirStream("communications", "Communication", {}, "received", _received,
                       mapping.communication, self),
        ]

    def close(self) -> None:
        self.client.close()
        self._known_cases.close()


def _required(settings: Settings, key: str) -> str:
    value = settings.component("cura", key)
    if not value:
        raise ConfigError(f"cura: set CURA_{key.upper()} (or CURA_{key.upper()}_FILE, or "
                          f"[components.cura] {key})")
    return str(value)


def from_settings(settings: Settings, store: object = None) -> CuraConnector:
    """Build from ``CURA_*`` settings (see docs/connectors/cura.md)."""
    c = settings.component
    auth = CuraAuth(
        access_token_url=_required(settings, "access_token_url"),
        session_token_url=_required(settings, "session_token_url"),
        username=_required(settings, "username"), password=_required(settings, "password"),
        api_key=_required(settings, "api_key"),
        organization=_required(settings, "organization"),
        user_role=_required(settings, "user_role"),
        api_version=str(c("cura", "api_version", "1")))
    client = CuraClient(
        base_url=_required(settings, "base_url"), auth=auth,
        timeout=float(c("cura", "timeout", 30)),
        retry=RetryPolicy(attempts=int(c("cura", "retry_attempts", 3)),
                          initial=float(c("cura", "retry_initial", 0.5))),
        verify=str(c("cura", "verify_tls", "true")).lower() not in ("0", "false", "no"))
    return CuraConnector(client, store_or_opener(settings, store),
                         page_size=int(c("cura", "page_size", 200)))
