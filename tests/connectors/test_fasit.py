"""The Fasit connector against the Fasit simulator over a real socket: the standard suite, the
tenant header and bearer token, the fasitDsl search, journal notes and person-group markings
(read, and set/end as idempotent commands)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import httpx
import orjson
import pytest

from connectors.fasit.commands import CommandRejected, FasitMarkings
from connectors.fasit.dates import from_wire, parse_timestamp, timestamp_to_wire, to_wire
from connectors.http import RequestRejected
from hub.config import ConfigError, Settings
from hub.ingest.connector import AuthenticationFailed
from hub.store.contract import CursorUpdate
from hub.synthetic.model import Case, CaseAction, Marking, Municipality
from tests.connectors.conftest import case_event_counts
from tests.connectors.suite import ConnectorSuite

GROUP = "Sammenhængende borgerforløb"


def fasit_expected(m: Municipality) -> dict[str, int]:
    n = case_event_counts(m, "fasit")
    for mk in m.markings:
        if mk.system == "fasit":
            n["MarkingSet"] += 1
            n["MarkingEnded"] += bool(mk.valid_to and mk.valid_to <= date.today())
    return {k: v for k, v in n.items() if v}


@pytest.fixture
def municipality():
    from tests.connectors.conftest import make_municipality
    m = make_municipality()
    fasit_people = sorted({c.person for c in m.cases if c.system == "fasit"})
    m.markings.append(Marking("MK-1", fasit_people[0], "fasit", GROUP, date(2025, 3, 1)))
    m.markings.append(Marking("MK-2", fasit_people[1], "fasit", "Tyra - koordineret indsats",
                              date(2025, 1, 1), date(2025, 6, 30)))
    return m


class TestFasit(ConnectorSuite):
    name = "fasit"
    extra_env = {"FASIT_PAGE_SIZE": "4"}

    @pytest.fixture(autouse=True)
    def _same_store(self, request, monkeypatch):
        """The connector diffs case status against the store at GLASPLADE_STORE_URL."""
        for name in ("store_url", "sqlite_url"):  # ``one_store`` is on ``sqlite_url``
            if name in request.fixturenames:
                monkeypatch.setenv("GLASPLADE_STORE_URL", request.getfixturevalue(name))
                return
        monkeypatch.setenv("GLASPLADE_STORE_URL", "sqlite:///:memory:")  # no store in use

    def expected_counts(self, municipality):
        return fasit_expected(municipality)

    # --- tenant and token -------------------------------------------------------------------

    def token(self, simulator) -> str:
        env = simulator.env()
        r = httpx.post(env["FASIT_TOKEN_URL"], data={
            "grant_type": "client_credentials", "client_id": env["FASIT_CLIENT_ID"],
            "client_secret": env["FASIT_CLIENT_SECRET"]})
        assert r.status_code == 200
        return r.json()["access_token"]

    def test_missing_tenant_header_is_a_400_with_correlation_id(self, simulator):
        r = httpx.post(f"{simulator.url}/api/search", json={"pageSize": 10},
                       headers={"Authorization": f"Bearer {self.token(simulator)}"})
        assert r.status_code == 400
        assert "X-Tenant" in r.json()["title"]
        assert r.headers["X-CorrelationIdentifier"]

    def test_wrong_tenant_is_authentication_failed(self, connect, monkeypatch):
        monkeypatch.setenv("FASIT_TENANT", "andenkommune")
        with pytest.raises(AuthenticationFailed):
            connect().check()

    def test_missing_or_bad_token_is_a_401(self, simulator):
        tenant = {"X-Tenant": simulator.env()["FASIT_TENANT"]}
        assert httpx.post(f"{simulator.url}/api/search", json={},
                          headers=tenant).status_code == 401
        assert httpx.post(f"{simulator.url}/api/search", json={},
                          headers={**tenant, "Authorization": "Bearer x"}).status_code == 401

    def test_wrong_client_secret_is_authentication_failed(self, connect, monkeypatch):
        monkeypatch.setenv("FASIT_CLIENT_SECRET", "forkert")
        with pytest.raises(AuthenticationFailed):
            connect().check()

    def test_a_fixed_token_is_used_as_given(self, connect, monkeypatch, simulator):
        monkeypatch.setenv("FASIT_TOKEN", self.token(simulator))
        monkeypatch.delenv("FASIT_TOKEN_URL")
        connect().check()
        simulator.faults.expire_tokens()
        with pytest.raises(AuthenticationFailed):  # it cannot be renewed
            connect().check()

    # --- the dialect ------------------------------------------------------------------------

    def test_search_dsl_on_created_on_and_page_limit(self, connect, municipality):
        client = connect().client
        fasit = [c for c in municipality.cases if c.system == "fasit"]
        everyone = client.search([], 1, 250)
        assert everyone["totalResultsCount"] == len({c.person for c in fasit} | {
            mk.person for mk in municipality.markings})
        cut = sorted(c.opened_at for c in fasit)[-3]
        newer = client.search([{"field": "Cases.CreatedOn", "operator": "gt",
                                "value": cut.isoformat()}], 1, 250)
        assert newer["totalResultsCount"] == len({c.person for c in fasit if c.opened_at > cut})
        with pytest.raises(RequestRejected) as info:
            client.search([], 1, 251)
        assert info.value.status_code == 400

    def test_journal_notes_newest_first_and_stop_at_the_cursor(self, connect, municipality):
        client = connect().client
        case = next(c for c in municipality.cases if c.system == "fasit" and len(c.actions) == 2)
        cid = client.find_citizen(case.person)
        notes = list(client.journal_notes(cid, None))
        dates = [n["eventDate"] for n in notes]
        assert dates == sorted(dates, reverse=True) and len(notes) >= 2
        assert list(client.journal_notes(cid, dates[0])) == []
        assert len(list(client.journal_notes(cid, dates[1]))) >= 1

    def test_dates_are_local_midnight_in_utc(self):
        assert to_wire(date(2026, 4, 4)) == "2026-04-03T22:00:00.000Z"
        assert to_wire(date(2026, 1, 4)) == "2026-01-03T23:00:00.000Z"
        assert from_wire("2026-04-03T22:00:00.000Z") == date(2026, 4, 4)

    # --- changes found by the sweep and the created-on search -------------------------------

    def test_status_change_and_new_note_found_by_the_sweep(self, store, connect, municipality):
        runner = self.runner(store, connect())
        assert runner.run_once().ok
        case = next(c for c in municipality.cases if c.system == "fasit" and c.status == "open")
        now = datetime.now(municipality.as_of.tzinfo)
        case.status, case.closed_at = "closed", now
        case.actions.append(CaseAction(f"{case.case_id}-NY", "meeting", now, "Afsluttende møde"))
        report = runner.run_once()
        assert report.ok, report
        assert report.connectors["fasit"].streams == {"citizens": 3, "cases": 0}
        types = [e.event_type for e in store.case_events(f"fasit:{case.case_id}")]
        assert types[-3:] == ["CaseStatusChanged", "CaseClosed", "CaseActionRecorded"]
        assert runner.run_once().stored == 0
        # Reopened and closed again: each change once.
        case.status, case.closed_at = "open", None
        assert runner.run_once().stored == 2  # changed + reopened
        case.status, case.closed_at = "closed", now + timedelta(days=1)
        assert runner.run_once().stored == 2  # changed + closed
        changes = [e.payload.status for e in store.case_events(f"fasit:{case.case_id}")
                   if e.event_type == "CaseStatusChanged"]
        assert changes == ["closed", "open", "closed"]

    def test_a_note_back_dated_beyond_the_overlap_arrives_with_the_weekly_full_read(
            self, store, connect, municipality):
        runner = self.runner(store, connect())
        assert runner.run_once().ok
        case = next(c for c in municipality.cases if c.system == "fasit" and c.status == "open")
        cursor = orjson.loads(store.cursors("fasit")["citizens"])
        high_water = parse_timestamp(cursor["journal_max"])
        old = high_water - timedelta(days=60)
        case.actions.append(CaseAction(f"{case.case_id}-GL", "journal_note", old, "Gammelt notat"))
        assert runner.run_once().stored == 0  # below the high-water mark less 30 days
        state = orjson.loads(store.cursors("fasit")["citizens"])
        assert state["full"] is False and state["full_at"]
        # A week later the sweep reads every note again; only the back-dated one is new.
        week_ago = timestamp_to_wire(parse_timestamp(state["full_at"])
                                     - timedelta(days=7, seconds=1))
        store.append([], cursors=[CursorUpdate("fasit", "citizens", orjson.dumps(
            {**state, "full_at": week_ago}).decode())])
        report = runner.run_once()
        assert report.ok and report.stored == 1, report
        (note,) = [e for e in store.case_events(f"fasit:{case.case_id}")
                   if e.event_type == "CaseActionRecorded" and e.occurred_at == old]
        assert note.payload.title == "Gammelt notat"
        assert runner.run_once().stored == 0
        assert orjson.loads(store.cursors("fasit")["citizens"])["full_at"] > week_ago

    def test_new_case_found_by_created_on_while_the_sweep_is_not_due(
            self, store, connect, municipality, monkeypatch):
        monkeypatch.setenv("FASIT_SWEEP_INTERVAL_S", "3600")
        connector = connect()
        runner = self.runner(store, connector)
        first = runner.run_once()
        assert first.ok and first.connectors["fasit"].streams["cases"] == 0  # no double read
        assert self.stored_counts(store) == fasit_expected(municipality)
        person = next(c.person for c in municipality.cases if c.system == "fasit")
        other = next(c for c in municipality.cases if c.system == "fasit" and c.person != person)
        new = Case("F-NEW-1", "fasit", "JOBCENTER", "JC-KONT", "Sygedagpenge", "Ny sag",
                   person, datetime.now(municipality.as_of.tzinfo), caseworker_id="JC-KONT-CW0")
        municipality.cases.append(new)
        other.status = "closed"  # only the sweep would see this
        before = connector.client.requests
        report = runner.run_once()
        assert report.ok and report.connectors["fasit"].streams == {"citizens": 0, "cases": 2}
        assert connector.client.requests - before <= 3  # one search page, one getcases (+login)
        assert [e.event_type for e in store.case_events("fasit:F-NEW-1")] == [
            "CaseOpened", "CaseworkerAssigned"]
        assert not [e for e in store.case_events(f"fasit:{other.case_id}")
                    if e.event_type == "CaseClosed"]

    def test_cases_stream_searches_from_its_cursor(self, store, connect, municipality):
        connector = connect()
        assert self.runner(store, connector).run_once().ok
        state = orjson.loads(store.cursors("fasit")["cases"])
        fasit = [c for c in municipality.cases if c.system == "fasit"]
        newest = max(c.opened_at for c in fasit)
        assert state == {"since": timestamp_to_wire(newest), "page": 1,
                         "newest": timestamp_to_wire(newest)}
        cases_stream = connector.streams()[1]
        before = connector.client.requests
        batches = list(cases_stream.read(store.cursors("fasit")["cases"]))
        # One search page, then getcases only for the citizen(s) with a case created after
        # the cursor less the overlap: not a sweep of everyone.
        recent = {c.person for c in fasit if c.opened_at > newest - timedelta(minutes=10)}
        assert connector.client.requests - before == 1 + len(recent)
        assert sum(len(b.events) for b in batches) == 0

    # --- markings ---------------------------------------------------------------------------

    def test_markings_are_read(self, store, connect, municipality):
        assert self.runner(store, connect()).run_once().ok
        person = municipality.markings[0].person
        types = [e.event_type for e in store.person_events(person) if e.source_system == "fasit"
                 and e.event_type.startswith("Marking")]
        assert types == ["MarkingSet"]
        ended = [e for e in store.person_events(municipality.markings[1].person)
                 if e.event_type == "MarkingEnded"]
        assert len(ended) == 1 and ended[0].payload.ended_on == date(2025, 6, 30)

    def test_set_and_end_marking_are_idempotent(self, store, connect, municipality):
        connector = connect()
        markings = FasitMarkings(connector.client)
        cpr = next(c.person for c in municipality.cases if c.system == "fasit")
        first = markings.set_marking(cpr, GROUP, date(2026, 5, 1))
        again = markings.set_marking(cpr, GROUP, date(2026, 5, 2))
        assert first.created and not again.created and first.marking_id == again.marking_id
        runner = self.runner(store, connector)
        assert runner.run_once().ok
        ended = markings.end_marking(cpr, GROUP, date(2026, 5, 20))
        assert ended is not None and ended.marking_id == first.marking_id
        assert markings.end_marking(cpr, GROUP, date(2026, 5, 21)) is None
        assert runner.run_once().ok
        events = [e for e in store.person_events(cpr) if e.event_type.startswith("Marking")
                  and e.payload.marking_id == first.marking_id]
        assert [e.event_type for e in events] == ["MarkingSet", "MarkingEnded"]
        assert events[1].payload.ended_on == date(2026, 5, 20)
        assert runner.run_once().stored == 0

    def test_a_marking_looks_each_citizen_and_the_group_up_once(self, connect, municipality,
                                                                 simulator):
        """The write-back marks a family: each person is searched once (not again by the
        marking command) and the person groups are read once for all of them."""
        from collections import Counter

        from hub.targets.writers import ConnectorWriters

        cprs = list(dict.fromkeys(c.person for c in municipality.cases if c.system == "fasit"))
        family = cprs[:3]
        writers = ConnectorWriters(FasitMarkings(connect().client))
        received = simulator.faults.received
        search = ("POST", "/api/search/queries/rankedsearchquery")
        groups = ("GET", "/api/citizen/citizenmasterdata/persongroup/queries/getpersongroups")
        before = Counter(received)
        written = writers.set_marking(family, "fasit", GROUP, date(2026, 5, 1))
        step = Counter(received) - before
        assert written.changed and len(written.ref.split(",")) == 3
        assert step[search] == 3 and step[groups] == 1
        before = Counter(received)
        assert writers.end_marking(family, "fasit", GROUP, date(2026, 5, 20)).changed
        step = Counter(received) - before
        assert step[search] == 3 and step[groups] == 0

    def test_marking_commands_refuse_unknown_group_or_citizen(self, connect, municipality):
        markings = FasitMarkings(connect().client)
        cpr = next(c.person for c in municipality.cases if c.system == "fasit")
        with pytest.raises(CommandRejected):
            markings.set_marking(cpr, "Findes ikke", date(2026, 5, 1))
        outsider = next(p.cpr for p in municipality.persons if p.cpr not in {
            c.person for c in municipality.cases if c.system == "fasit"} | {
            mk.person for mk in municipality.markings})
        with pytest.raises(CommandRejected):
            markings.set_marking(outsider, GROUP, date(2026, 5, 1))

    def test_configuration_names_the_variables(self, monkeypatch):
        from connectors.fasit.connector import from_settings
        monkeypatch.setenv("FASIT_BASE_URL", "http://127.0.0.1:9")
        monkeypatch.delenv("FASIT_TENANT", raising=False)
        with pytest.raises(ConfigError, match="FASIT_TENANT"):
            from_settings(Settings())
        monkeypatch.setenv("FASIT_TENANT", "glasby")
        monkeypatch.delenv("FASIT_TOKEN", raising=False)
        monkeypatch.delenv("FASIT_TOKEN_URL", raising=False)
        with pytest.raises(ConfigError, match="FASIT_TOKEN"):
            from_settings(Settings())
