"""The Cura connector against the Cura FHIR simulator over a real socket."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import httpx
import pytest

from connectors.cura import fhir
from connectors.http import RequestRejected
from hub.config import Settings
from hub.ingest.connector import AuthenticationFailed
from hub.synthetic.model import CaseAction, Municipality, StatusChange
from tests.connectors.suite import ConnectorSuite


def cura_expected(m: Municipality) -> dict[str, int]:
    n: Counter[str] = Counter()
    for c in m.cases:
        if c.system != "cura":
            continue
        n["CaseOpened"] += 1
        if c.caseworker_id:
            n["CaseworkerAssigned"] += 1
        if c.status_history and c.status_history[-1].at > c.opened_at:
            n["CaseStatusChanged"] += 1
            n["CaseClosed"] += c.status == "closed"
            n["CasePassivated"] += c.status == "passive"
        for g in c.grants:
            n["GrantAwarded"] += 1
            n["GrantEnded"] += bool(g.valid_to and g.valid_to <= m.as_of.date())
        n["CaseActionRecorded"] += len(c.actions)
    return {k: v for k, v in n.items() if v}


class TestCura(ConnectorSuite):
    name = "cura"
    extra_env = {"CURA_PAGE_SIZE": "5"}

    def expected_counts(self, municipality):
        return cura_expected(municipality)

    # --- Cura's own behaviour ---------------------------------------------------------------

    def test_three_step_login_headers(self, connect, simulator):
        client = connect().client
        headers = client.auth.headers(client.http)
        assert headers["Authorization"].startswith("Bearer ")
        assert headers["CuraSessionToken"].startswith("Bearer ")
        assert headers["CURA-API-KEY"]
        # Without the session token the FHIR API refuses.
        r = httpx.get(f"{simulator.url}/fhir/Basic", headers={
            "Authorization": headers["Authorization"], "CURA-API-KEY": headers["CURA-API-KEY"]})
        assert r.status_code == 401

    def test_wrong_password_is_authentication_failed(self, connect, monkeypatch):
        monkeypatch.setenv("CURA_PASSWORD", "wrong")
        with pytest.raises(AuthenticationFailed):
            connect().check()

    def test_patient_by_identifier(self, connect, municipality):
        cpr = next(c.person for c in municipality.cases if c.system == "cura")
        patient = connect().client.patient_by_cpr(cpr)
        assert patient["identifier"][0] == {"system": fhir.CPR_SYSTEM, "value": cpr}
        assert connect().client.patient_by_cpr("0101999999") is None

    def test_bundle_paging_by_next_links(self, connect, municipality):
        client = connect().client
        bundles = list(client.search("ProcedureRequest", {"_profile": fhir.GRANT,
                                                          "_count": "4"}))
        grants = sum(len(c.grants) for c in municipality.cases if c.system == "cura")
        assert bundles[0]["total"] == grants
        assert len(bundles) == -(-grants // 4)
        ids = [e["resource"]["id"] for b in bundles for e in b["entry"]]
        assert len(ids) == len(set(ids)) == grants

    def test_count_above_the_server_limit_is_rejected(self, connect):
        with pytest.raises(RequestRejected) as info:
            connect().client.get_json("Basic", params={"_count": "5000"})
        assert info.value.status_code == 400

    def test_incremental_read_sees_only_changes(self, one_store, connect, municipality):
        runner = self.runner(one_store, connect())
        assert runner.run_once().ok
        case = next(c for c in municipality.cases if c.system == "cura" and c.status == "open")
        municipality.as_of += timedelta(hours=1)
        at = municipality.as_of
        case.status = "closed"
        case.closed_at = at
        case.status_history.append(StatusChange("closed", at))
        case.actions.append(CaseAction(f"{case.case_id}-NEW", "journal_note", at, "Afslutning",
                                       text="Sagen afsluttes"))
        case.updated_at = at
        report = runner.run_once()
        assert report.ok and report.stored == 3  # status changed, closed, journal note
        # Only the changed case was read again (its opened and caseworker facts are known).
        assert report.duplicates == 2
        types = [e.event_type for e in one_store.case_events(case.case_key)]
        assert sorted(types[-3:]) == ["CaseActionRecorded", "CaseClosed", "CaseStatusChanged"]

    def test_short_lived_tokens_are_refreshed_during_a_sweep(self, one_store, connect, simulator,
                                                             municipality):
        simulator.faults.set(token_ttl=0.8, latency=0.08)
        connector = connect()
        connector.client.auth.margin = 0.0
        report = self.runner(one_store, connector).run_once()
        assert report.ok, report
        assert connector.client.auth.logins >= 2
        assert self.stored_counts(one_store) == cura_expected(municipality)

    def test_missing_setting_names_the_variable(self, monkeypatch):
        from connectors.cura.connector import from_settings
        from hub.config import ConfigError
        monkeypatch.delenv("CURA_BASE_URL", raising=False)
        with pytest.raises(ConfigError, match="CURA_"):
            from_settings(Settings())

    def test_patients_come_included_in_the_bundles(self, one_store, connect):
        connector = connect()
        report = self.runner(one_store, connector).run_once()
        assert report.ok
        # One request per page: the subjects' CPR numbers came with _include, no Patient reads.
        assert connector.client.requests == report.connectors["cura"].batches

    def test_secrets_from_files(self, connect, monkeypatch, tmp_path):
        connect()  # the simulator's settings in the environment
        import os
        for key in ("PASSWORD", "API_KEY"):
            secret = tmp_path / key.lower()
            secret.write_text(os.environ[f"CURA_{key}"] + "\n")
            monkeypatch.delenv(f"CURA_{key}")
            monkeypatch.setenv(f"CURA_{key}_FILE", str(secret))
        connect().check()

    def test_a_grant_decided_earlier_today_is_not_missed(self, one_store, connect,
                                                         municipality):
        """Grants carry dates only; one added after the last read, dated before the cursor,
        is still read (the server stamps the new version when it appears)."""
        runner = self.runner(one_store, connect())
        assert runner.run_once().ok
        case = next(c for c in municipality.cases if c.system == "cura" and c.grants)
        old = case.grants[0]
        from dataclasses import replace
        case.grants.append(replace(old, grant_id=f"{old.grant_id}-LATE", valid_to=None))
        municipality.as_of += timedelta(hours=1)
        report = runner.run_once()
        assert report.ok and report.stored == 1
        assert any(e.event_type == "GrantAwarded" and e.payload.grant_id.endswith("-LATE")
                   for e in one_store.case_events(case.case_key))
