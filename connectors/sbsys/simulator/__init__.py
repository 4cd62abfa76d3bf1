"""The SBSYS simulator: ``simulator(municipality, faults)`` for the registry and the tests."""

from __future__ import annotations

from connectors.sbsys.simulator.app import TOKEN_PATH, create_app
from connectors.simulation import FaultConfig, Faults, HttpSimulator
from hub.synthetic.model import Municipality

CLIENT_ID = "glasplade"
CLIENT_SECRET = "simulated-secret"
USERNAME = "robot-a"
PASSWORD = "simulated-password"


def simulator(municipality: Municipality, faults: FaultConfig | None = None) -> HttpSimulator:
    live = Faults(faults)
    app = create_app(municipality, live, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                     username=USERNAME, password=PASSWORD)

    def env(url: str) -> dict[str, str]:
        return {"SBSYS_BASE_URL": url, "SBSYS_TOKEN_URL": f"{url}{TOKEN_PATH}",
                "SBSYS_CLIENT_ID": CLIENT_ID, "SBSYS_CLIENT_SECRET": CLIENT_SECRET,
                "SBSYS_USERNAME": USERNAME, "SBSYS_PASSWORD": PASSWORD}

    # The simulator sets its own Date header: the municipality's simulated clock.
    return HttpSimulator("sbsys", app, live, env, date_header=False)
