"""The Cura simulator: ``simulator(municipality, faults)`` for the registry and the tests."""

from __future__ import annotations

from connectors.cura.simulator.app import create_app
from connectors.simulation import FaultConfig, Faults, HttpSimulator
from hub.synthetic.model import Municipality

USERNAME = "glasplade-sim"
PASSWORD = "simulated-password"
API_KEY = "simulated-api-key"


def simulator(municipality: Municipality, faults: FaultConfig | None = None) -> HttpSimulator:
    live = Faults(faults)
    app = create_app(municipality, live, username=USERNAME, password=PASSWORD, api_key=API_KEY)

    def env(url: str) -> dict[str, str]:
        return {"CURA_BASE_URL": f"{url}/fhir", "CURA_ACCESS_TOKEN_URL": f"{url}/auth/discovery/",
                "CURA_SESSION_TOKEN_URL": f"{url}/session", "CURA_USERNAME": USERNAME,
                "CURA_PASSWORD": PASSWORD, "CURA_API_KEY": API_KEY,
                "CURA_ORGANIZATION": "glasby-kommune", "CURA_USER_ROLE": "integration",
                "CURA_API_VERSION": "1"}

    return HttpSimulator("cura", app, live, env)
