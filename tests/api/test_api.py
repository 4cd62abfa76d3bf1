"""The JSON API: search, overview, household, case history, consent, access log, errors."""

from __future__ import annotations

from tests.api.conftest import catch_up, login


def _cases(body):
    return {c["case_key"]: c for c in body["cases"]}


def test_requires_login(client, world):
    r = client.get(f"/api/v1/persons/{world.mother}/overview")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not-authenticated"


def test_search_by_cpr_and_name_records_each_hit(client, world, hub):
    login(client, "anne")
    before = hub.store.max_position()
    dashed = world.mother_cpr[:6] + "-" + world.mother_cpr[6:]
    r = client.get("/api/v1/persons", params={"q": dashed})
    assert r.status_code == 200, r.text
    assert [p["person_key"] for p in r.json()] == [world.mother]
    r = client.get("/api/v1/persons", params={"q": "glasmose"})
    assert {p["first_name"] for p in r.json()} == {"Maja", "Emil"}
    accessed = [e for e in hub.store.read(after=before) if e.event_type == "PersonRecordAccessed"]
    assert len(accessed) == 3 and {e.payload.view for e in accessed} == {"search"}
    assert all(e.actor == "anne" for e in accessed)


def test_search_errors_are_clear(client, world):
    login(client, "anne")
    r = client.get("/api/v1/persons", params={"q": "x"})
    assert r.status_code == 400 and "two letters" in r.json()["error"]["message"]
    r = client.get("/api/v1/persons", params={"q": "3213131234"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad-cpr"
    r = client.get("/api/v1/persons", params={"q": "glasmose", "limit": 0})
    assert r.status_code == 422 and r.json()["error"]["details"]


def test_caseworker_sees_own_unit_and_only_existence_of_others(client, world, hub):
    login(client, "anne")
    r = client.get(f"/api/v1/persons/{world.mother}/overview")
    assert r.status_code == 200, r.text
    body = r.json()
    cases = _cases(body)
    job = cases[world.job_case]
    assert job["decision"]["level"] == "existence" and job["title"] is None
    assert job["unit_id"] == "JC-KONT" and job["primary"]["name"] == "Jonas Vestergaard"
    assert body["grants"] == [] and body["hidden_grants"] == 1
    assert body["access"] == "existence"
    child = _cases(client.get(f"/api/v1/persons/{world.child}/overview").json())
    assert child[world.child_case]["decision"]["code"] == "own-unit"
    assert child[world.child_case]["title"] == "Forebyggende foranstaltning"
    last = hub.store.read(after=hub.store.max_position() - 1)[0]
    assert last.event_type == "PersonRecordAccessed" and last.person_key == world.child
    assert (last.payload.view, last.payload.access, last.payload.purpose) == (
        "overview", "full", "casework")


def test_consent_opens_and_withdrawal_closes_at_once(client, world):
    login(client, "anne")
    url = f"/api/v1/persons/{world.mother}"
    r = client.post(f"{url}/consents", json={"purpose": "casework"})
    assert r.status_code == 201, r.text
    consent = r.json()
    assert consent["unit_ids"] == ["BUF-MYN-N"] and consent["state"] == "given"
    # No projection catch-up in between: the decision reads consent from the store.
    cases = _cases(client.get(f"{url}/overview").json())
    assert cases[world.job_case]["decision"]["code"] == "consent"
    assert cases[world.job_case]["title"] == "Kontanthjælp — aktivitetsparat"
    # another purpose is not covered
    other = _cases(client.get(f"{url}/overview", params={"purpose": "notification"}).json())
    assert other[world.job_case]["decision"]["level"] == "existence"
    r = client.post(f"{url}/consents/{consent['consent_id']}/withdraw", json={"reason": "ønske"})
    assert r.status_code == 204, r.text
    cases = _cases(client.get(f"{url}/overview").json())
    assert cases[world.job_case]["decision"]["level"] == "existence"
    r = client.post(f"{url}/consents/{consent['consent_id']}/withdraw")
    assert r.status_code == 409
    r = client.post(f"{url}/consents/nope/withdraw")
    assert r.status_code == 404


def test_a_consent_given_under_a_substitute_number_counts_after_the_cpr_replaces_it(
        client, world, hub):
    from datetime import date

    from hub.domain import events as ev
    from hub.domain.cpr import synthetic_cpr
    from tests.api.world import event

    substitute = synthetic_cpr(date(1990, 6, 1), 44, substitute=True)
    cpr = synthetic_cpr(date(1990, 6, 1), 45)
    hub.store.append([
        event(ev.CaseOpened("JOBCENTER", "JC-KONT", "Jobcenter, kontanthjælp", "kontanthjaelp",
                            "open", "Sygedagpenge", "LAB", "2"),
              person=substitute, case="fasit:F-900", source="fasit"),
        event(ev.ConsentGiven("C-SUB", "casework", ("BUF-MYN-N",), date(2025, 1, 1)),
              person=substitute, source="fasit"),
        event(ev.PersonIdentifierReplaced(substitute, cpr), person=cpr, source="cpr"),
    ])
    catch_up(hub)
    login(client, "anne")
    body = client.get(f"/api/v1/persons/{hub.store.person_key(cpr)}/overview").json()
    case = _cases(body)["fasit:F-900"]
    assert case["decision"]["code"] == "consent", case
    assert case["title"] == "Sygedagpenge"
    # withdrawn under the new number: the old consent no longer counts
    r = client.post(f"/api/v1/persons/{hub.store.person_key(cpr)}/consents/C-SUB/withdraw")
    assert r.status_code == 204, r.text
    body = client.get(f"/api/v1/persons/{hub.store.person_key(cpr)}/overview").json()
    assert _cases(body)["fasit:F-900"]["decision"]["level"] == "existence"


def test_consent_input_errors(client, world):
    login(client, "anne")
    url = f"/api/v1/persons/{world.mother}/consents"
    r = client.post(url, json={"purpose": "curiosity"})
    assert r.status_code == 400 and "unknown purpose" in r.json()["error"]["message"]
    r = client.post(url, json={"purpose": "casework", "valid_from": "2026-01-10",
                               "valid_until": "2026-01-01"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad-period"
    r = client.post(url, json={"purpose": "casework", "valid_from": "not a date"})
    assert r.status_code == 422
    r = client.post("/api/v1/persons/unknown/consents", json={"purpose": "casework"})
    assert r.status_code == 404
    login(client, "rikke")  # an auditor records no consent
    r = client.post(url, json={"purpose": "casework"})
    assert r.status_code == 403


def test_expired_consent_does_not_count(client, world):
    login(client, "anne")
    url = f"/api/v1/persons/{world.mother}"
    client.post(f"{url}/consents", json={"purpose": "casework", "valid_from": "2025-01-01",
                                         "valid_until": "2025-12-31"})
    body = client.get(f"{url}/overview").json()
    assert _cases(body)[world.job_case]["decision"]["level"] == "existence"
    assert body["consents"][0]["state"] == "expired"


def test_household_shows_and_records_every_member(client, world, hub):
    login(client, "anne")
    before = hub.store.max_position()
    r = client.get(f"/api/v1/persons/{world.mother}/household")
    assert r.status_code == 200, r.text
    members = r.json()["members"]
    assert [m["person"]["first_name"] for m in members] == ["Maja", "Emil"]
    logged = {e.person_key for e in hub.store.read(after=before)
              if e.event_type == "PersonRecordAccessed"}
    assert logged == {world.mother, world.child}


def test_protected_address_hidden_except_for_authorised_role(client, world):
    login(client, "anne")
    person = client.get(f"/api/v1/persons/{world.hidden}/overview").json()["person"]
    assert person["address"] is None and person["address_hidden"] is True
    login(client, "lise")  # leaders are authorised in the default policy
    person = client.get(f"/api/v1/persons/{world.hidden}/overview").json()["person"]
    assert person["address"]["street"] == "Skjultvej"


def test_case_history_needs_content_rights(client, world):
    login(client, "jonas")
    r = client.get(f"/api/v1/cases/{world.job_case}/history")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["event_type"] for e in body["entries"]][:2] == ["CaseOpened", "CaseworkerAssigned"]
    assert all(e["recorded_at"] for e in body["entries"])
    login(client, "anne")
    body = client.get(f"/api/v1/cases/{world.job_case}/history").json()
    assert body["entries"] == [] and body["case"]["decision"]["level"] == "existence"
    assert client.get("/api/v1/cases/fasit:NOPE/history").status_code == 404


def test_auditor_sees_access_log_but_no_content(client, world):
    login(client, "anne")
    client.get(f"/api/v1/persons/{world.mother}/overview")
    login(client, "rikke")
    r = client.get(f"/api/v1/persons/{world.mother}/overview")
    assert r.status_code == 403
    r = client.get("/api/v1/access-log", params={"person": world.mother})
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [(e["user_id"], e["view"]) for e in rows][:2] == [("rikke", "overview"),
                                                              ("anne", "overview")]
    assert rows[0]["access"] == "denied" and rows[1]["person_name"] == "Maja Glasmose"
    by_user = client.get("/api/v1/access-log", params={"user": "anne"}).json()
    assert by_user and {e["user_id"] for e in by_user} == {"anne"}
    assert client.get("/api/v1/access-log").status_code == 400
    login(client, "anne")
    assert client.get("/api/v1/access-log", params={"user": "anne"}).status_code == 403


def test_access_log_lists_its_own_reads(client, world, hub):
    login(client, "rikke")
    client.get("/api/v1/access-log", params={"person": world.child})
    catch_up(hub)
    rows = client.get("/api/v1/access-log", params={"person": world.child}).json()
    assert rows[0]["view"] == "access_log" and rows[0]["user_id"] == "rikke"


def test_unknown_person_and_path(client, world):
    login(client, "anne")
    r = client.get("/api/v1/persons/nobody/overview")
    assert r.status_code == 404 and r.json()["error"]["message"] == "person not found"
    assert client.get("/api/v1/nothing").json()["error"]["status"] == 404


def test_removed_user_is_logged_out(app, client, world):
    from hub.api.users import UserDirectory
    login(client, "anne")
    app.state.ctx.config = type(app.state.ctx.config)(**{
        **app.state.ctx.config.__dict__, "users": UserDirectory(())})
    assert client.get(f"/api/v1/persons/{world.mother}/overview").status_code == 401


def test_forged_session_cookie_is_rejected(client, world):
    client.cookies.set("glasplade_session", "eyJ1c2VyIjp7fX0=.forged.sig")
    assert client.get("/api/v1/session").status_code == 401


def test_openapi_lists_versioned_paths(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for p in ("/api/v1/persons", "/api/v1/persons/{person_key}/overview",
              "/api/v1/persons/{person_key}/household", "/api/v1/cases/{case_key}/history",
              "/api/v1/access-log", "/api/v1/persons/{person_key}/consents"):
        assert p in paths, p


def test_no_answer_without_a_recorded_view(client, world, hub, monkeypatch):
    from hub.store.contract import StoreError

    login(client, "anne")

    def down(*a, **kw):
        raise StoreError("could not connect")

    monkeypatch.setattr(hub.store, "append", down)
    r = client.get(f"/api/v1/persons/{world.child}/overview")
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
    assert "Emil" not in r.text


def test_auditor_search_finds_whom_not_where(client, world):
    login(client, "rikke")
    hits = client.get("/api/v1/persons", params={"q": "Maja"}).json()
    assert hits[0]["first_name"] == "Maja" and hits[0]["address"] is None
    login(client, "dennis")  # an admin does not search citizens
    assert client.get("/api/v1/persons", params={"q": "Maja"}).status_code == 403


def test_reading_a_users_log_records_every_person_named(client, world, hub):
    login(client, "anne")
    client.get(f"/api/v1/persons/{world.mother}/overview")
    client.get(f"/api/v1/persons/{world.child}/overview")
    login(client, "rikke")
    before = hub.store.max_position()
    rows = client.get("/api/v1/access-log", params={"user": "anne"}).json()
    assert {r["person_key"] for r in rows} == {world.mother, world.child}
    audit = [e for e in hub.store.read(after=before) if e.event_type == "PersonRecordAccessed"]
    assert {e.person_key for e in audit} == {world.mother, world.child}
    assert {(e.payload.view, e.payload.access, e.actor) for e in audit} == {
        ("access_log", "audit", "rikke")}
