"""Edges of access control, consent and the access log (data-protection review)."""

from __future__ import annotations

from datetime import date

from hub.domain import events as ev
from tests.api.conftest import catch_up, login
from tests.api.world import SECRET_ADDRESS, event


def _accessed(hub, after: int) -> list:
    return [e for e in hub.store.read(after=after) if e.event_type == "PersonRecordAccessed"]


def test_a_fagsystem_registration_does_not_lift_cpr_address_protection(client, world, hub):
    """CPR marked the person protected; a fagsystem registering the same person later (its
    PersonRegistered carries protected_address=false by default, and the fagsystem's name and
    address are ignored once CPR named the person) must not lift the protection."""
    hub.store.append([event(ev.PersonRegistered("Henrik", "Skjulesen", date(1975, 1, 30), "M",
                                                SECRET_ADDRESS, "G"),
                            person=world.hidden_cpr, source="fasit")])
    catch_up(hub)
    login(client, "anne")
    person = client.get(f"/api/v1/persons/{world.hidden}/overview").json()["person"]
    assert person["address"] is None and person["address_hidden"] is True, person
    hits = client.get("/api/v1/persons", params={"q": "Skjulesen"}).json()
    assert "Skjultvej" not in str(hits)


def _co_resident(hub, world) -> str:
    """Hanne lives with Henrik at his protected address; she has no protection herself (CPR
    protects each person on their own application)."""
    from hub.domain.cpr import synthetic_cpr
    hanne = synthetic_cpr(date(1977, 5, 2), 34)
    hub.store.append([event(ev.PersonRegistered("Hanne", "Bofælle", date(1977, 5, 2), "K",
                                                SECRET_ADDRESS, "U"),
                            person=hanne, source="cpr")])
    catch_up(hub)
    return hub.store.person_key(hanne)


def test_a_protected_address_is_not_shown_through_the_people_living_there(client, world, hub):
    _co_resident(hub, world)
    login(client, "anne")  # a caseworker may not see protected addresses
    r = client.get(f"/api/v1/persons/{world.hidden}/overview")
    assert r.status_code == 200, r.text
    assert r.json()["person"]["address"] is None
    # his overview lists her as living at his address, with her address in full
    assert "Skjultvej" not in r.text, [m["person"]["address"] for m in r.json()["household"]]
    r = client.get(f"/api/v1/persons/{world.hidden}/household")
    assert "Skjultvej" not in r.text


def test_a_protected_person_is_not_placed_at_a_co_residents_address(client, world, hub):
    hanne = _co_resident(hub, world)
    login(client, "anne")
    body = client.get(f"/api/v1/persons/{hanne}/overview").json()
    assert body["person"]["address"]["street"] == "Skjultvej"  # hers: not protected
    placed = [m for m in body["household"]
              if m["person"]["person_key"] == world.hidden and m["same_address"]]
    # "Henrik Skjulesen lives at Hanne's address" is his protected address
    assert placed == [], placed
    page = client.get(f"/borger/{hanne}").text
    assert "Skjulesen" not in page or "bor på adressen" not in page


def test_household_members_named_in_an_overview_are_recorded(client, world, hub):
    """The mother's overview lists her child with the child's CPR number and address; the
    child's access log must then show that the caseworker saw them (or the list must not carry
    them: the dashboard shows name, relation and birth date only)."""
    login(client, "jonas")
    before = hub.store.max_position()
    body = client.get(f"/api/v1/persons/{world.mother}/overview").json()
    assert [m["person"]["person_key"] for m in body["household"]] == [world.child]
    (recorded,) = _accessed(hub, before)  # one event for the view, naming everyone it showed
    shown = {m["person"]["person_key"] for m in body["household"] + body["children"]}
    assert recorded.person_key == world.mother and set(recorded.payload.others) == shown
    login(client, "rikke")  # the auditor finds the view in the child's access log
    rows = client.get("/api/v1/access-log", params={"person": world.child}).json()
    assert ("jonas", "named-in-overview", "person") in {
        (r["user_id"], r["view"], r["access"]) for r in rows}, rows


def test_consent_days_are_danish_calendar_days_on_a_utc_server(hub, world, monkeypatch):
    """The image (python:3.11-slim, no TZ) runs in UTC. Shortly after midnight Danish time a
    consent "valid until yesterday" has run out; the server must not still apply it because
    its UTC date is still yesterday."""
    import os
    import time
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from fastapi.testclient import TestClient

    from hub.api.app import create_app
    from tests.api.conftest import api_config

    danish_today = datetime.now(ZoneInfo("Europe/Copenhagen")).date()
    yesterday = danish_today - timedelta(days=1)
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        hub.store.append([event(ev.ConsentGiven("C-Y", "casework", ("BUF-MYN-N",),
                                                date(2026, 1, 1), yesterday),
                                person=world.mother_cpr, source="fasit")])
        # 23:30 UTC yesterday = 00:30 (winter) or 01:30 (summer) today in Copenhagen
        instant = datetime.combine(yesterday, datetime.min.time(), UTC) + timedelta(
            hours=23, minutes=30)
        monkeypatch.setattr(time, "time", lambda: instant.timestamp())
        with TestClient(create_app(hub, config=api_config())) as c:  # the default clock
            login(c, "anne")
            body = c.get(f"/api/v1/persons/{world.mother}/overview").json()
        job = {x["case_key"]: x for x in body["cases"]}[world.job_case]
        assert job["decision"]["level"] == "existence", job["decision"]
        assert body["consents"][0]["state"] == "expired"
    finally:
        monkeypatch.undo()
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()


def test_a_pathways_shared_plan_is_content_of_its_anchor_unit(client, world, hub):
    """A coordinated pathway anchored in the children's unit (written back as a pathway case
    there): its plan text is case content, not person data. The jobcentre caseworker, without
    consent, sees that it exists and who holds it, not the plan."""
    plan = "Mor i misbrugsbehandling; barnet i aflastning to weekender om måneden"
    hub.store.append([
        event(ev.PathwayStarted("p-9", "BUF-MYN-N", "Myndighed Børn og Familie, team Nord",
                                None, (world.child_cpr,)), person=world.mother_cpr,
              source="glasplade"),
        event(ev.PathwayPlanUpdated("p-9", plan, 40), person=world.mother_cpr,
              source="glasplade"),
    ])
    catch_up(hub)
    login(client, "anne")  # anchor unit: sees the plan
    assert plan in client.get(f"/api/v1/persons/{world.mother}/overview").text
    login(client, "jonas")
    body = client.get(f"/api/v1/persons/{world.mother}/overview").json()
    assert [p["anchor_unit_id"] for p in body["pathways"]] == ["BUF-MYN-N"]
    assert plan not in str(body), body["pathways"]


def test_an_auditors_search_is_recorded_as_audit_not_as_casework(client, world, hub):
    """The auditor finds whose log to read; the log must not say the auditor looked the
    citizen up for casework (a purpose the auditor's role does not have)."""
    from tests.api.test_pages import page_login
    page_login(client, "rikke")
    before = hub.store.max_position()
    r = client.get("/adgangslog", params={"q": "Emil"})
    assert r.status_code == 200 and "Emil Glasmose" in r.text
    login(client, "rikke")
    client.get("/api/v1/persons", params={"q": "Emil"})
    searches = [e for e in _accessed(hub, before) if e.payload.view == "search"]
    assert len(searches) == 2
    assert {e.payload.purpose for e in searches} == {"audit"}, [
        e.payload.purpose for e in searches]


def test_a_refused_cpr_search_is_recorded_as_an_attempt(client, world, hub):
    """A refused look is recorded (docs/api.md: ``denied``): an admin who may not search
    citizens but tries a CPR number has tried to look up that person."""
    login(client, "dennis")
    before = hub.store.max_position()
    r = client.get("/api/v1/persons", params={"q": world.mother_cpr})
    assert r.status_code == 403
    tried = [(e.person_key, e.payload.view, e.payload.access) for e in _accessed(hub, before)]
    assert tried == [(world.mother, "search", "denied")], tried


def test_everyone_a_household_view_names_is_recorded(client, world, hub):
    """The child's father lives elsewhere and is related to the child only: the mother's
    household view shows him (CPR number, address) inside the child's overview."""
    from hub.domain.cpr import synthetic_cpr
    father = synthetic_cpr(date(1985, 2, 14), 55)
    hub.store.append([
        event(ev.PersonRegistered("Søren", "Fjernsen", date(1985, 2, 14), "M",
                                  ev.Address("Fjernvej", "3", "5000", "Glasby",
                                             address_id="addr-fjern-3"), "U"),
              person=father, source="cpr"),
        event(ev.PersonRelationChanged("parent", father, "added"), person=world.child_cpr,
              source="cpr"),
    ])
    catch_up(hub)
    login(client, "anne")
    before = hub.store.max_position()
    r = client.get(f"/api/v1/persons/{world.mother}/household")
    assert r.status_code == 200, r.text
    assert father in r.text  # in the child's household list
    others = {e.person_key: e.payload.others for e in _accessed(hub, before)}
    assert hub.store.person_key(father) in others[world.child]  # the child's entry names him
    login(client, "rikke")  # the auditor finds the view in the father's access log
    rows = client.get("/api/v1/access-log",
                      params={"person": hub.store.person_key(father)}).json()
    assert ("anne", "named-in-household", "person") in {
        (r["user_id"], r["view"], r["access"]) for r in rows}, rows
