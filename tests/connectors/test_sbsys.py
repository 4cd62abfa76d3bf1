"""The SBSYS connector and client against the SBSYS simulator over a real socket."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import httpx
import pytest

from connectors.http import RequestRejected
from connectors.sbsys.connector import client_from_settings
from hub.config import Settings
from hub.ingest.connector import AuthenticationFailed
from hub.synthetic.model import CaseAction, Municipality, StatusChange
from tests.connectors.suite import ConnectorSuite


def sbsys_expected(m: Municipality) -> dict[str, int]:
    n: Counter[str] = Counter()
    for c in m.cases:
        if c.system != "sbsys":
            continue
        n["CaseOpened"] += 1
        n["CaseworkerAssigned"] += bool(c.caseworker_id)
        if c.status != "open":
            n["CaseStatusChanged"] += 1
            n["CaseClosed"] += c.status == "closed"
            n["CasePassivated"] += c.status == "passive"
        n["CaseActionRecorded"] += len(c.actions)
    return {k: v for k, v in n.items() if v}


class TestSbsys(ConnectorSuite):
    name = "sbsys"
    extra_env = {"SBSYS_PAGE_SIZE": "5"}

    def expected_counts(self, municipality):
        return sbsys_expected(municipality)

    @pytest.fixture
    def client(self, connect):
        connect()  # sets the environment
        c = client_from_settings(Settings())
        yield c
        c.close()

    # --- SBSYS's own behaviour --------------------------------------------------------------

    def test_password_grant_and_refusal(self, simulator, connect, monkeypatch):
        r = httpx.post(f"{simulator.url}/api/sag/search", json={"Limit": 1})
        assert r.status_code == 401
        monkeypatch.setenv("SBSYS_PASSWORD", "wrong")
        with pytest.raises(AuthenticationFailed):
            connect().check()

    def test_search_paging_and_filters(self, client, municipality):
        cases = [c for c in municipality.cases if c.system == "sbsys"]
        page, _ = client.search_page({"Limit": 4, "Skip": 0})
        rest, _ = client.search_page({"Limit": 100, "Skip": 4})
        numbers = [s["Nummer"] for s in page + rest]
        assert len(numbers) == len(set(numbers)) == len(cases)
        assert page[0]["PrimaryPart"]["CPRnummer"][6] == "-"
        assert page[0]["Parter"][0]["PartType"] == "Person"
        mine, _ = client.search_page({"PrimaerPerson": {"CprNummer": cases[0].person},
                                      "Limit": 100, "Skip": 0})
        assert {s["Nummer"] for s in mine} == {c.case_id for c in cases
                                               if c.person == cases[0].person}
        with pytest.raises(RequestRejected) as info:
            client.search_page({"Limit": 6000, "Skip": 0})
        assert info.value.status_code == 400

    def test_incremental_by_senest_aendret(self, one_store, connect, municipality):
        runner = self.runner(one_store, connect())
        assert runner.run_once().ok
        case = next(c for c in municipality.cases if c.system == "sbsys" and c.status == "open")
        municipality.as_of += timedelta(hours=2)
        at = municipality.as_of
        case.actions.append(CaseAction(f"{case.case_id}-NEW", "journal_note", at, "Møde",
                                       text="Møde med familien"))
        case.status, case.closed_at = "closed", at
        case.status_history.append(StatusChange("closed", at))
        case.updated_at = at
        report = runner.run_once()
        assert report.ok and report.stored == 3  # note, status changed, closed
        assert report.duplicates <= 2 + len(case.actions), "only the changed case was read"
        again = runner.run_once()
        assert again.stored == 0

    def test_write_operations_are_idempotent(self, client, municipality, one_store, connect):
        person = municipality.persons[0].cpr
        # Template 1 (Børnesag): a department's case. Pathway cases (template 2) are read as
        # pathways, see tests/targets/test_writeback_sync.py.
        made = client.create_case(cpr=person, title="Børnesag", template_id=1,
                                  external_key="glasplade:pathway-1", caseworker_id=1)
        again = client.create_case(cpr=person, title="Børnesag", template_id=1,
                                   external_key="glasplade:pathway-1")
        assert made["Id"] == again["Id"] and made["SagsStatus"]["Navn"] == "Oprettet"
        updated = client.update_case(made["Id"], {"SagsTitel": "Forløb [glasplade:pathway-1]"})
        assert updated["PrimaryPart"]["CPRnummer"], "GET+merge+PUT keeps the party link"
        at = municipality.as_of
        client.add_journal_note(made["Id"], "Opstart", ["Linje 1", "Linje 2"], at)
        client.add_journal_note(made["Id"], "Opstart", ["Linje 1", "Linje 2"], at)
        assert len(client.journal_notes(made["Id"])) == 1
        passive = client.passivate(made["Id"])
        assert passive["SagsStatus"]["SagsTilstand"] == "Passiv"
        assert client.passivate(made["Id"])["SagsStatus"]["Navn"] == "Passiv"
        with pytest.raises(RequestRejected):
            client.set_status(made["Id"], "Findes ikke")
        # The connector sees what Tyra wrote.
        self.runner(one_store, connect()).run_once()
        key = f"sbsys:{made['Nummer']}"
        types = sorted(e.event_type for e in one_store.case_events(key))
        assert types == ["CaseActionRecorded", "CaseOpened", "CasePassivated",
                         "CaseStatusChanged", "CaseworkerAssigned"]
        note = next(e for e in one_store.case_events(key) if e.event_type == "CaseActionRecorded")
        assert note.payload.text == "Linje 1\nLinje 2"

    def test_write_back_steps_send_each_request_once(self, client, simulator, municipality):
        """Counted where SBSYS receives them: creating a case after the write-back's own search
        does not search again, and adding several parties reads the case's parties once."""
        received = simulator.faults.received
        person, first, second, third = (p.cpr for p in municipality.persons[:4])
        key = "glasplade:pathway-counted"
        search, template = ("POST", "/api/sag/search"), ("POST", "/api/v10/sag/template")
        person_search = ("POST", "/api/person/search")

        before = Counter(received)
        assert client.find_case_by_key(person, key) is None  # the write-back's search
        made = client.create_case(cpr=person, title="Forløb", template_id=2, external_key=key,
                                  parties=[first, first, person], search_first=False)
        step = Counter(received) - before
        assert step[search] == 1 and step[template] == 1
        assert step[person_search] == 2, "the primary person and the one other party, once each"

        read_parts = ("GET", f"/api/sag/{made['Id']}/part")
        add_part = ("POST", f"/api/sag/{made['Id']}/part")
        before = Counter(received)
        assert client.add_parties(made["Id"], [first, second, third, second]) is True
        step = Counter(received) - before
        assert step[read_parts] == 1, "the parties are read once for all parties added"
        assert step[add_part] == 2 and step[person_search] == 2  # second and third, once each
        cprs = {p["CPRnummer"].replace("-", "") for p in client.parties(made["Id"])}
        assert cprs == {person, first, second, third}

        before = Counter(received)
        assert client.add_parties(made["Id"], [first, second, third]) is False
        assert client.add_parties(made["Id"], [first]) is False
        step = Counter(received) - before
        assert step[read_parts] == 2 and step[add_part] == 0 and step[person_search] == 0

        # The parties a search gave (the write-back searches with them) are not read again.
        found = client.find_case_by_key(person, key)
        assert found is not None
        before = Counter(received)
        assert client.add_parties(made["Id"], [first, third], found["Parter"]) is False
        step = Counter(received) - before
        assert step[read_parts] == 0 and step[add_part] == 0 and step[person_search] == 0

        # Without the caller's search, create_case still finds the case it made (idempotent),
        # with one search and nothing written.
        before = Counter(received)
        again = client.create_case(cpr=person, title="Forløb", template_id=2, external_key=key)
        step = Counter(received) - before
        assert again["Id"] == made["Id"]
        assert step[search] == 1 and step[template] == 0 and step[person_search] == 0

        # Passivating with the case and the status list the caller has read: one write only.
        found, statuses = client.find_case_by_key(person, key), client.status_list()
        before = Counter(received)
        client.passivate(made["Id"], current=found, statuses=statuses)
        step = Counter(received) - before
        assert step == Counter({("PUT", f"/api/sag/{made['Id']}/status"): 1})
        assert client.case(made["Id"])["SagsStatus"]["SagsTilstand"] == "Passiv"
