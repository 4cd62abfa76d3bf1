"""The write-back's adapters: the connectors' own idempotent write operations (Fasit
person-group markings, SBSYS coordinated-pathway cases), built from settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from hub.config import ConfigError, Settings
from hub.store.eventstore import EventStore

PATHWAY_TEMPLATE_ID = 2  # SBSYS template "Sammenhængende borgerforløb" ([components.targets])


class ConnectorWriters:
    def __init__(self, fasit_markings=None, sbsys_client=None,  # noqa: ANN001
                 template_id: int = PATHWAY_TEMPLATE_ID):
        self.fasit = fasit_markings
        self.sbsys = sbsys_client
        self.template_id = template_id

    def _fasit(self, system: str):  # noqa: ANN202
        if system != "fasit":
            raise ConfigError(f"no marking writer for system {system!r} (only fasit)")
        if self.fasit is None:
            raise ConfigError("fasit is not configured (FASIT_BASE_URL ...)")
        return self.fasit

    def _sbsys(self):  # noqa: ANN202
        if self.sbsys is None:
            raise ConfigError("sbsys is not configured (SBSYS_BASE_URL ...)")
        return self.sbsys

    def set_marking(self, cpr: str, system: str, marking_type: str, valid_from: date) -> str:
        return self._fasit(system).set_marking(cpr, marking_type, valid_from).marking_id

    def end_marking(self, cpr: str, system: str, marking_type: str, ended_on: date
                    ) -> str | None:
        result = self._fasit(system).end_marking(cpr, marking_type, ended_on)
        return result.marking_id if result else None

    def create_pathway_case(self, cpr: str, title: str, external_key: str) -> str:
        sag = self._sbsys().create_case(cpr=cpr, title=title, template_id=self.template_id,
                                        external_key=external_key)
        return str(sag.get("Id"))

    def passivate_pathway_case(self, cpr: str, external_key: str) -> str | None:
        sag = self._sbsys().find_case_by_key(cpr, external_key)
        if sag is None:
            return None
        self._sbsys().passivate(sag["Id"])
        return str(sag["Id"])

    def close(self) -> None:
        if self.fasit is not None:
            self.fasit.client.close()
        if self.sbsys is not None:
            self.sbsys.close()


def writers_from_settings(settings: Settings) -> ConnectorWriters:
    """Writers for the systems that are configured (the others fail their commands clearly)."""
    fasit = sbsys = None
    if settings.component("fasit", "base_url"):
        from connectors.fasit.commands import FasitMarkings
        from connectors.fasit.connector import FasitConfig, FasitConnector
        fasit = FasitMarkings(FasitConnector(FasitConfig.from_settings(settings),
                                             store=lambda: None).client)
    if settings.component("sbsys", "base_url"):
        from connectors.sbsys.connector import client_from_settings
        sbsys = client_from_settings(settings)
    template = int(settings.component("targets", "sbsys_template_id", PATHWAY_TEMPLATE_ID))
    return ConnectorWriters(fasit, sbsys, template)


def cpr_from_store(store: EventStore) -> Callable[[str], str | None]:
    """The identifier behind a pseudonym, from the events that name the person (the
    fagsystemer need the CPR number to address the citizen)."""
    def cpr_of(person_key: str) -> str | None:
        for e in store.person_events(person_key=person_key):
            if e.person:
                return e.person
        return None
    return cpr_of
