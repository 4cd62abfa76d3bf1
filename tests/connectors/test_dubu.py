"""The DUBU connector against the DUBU OData simulator over a real socket.

DUBU has no change feed: every pass is a snapshot sweep diffed against the store. Besides the
standard suite: unchanged data adds nothing, a status flip-flop records every change once, a
case hidden by DUBU's read-after-create delay is caught by a later sweep.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import httpx
import pytest

from connectors.http import RequestRejected
from connectors.snapshot import INACTIVE
from hub.config import ConfigError, Settings
from hub.ingest.connector import AuthenticationFailed
from hub.synthetic.model import Case, CaseAction, Municipality, StatusChange
from tests.connectors.conftest import case_event_counts
from tests.connectors.suite import ConnectorSuite


def dubu_expected(m: Municipality) -> dict[str, int]:
    n = case_event_counts(m, "dubu")
    return {k: v for k, v in n.items() if v}


def set_status(case: Case, status: str, at) -> None:
    case.status = status
    case.status_history.append(StatusChange(status, at))
    case.closed_at = at if status in INACTIVE else None
    case.updated_at = at


class TestDubu(ConnectorSuite):
    name = "dubu"
    extra_env = {"DUBU_PAGE_SIZE": "4"}

    @pytest.fixture(autouse=True)
    def _same_store(self, request, monkeypatch):
        """The registry's factory gets only Settings; the connector diffs against the store at
        GLASPLADE_STORE_URL, so point that at the test's store (as ``glasplade run`` does)."""
        for name in ("store_url", "sqlite_url"):  # ``one_store`` is on ``sqlite_url``
            if name in request.fixturenames:
                monkeypatch.setenv("GLASPLADE_STORE_URL", request.getfixturevalue(name))
                return
        monkeypatch.setenv("GLASPLADE_STORE_URL", "sqlite:///:memory:")  # no store in use

    def expected_counts(self, municipality):
        return dubu_expected(municipality)

    def types(self, store, case: Case) -> list[str]:
        return [e.event_type for e in store.case_events(f"dubu:{self.sag_id(case)}")]

    @staticmethod
    def sag_id(case: Case) -> str:
        from connectors.dubu.simulator.world import _int_id
        return str(_int_id(case.case_id, 100_000))

    # --- snapshots and diffs ----------------------------------------------------------------

    def test_status_flip_flop_records_each_change_once(self, store, connect, municipality):
        runner = self.runner(store, connect())
        assert runner.run_once().ok
        case = next(c for c in municipality.cases if c.system == "dubu" and c.status == "open")
        t0 = municipality.as_of
        for i, status in enumerate(["closed", "open", "closed"]):
            set_status(case, status, t0 + timedelta(days=i + 1))
            report = runner.run_once()
            assert report.ok and report.stored == 2, (status, report)  # changed + closed/reopened
            assert runner.run_once().stored == 0  # and nothing again for the same snapshot
        changes = [e.payload for e in store.case_events(f"dubu:{self.sag_id(case)}")
                   if e.event_type == "CaseStatusChanged"]
        assert [(p.previous_status, p.status) for p in changes] == [
            ("open", "closed"), ("closed", "open"), ("open", "closed")]
        assert Counter(self.types(store, case)) >= Counter(
            {"CaseClosed": 2, "CaseReopened": 1})

    def test_caseworker_change_and_new_activity(self, store, connect, municipality):
        runner = self.runner(store, connect())
        assert runner.run_once().ok
        case = next(c for c in municipality.cases if c.system == "dubu" and c.status == "open")
        old = case.caseworker_id
        case.caseworker_id = next(w.caseworker_id for w in municipality.caseworkers
                                  if w.unit_id == case.unit_id and w.caseworker_id != old)
        case.actions.append(CaseAction(f"{case.case_id}-NEW", "meeting",
                                       municipality.as_of, "Netværksmøde"))
        report = runner.run_once()
        assert report.ok and report.stored == 3
        assert self.types(store, case)[-3:] == [
            "CaseworkerUnassigned", "CaseworkerAssigned", "CaseActionRecorded"]
        assert store.case_events(f"dubu:{self.sag_id(case)}")[-1].payload.action_type == "meeting"
        assert runner.run_once().stored == 0

    def test_read_after_create_delay_is_caught_by_a_later_sweep(
            self, store, connect, simulator, municipality):
        runner = self.runner(store, connect())
        assert runner.run_once().ok
        simulator.faults.set(read_after_create_delay=0.6)
        template = next(c for c in municipality.cases if c.system == "dubu")
        new = Case("777001", "dubu", "BUF", template.unit_id, "Underretning", "Ny sag",
                   template.person, municipality.as_of, caseworker_id=template.caseworker_id)
        simulator.world.add_case(new)
        first = runner.run_once()
        assert first.ok and first.stored == 0, "DUBU does not show the new case yet"
        time.sleep(0.7)
        later = runner.run_once()
        assert later.ok and later.stored == 2  # opened + caseworker
        assert self.types(store, new) == ["CaseOpened", "CaseworkerAssigned"]

    def test_a_new_process_knows_what_the_store_knows(self, store, connect, municipality):
        assert self.runner(store, connect()).run_once().ok
        case = next(c for c in municipality.cases if c.system == "dubu" and c.status == "open")
        set_status(case, "passive", municipality.as_of)
        # A fresh connector (a restarted process) derives the last seen state from the store.
        report = self.runner(store, connect()).run_once()
        assert report.ok and report.stored == 2
        assert self.types(store, case)[-2:] == ["CaseStatusChanged", "CasePassivated"]

    def test_dead_letter_reason_names_the_field_not_the_value(self, store, connect,
                                                              simulator, municipality):
        simulator.faults.set(malformed_rate=0.5)
        assert self.runner(store, connect()).run_once().ok
        dead = store.dead_letters(source_system="dubu")
        assert dead
        cprs = {p.cpr for p in municipality.persons}
        for d in dead:
            assert d.source_record_id.startswith("Sag/")
            assert ("cprnr" in d.reason) or ("SagStatus99" in d.reason)
            assert not any(cpr in d.reason for cpr in cprs)

    # --- the dialect ------------------------------------------------------------------------

    def test_odata_paging_filter_and_expand(self, connect, municipality):
        client = connect().client
        dubu = [c for c in municipality.cases if c.system == "dubu"]
        page = client.sag_page(0, 5)
        assert page["@odata.count"] == len(dubu) and len(page["value"]) == 5
        rest = client.sag_page(5, 100)
        ids = [r["id"] for r in page["value"] + rest["value"]]
        assert ids == sorted(ids) and len(set(ids)) == len(dubu)
        person = page["value"][0]["primaerPerson"]
        assert set(person) <= {"alder", "cprnr", "fornavn", "mellemnavn", "efternavn", "id",
                               "organisationsnavn", "fuldeNavn", "navn"}
        assert len(person["cprnr"]) == 10
        closed = client.sag_page(0, 100, "status/brugervendtNoegle eq 'SagStatus2'")
        assert closed["@odata.count"] == sum(c.status == "closed" for c in dubu)
        active = client.sag_page(
            0, 100, "status/brugervendtNoegle ne 'SagStatus2' and status/brugervendtNoegle "
                    "ne 'SagStatus5'")
        assert active["@odata.count"] == len(dubu) - closed["@odata.count"]

    def test_top_above_the_limit_and_bad_filter_are_rejected(self, connect):
        client = connect().client
        with pytest.raises(RequestRejected) as info:
            client.sag_page(0, 500)
        assert info.value.status_code == 400 and "limit of '100'" in str(info.value)
        with pytest.raises(RequestRejected):
            client.sag_page(0, 5, "status/brugervendtNoegle eq")

    def test_no_session_cookie_is_refused(self, simulator):
        r = httpx.get(f"{simulator.url}/odata/Sag")
        assert r.status_code == 401

    def test_login_sets_the_saml_session_cookies(self, simulator):
        env = simulator.env()
        r = httpx.post(f"{simulator.url}/login", data={
            "SelectedAuthenticationUrl": env["DUBU_IDP"], "loginfmt": env["DUBU_USERNAME"],
            "passwd": env["DUBU_PASSWORD"]})
        assert r.status_code == 302
        assert {"oiosamlSession", "oiosamlCookie"} <= set(r.cookies.keys())

    def test_an_expired_session_is_redirected_to_the_login(self, simulator):
        env = simulator.env()
        login = httpx.post(f"{simulator.url}/login", data={
            "SelectedAuthenticationUrl": env["DUBU_IDP"], "loginfmt": env["DUBU_USERNAME"],
            "passwd": env["DUBU_PASSWORD"]})
        cookies = {k: login.cookies[k] for k in ("oiosamlSession", "oiosamlCookie")}
        assert httpx.get(f"{simulator.url}/odata/Sag", cookies=cookies).status_code == 200
        simulator.faults.expire_tokens()
        r = httpx.get(f"{simulator.url}/odata/Sag", cookies=cookies)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login")

    def test_a_redirect_to_the_login_logs_in_again(self, store, connect, simulator,
                                                    municipality):
        connector = connect()
        connector.check()
        logins = connector.client.auth.logins
        simulator.faults.expire_tokens()  # the next call is redirected, not refused
        report = self.runner(store, connector).run_once()
        assert report.ok, report
        assert connector.client.auth.logins == logins + 1
        assert self.stored_counts(store) == dubu_expected(municipality)

    def test_a_captured_session_that_expired_is_authentication_failed(
            self, connect, simulator, monkeypatch):
        env = simulator.env()
        login = httpx.post(f"{simulator.url}/login", data={
            "SelectedAuthenticationUrl": env["DUBU_IDP"], "loginfmt": env["DUBU_USERNAME"],
            "passwd": env["DUBU_PASSWORD"]})
        monkeypatch.setenv("DUBU_SESSION_COOKIE", "; ".join(
            f"{k}={login.cookies[k]}" for k in ("oiosamlSession", "oiosamlCookie")))
        connector = connect()
        connector.check()
        simulator.faults.expire_tokens()
        with pytest.raises(AuthenticationFailed, match="after a fresh login"):
            connector.check()

    def test_wrong_password_is_authentication_failed(self, connect, monkeypatch):
        monkeypatch.setenv("DUBU_PASSWORD", "forkert")
        with pytest.raises(AuthenticationFailed):
            connect().check()

    def test_expired_session_mid_sweep_is_renewed(self, store, connect, simulator,
                                                  municipality):
        simulator.faults.set(token_ttl=0.2, latency=0.02)
        connector = connect()
        connector.client.auth.margin = 0.0
        report = self.runner(store, connector).run_once()
        assert report.ok, report
        assert connector.client.auth.logins >= 2
        assert self.stored_counts(store) == dubu_expected(municipality)

    def test_configuration_names_the_variables(self, monkeypatch):
        from connectors.dubu.connector import from_settings
        monkeypatch.setenv("DUBU_BASE_URL", "http://127.0.0.1:9")
        monkeypatch.delenv("DUBU_USERNAME", raising=False)
        monkeypatch.delenv("DUBU_SESSION_COOKIE", raising=False)
        with pytest.raises(ConfigError, match="DUBU_USERNAME"):
            from_settings(Settings())
        monkeypatch.delenv("DUBU_BASE_URL")
        with pytest.raises(ConfigError, match="DUBU_BASE_URL"):
            from_settings(Settings())

    def test_password_from_a_secret_file(self, connect, monkeypatch, tmp_path, simulator):
        secret = tmp_path / "dubu-password"
        secret.write_text(simulator.env()["DUBU_PASSWORD"] + "\n")
        monkeypatch.delenv("DUBU_PASSWORD")
        monkeypatch.setenv("DUBU_PASSWORD_FILE", str(secret))
        connect().check()


# --- the simulator's OData query options (no server needed) -------------------------------

def test_odata_filter_grammar():
    from connectors.dubu.simulator.odata import ODataError, parse_expand, parse_filter
    rec = {"id": 7, "status": {"brugervendtNoegle": "SagStatus2"}, "titel": "Bo's sag"}
    assert parse_filter("status/brugervendtNoegle eq 'SagStatus2' and id gt 5")(rec)
    assert not parse_filter("not (id ge 7 or titel eq 'x')")(rec)
    assert parse_filter("startswith(titel,'Bo''s')")(rec)
    assert parse_filter("afdeling/orgEnhedId eq null")(rec)
    for bad in ("id eq", "id like 3", "(id eq 1", "id eq 1 id"):
        with pytest.raises(ODataError):
            parse_filter(bad)(rec)
    assert parse_expand("primaerPerson($select=cprnr,navn),afdeling", {"primaerPerson",
                                                                     "afdeling"}) == {
        "primaerPerson": {"cprnr", "navn"}, "afdeling": None}
    with pytest.raises(ODataError):
        parse_expand("hemmelig", {"primaerPerson"})


def test_simulated_dubu_ids_are_unique_per_kind():
    # A short hash once gave two activities of a 50,000-citizen municipality the same id, so
    # the store kept one of them as a duplicate of the other.
    from connectors.dubu.simulator.world import _int_id
    from hub.synthetic.generate import generate

    m = generate(20_000, 3)
    ids = [a.action_id for c in m.cases if c.system == "dubu" for a in c.actions]
    assert len(ids) > 5000
    assert len({_int_id(i, 10_000_000) for i in ids}) == len(set(ids))
    others = ["new-1", "new-2", "ny aktivitet", "d1", "d01", "e1", "D1", "d00000001"]
    assert len({_int_id(i, 10_000_000) for i in others}) == len(others)
