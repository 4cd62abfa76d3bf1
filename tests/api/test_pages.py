"""The Danish dashboard through the app (HTML), plus health, readiness and metrics."""

from __future__ import annotations

import re

from tests.api.conftest import catch_up


def page_login(client, user_id: str) -> None:
    r = client.get("/login")
    assert r.status_code == 200 and "Log ind" in r.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
    r = client.post("/login", data={"user_id": user_id, "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_pages_redirect_to_login(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_login_needs_csrf_and_a_known_user(client):
    client.get("/login")
    r = client.post("/login", data={"user_id": "anne", "csrf": "wrong"})
    assert r.status_code == 403 and "Formularen er udløbet" in r.text
    r = client.get("/login")
    r = client.post("/login", data={"user_id": "mallory", "csrf": csrf_of(r.text)})
    assert r.status_code == 403 and "Brugeren findes ikke" in r.text


def test_search_overview_consent_round_trip(client, world):
    page_login(client, "anne")
    r = client.get("/", params={"q": "Glasmose"})
    assert "Maja Glasmose" in r.text and "Emil Glasmose" in r.text
    r = client.get(f"/borger/{world.mother}")
    assert r.status_code == 200
    for heading in ("Borgeroverblik", "Husstand", "Sager", "Bevillinger", "Samtykke",
                    "Markeringer"):
        assert heading in r.text, heading
    assert "Sagen findes — indhold skjult (intet samtykke)" in r.text
    assert "Jonas Vestergaard" in r.text  # who is responsible is shown
    assert "Kontanthjælp — aktivitetsparat" not in r.text
    r = client.post(f"/borger/{world.mother}/samtykke",
                    data={"formaal": "casework", "enheder": "BUF-MYN-N", "gyldig_til": "",
                          "csrf": csrf_of(r.text)})
    assert r.status_code == 200 and "Kontanthjælp — aktivitetsparat" in r.text
    assert "Sagen findes — indhold skjult" not in r.text
    consent_id = re.search(r"/samtykke/([^/]+)/tilbagekald", r.text).group(1)
    r = client.post(f"/borger/{world.mother}/samtykke/{consent_id}/tilbagekald",
                    data={"formaal": "casework", "csrf": csrf_of(r.text)})
    assert "Sagen findes — indhold skjult (intet samtykke)" in r.text
    assert "trukket tilbage" in r.text


def test_bad_consent_date_is_explained_in_danish(client, world):
    page_login(client, "anne")
    r = client.get(f"/borger/{world.mother}")
    r = client.post(f"/borger/{world.mother}/samtykke",
                    data={"formaal": "casework", "gyldig_til": "i morgen",
                          "csrf": csrf_of(r.text)})
    assert r.status_code == 400 and "ÅÅÅÅ-MM-DD" in r.text


def test_household_and_case_history_pages(client, world):
    page_login(client, "anne")
    r = client.get(f"/borger/{world.mother}/husstand")
    assert r.status_code == 200 and "Maja Glasmose" in r.text and "Emil Glasmose" in r.text
    r = client.get(f"/sag/{world.child_case}/forloeb")
    assert r.status_code == 200 and "Sagsforløb" in r.text and "Sag oprettet" in r.text
    r = client.get(f"/sag/{world.job_case}/forloeb")
    assert "Sagen findes — indhold skjult (intet samtykke)" in r.text
    assert "Handling registreret" not in r.text


def test_access_log_page_for_auditor_only(client, world, hub):
    page_login(client, "anne")
    client.get(f"/borger/{world.child}")
    assert client.get("/adgangslog").status_code == 403
    client.post("/logout", data={"csrf": csrf_of(client.get("/").text)})
    page_login(client, "rikke")
    r = client.get("/")
    assert "Adgangslog" in r.text
    r = client.get("/adgangslog", params={"q": "Emil"})
    assert f"/adgangslog?borger={world.child}" in r.text
    r = client.get("/adgangslog", params={"borger": world.child})
    assert re.search(r"<td>anne</td>|>anne</a>", r.text) and "overview" in r.text
    plain = r.text.replace('<span class="muted">', "").replace("</span>", "")
    assert "overblik (overview)" in plain  # the view in Danish, its id kept
    assert client.get(f"/borger/{world.child}").status_code == 403


def test_unknown_page_is_danish(client):
    page_login(client, "anne")
    r = client.get("/borger/ingen")
    assert r.status_code == 404 and "Borgeren findes ikke." in r.text


def test_healthz_readyz_metrics(client, world, hub):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready" and "citizen_overview" in r.json()["projection_lag"]
    client.get("/api/v1/persons/nobody/overview")
    text = client.get("/metrics").text
    assert "glasplade_http_requests_total" in text
    assert 'route="/api/v1/persons/{person_key}/overview"' in text
    assert "glasplade_projection_lag_events" in text


def test_readyz_fails_when_projections_fall_behind(hub, world):
    from fastapi.testclient import TestClient

    from hub.api.app import create_app
    from tests.api.conftest import api_config
    from tests.api.world import populate

    populate(hub.store)  # 11 more events the projections have not seen
    app = create_app(hub, config=api_config(max_lag=5))
    with TestClient(app) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert any("behind" in p for p in r.json()["problems"])
        catch_up(hub)
        assert c.get("/readyz").status_code == 200


def test_readyz_fails_until_every_projection_is_built(hub):
    """A server whose follower has not prepared the read models yet (a few events, so no lag
    limit is crossed) is not ready: its pages would fail on missing tables."""
    from fastapi.testclient import TestClient

    from hub.api.app import create_app
    from tests.api.conftest import api_config
    from tests.api.world import populate

    populate(hub.store)
    with TestClient(create_app(hub, config=api_config(max_lag=10_000))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert "projection citizen_overview is not built yet" in r.json()["problems"]
        assert r.json()["projection_lag"]["citizen_overview"] is None
        catch_up(hub)
        assert c.get("/readyz").status_code == 200


def test_readyz_fails_when_store_is_gone(hub, world, app):
    from fastapi.testclient import TestClient

    from hub.store.contract import StoreError

    def broken() -> int:
        raise StoreError("connection refused")

    hub.store.max_position = broken  # an outage of the store's database
    with TestClient(app) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["problems"] == ["event store unreachable"]


def test_projection_state_for_admins_only(client, world):
    from tests.api.conftest import login
    login(client, "dennis")
    states = {s["name"]: s for s in client.get("/api/v1/projections").json()}
    assert states["citizen_overview"]["lag"] == 0 and states["access_log"]["position"] > 0
    login(client, "anne")
    assert client.get("/api/v1/projections").status_code == 403
