"""The Fasit and SBSYS simulators for the write-back tests, and reads of their state over HTTP
(the way an operator would check what was written: the fagsystem's own API, separate clients)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from connectors.fasit.client import FasitClient
from connectors.fasit.connector import FasitConfig, FasitConnector
from connectors.fasit.simulator.app import simulator as fasit_simulator
from connectors.sbsys.client import SbsysClient
from connectors.sbsys.connector import client_from_settings
from connectors.sbsys.simulator import simulator as sbsys_simulator
from hub.config import Settings
from hub.synthetic.model import Municipality
from hub.targets.writers import ConnectorWriters, writers_from_settings

PATHWAY_TEMPLATE = 2
FAST = {"FASIT_RETRY_ATTEMPTS": "2", "FASIT_RETRY_INITIAL": "0.01", "FASIT_TIMEOUT": "2",
        "SBSYS_RETRY_ATTEMPTS": "2", "SBSYS_RETRY_INITIAL": "0.01", "SBSYS_TIMEOUT": "2"}


@dataclass
class Sims:
    m: Municipality
    fasit: object
    sbsys: object
    writers: ConnectorWriters
    fasit_reader: FasitClient
    sbsys_reader: SbsysClient

    # --- SBSYS ------------------------------------------------------------------------------

    def pathway_cases(self, cpr: str | None = None) -> list[dict]:
        """The coordinated-pathway cases (template 2), with their parties."""
        body: dict = {"SagsSkabeloner": [PATHWAY_TEMPLATE], "Limit": 100, "Skip": 0}
        if cpr:
            body["PrimaerPerson"] = {"CprNummer": cpr}
        return self.sbsys_reader.search_page(body)[0]

    def case_notes(self, case_id: int) -> list[dict]:
        return self.sbsys_reader.journal_notes(case_id)

    # --- Fasit ------------------------------------------------------------------------------

    def citizen(self, cpr: str) -> str | None:
        return self.fasit_reader.find_citizen(cpr)

    def markings(self, cpr: str) -> list[dict]:
        cid = self.citizen(cpr)
        return self.fasit_reader.markings(cid) if cid else []

    def note_field(self, cpr: str) -> str | None:
        cid = self.citizen(cpr)
        return self.fasit_reader.notes(cid).get("importantNote2") if cid else None


@contextmanager
def running_sims(m: Municipality, monkeypatch) -> Iterator[Sims]:
    fasit, sbsys = fasit_simulator(m), sbsys_simulator(m)
    fasit.start()
    sbsys.start()
    for k, v in {**fasit.env(), **sbsys.env(), **FAST}.items():
        monkeypatch.setenv(k, v)
    settings = Settings()
    writers = writers_from_settings(settings)
    fasit_reader = FasitConnector(FasitConfig.from_settings(settings), store=lambda: None).client
    sbsys_reader = client_from_settings(settings)
    try:
        yield Sims(m, fasit, sbsys, writers, fasit_reader, sbsys_reader)
    finally:
        writers.close()
        fasit_reader.close()
        sbsys_reader.close()
        fasit.stop()
        sbsys.stop()
