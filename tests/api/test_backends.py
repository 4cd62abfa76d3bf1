"""The API's main path on both backends (SQLite and PostgreSQL for store and read models)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import bootstrap
from tests.api.conftest import TODAY, api_config, catch_up, login
from tests.api.world import populate


def test_consent_and_access_log(settings):
    hub = bootstrap(settings, configure_logging=False)
    try:
        world = populate(hub.store)
        catch_up(hub)
        with TestClient(create_app(hub, config=api_config(), today=lambda: TODAY)) as c:
            login(c, "anne")
            url = f"/api/v1/persons/{world.mother}"
            job = world.job_case
            assert {x["case_key"]: x for x in c.get(f"{url}/overview").json()["cases"]}[job][
                "decision"]["level"] == "existence"
            assert c.post(f"{url}/consents", json={"purpose": "casework"}).status_code == 201
            assert {x["case_key"]: x for x in c.get(f"{url}/overview").json()["cases"]}[job][
                "decision"]["code"] == "consent"
            login(c, "rikke")
            rows = c.get("/api/v1/access-log", params={"person": world.mother}).json()
            assert [(r["user_id"], r["view"], r["access"]) for r in rows] == [
                ("anne", "overview", "full"), ("anne", "consent", "consent"),
                ("anne", "overview", "existence")]
            assert c.get("/readyz").json()["status"] == "ready"
    finally:
        hub.close()
