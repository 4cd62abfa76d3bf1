"""The SBSYS connector: a resumable sweep of ``POST api/sag/search`` (``Limit``/``Skip``, ordered
by case id), processing only cases whose ``SenestAendret`` is at or after the high-water mark.

SBSYS has no change feed and its search has no change filter, so each pass pages through the
search (cheap) and fetches journal notes only for changed cases. The cursor is JSON:
``{"hwm": <instant or null>, "next_hwm": <instant>, "skip": <n>}``:
- ``skip``: where a sweep interrupted mid-way resumes;
- ``next_hwm``: the server's clock (``Date`` header) when the sweep started; it becomes ``hwm``
  when the sweep completes, so a case changed while the sweep ran is seen again next time
  (never lost; re-reads are absorbed by the store's dedupe).

Cases from the coordinated-pathway template (``SBSYS_PATHWAY_TEMPLATE``, by display name; default
"Sammenhængende borgerforløb") are read as pathways (see ``mapping``), their notes not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import orjson

from connectors import MappingError
from connectors.http import Auth, PasswordGrant, RequestRejected, RetryPolicy
from connectors.sbsys import dialect as d
from connectors.sbsys import mapping
from connectors.sbsys.client import SbsysClient
from connectors.snapshot import KnownCases, KnownCasesSource
from connectors.stores import StoreOrFactory, store_or_opener
from hub.config import ConfigError, Settings
from hub.domain import events as ev
from hub.ingest.connector import Batch, Connector, Stream
from hub.store.contract import DeadLetter


class CaseSweep(Stream):
    name = "cases"

    def __init__(self, connector: SbsysConnector):
        self.connector = connector

    def read(self, cursor: str | None) -> Iterator[Batch]:
        state = json.loads(cursor) if cursor else {"hwm": None, "next_hwm": None, "skip": 0}
        hwm = datetime.fromisoformat(state["hwm"]) if state.get("hwm") else None
        skip = int(state.get("skip") or 0)
        next_hwm = state.get("next_hwm")
        client, limit = self.connector.client, self.connector.page_size
        statuses = self.connector.statuses()
        known = self.connector.known()
        known.catch_up()  # what earlier passes stored (this pass's own events follow)
        while True:
            results, server_now = client.search_page({"Limit": limit, "Skip": skip})
            if next_hwm is None:
                # Start of a sweep: changes from now on are seen by the next sweep. A second
                # back covers the Date header's resolution.
                start = server_now - timedelta(seconds=1) if server_now else None
                next_hwm = start.isoformat() if start else (hwm.isoformat() if hwm else None)
            events: list[ev.CanonicalEvent] = []
            dead: list[DeadLetter] = []
            for sag in results:
                try:
                    # (a time in the repeated autumn hour as its later instant: compared with
                    # the high-water mark, it may be read twice, never skipped)
                    changed = d.parse_local(sag.get("SenestAendret") or "").replace(fold=1)
                except ValueError:
                    changed = None
                if hwm is not None and changed is not None and changed < hwm:
                    continue
                try:
                    if mapping.is_pathway(sag, self.connector.pathway_template):
                        events.extend(mapping.pathway_events(sag, statuses))
                        continue
                    events.extend(mapping.case_events(sag, statuses,
                                                      self.connector.department, known.get))
                    try:
                        notes = client.journal_notes(sag["Id"])
                    except RequestRejected as exc:  # this case's notes refused: the rest go on
                        dead.append(DeadLetter(
                            mapping.SYSTEM, f"journal notes of case {sag.get('Nummer')} refused:"
                            f" HTTP {exc.status_code}", orjson.dumps(sag),
                            str(sag.get("Nummer") or sag.get("Id"))))
                    else:
                        events.extend(mapping.note_events(sag, notes))
                except MappingError as exc:
                    dead.append(DeadLetter(mapping.SYSTEM, str(exc), orjson.dumps(sag),
                                           str(sag.get("Nummer") or sag.get("Id"))))
            skip += len(results)
            if len(results) < limit:  # the last page: the sweep is complete
                yield Batch(events, dead, json.dumps(
                    {"hwm": next_hwm, "next_hwm": None, "skip": 0}))
                return
            yield Batch(events, dead, json.dumps(
                {"hwm": state.get("hwm"), "next_hwm": next_hwm, "skip": skip}))


class SbsysConnector(Connector):
    name = "sbsys"

    def __init__(self, client: SbsysClient, store: StoreOrFactory, page_size: int = 500,
                 department: str = "BUF", pathway_template: str = d.PATHWAY_TEMPLATE):
        self.client = client
        self.page_size = page_size
        self.department = department
        self.pathway_template = pathway_template
        self._statuses: dict[int, dict] | None = None
        # what the store knows of each case's status and caseworker: a change back to an
        # earlier one is a change too (a key per value would take it for one already stored)
        self._known_cases = KnownCasesSource(store, mapping.SYSTEM)

    def known(self) -> KnownCases:
        return self._known_cases.get()

    def statuses(self) -> dict[int, dict]:
        if self._statuses is None:
            self._statuses = {s["Id"]: s for s in self.client.status_list()}
        return self._statuses

    def check(self) -> None:
        self.client.status_list()

    def streams(self) -> list[Stream]:
        return [CaseSweep(self)]

    def close(self) -> None:
        self.client.close()
        self._known_cases.close()


def _required(settings: Settings, key: str) -> str:
    value = settings.component("sbsys", key)
    if not value:
        raise ConfigError(f"sbsys: set SBSYS_{key.upper()} (or SBSYS_{key.upper()}_FILE, or "
                          f"[components.sbsys] {key})")
    return str(value)


def auth_from_settings(settings: Settings) -> Auth:
    base = _required(settings, "base_url").rstrip("/")
    return PasswordGrant(
        token_url=settings.component("sbsys", "token_url")
        or f"{base}/auth/realms/sbsip/protocol/openid-connect/token",
        username=_required(settings, "username"), password=_required(settings, "password"),
        client_id=_required(settings, "client_id"),
        client_secret=settings.component("sbsys", "client_secret"))


def client_from_settings(settings: Settings) -> SbsysClient:
    c = settings.component
    return SbsysClient(
        base_url=_required(settings, "base_url"), auth=auth_from_settings(settings),
        timeout=float(c("sbsys", "timeout", 30)),
        retry=RetryPolicy(attempts=int(c("sbsys", "retry_attempts", 3)),
                          initial=float(c("sbsys", "retry_initial", 0.5))),
        verify=str(c("sbsys", "verify_tls", "true")).lower() not in ("0", "false", "no"))


def from_settings(settings: Settings, store: object = None) -> SbsysConnector:
    """Build from ``SBSYS_*`` settings (see docs/connectors/sbsys.md)."""
    c = settings.component
    return SbsysConnector(client_from_settings(settings), store_or_opener(settings, store),
                          page_size=int(c("sbsys", "page_size", 500)),
                          department=str(c("sbsys", "department", "BUF")),
                          pathway_template=str(c("sbsys", "pathway_template",
                                                 d.PATHWAY_TEMPLATE)))
