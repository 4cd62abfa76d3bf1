"""`glasplade run/status/cursors reset` against the Cura and SBSYS simulators over real sockets;
one system down does not stop the other, and it catches up after."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from connectors import registry
from connectors.simulation import FaultConfig
from hub.cli.main import app
from tests.connectors.test_cura import cura_expected
from tests.connectors.test_sbsys import sbsys_expected

cli = CliRunner()


@pytest.fixture
def simulators(municipality, monkeypatch):
    sims = {name: registry.simulator_factory(name)(municipality, FaultConfig(seed=3))
            for name in ("cura", "sbsys")}
    for sim in sims.values():
        sim.start()
        for k, v in sim.env().items():
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("RUNNER_RETRY_INITIAL", "0.01")
    for name in sims:
        monkeypatch.setenv(f"{name.upper()}_RETRY_INITIAL", "0.01")
        monkeypatch.setenv(f"{name.upper()}_TIMEOUT", "1")
    yield sims
    for sim in sims.values():
        sim.stop()


def run_json(store_url: str, *args: str) -> tuple[int, dict]:
    result = cli.invoke(app, ["run", "--once", "--json", "--store", store_url, *args])
    body = result.stdout[result.stdout.index("{"):]
    return result.exit_code, json.loads(body)


def counts(store_url: str) -> dict[tuple[str, str], int]:
    result = cli.invoke(app, ["stats", "--json", "--store", store_url])
    assert result.exit_code == 0, result.output
    return {(r["source_system"], r["event_type"]): r["count"]
            for r in json.loads(result.stdout)["by_type_and_source"]}


def expected(m) -> dict[tuple[str, str], int]:
    out = {("cura", t): n for t, n in cura_expected(m).items()}
    out.update({("sbsys", t): n for t, n in sbsys_expected(m).items()})
    return out


def test_run_once_fills_the_store_and_status_reads_it(simulators, store_url, municipality,
                                                      monkeypatch):
    monkeypatch.setenv("GLASPLADE_STORE_URL", store_url)
    code, report = run_json(store_url)
    assert code == 0, report
    assert report["cura"]["ok"] and report["sbsys"]["ok"]
    assert counts(store_url) == expected(municipality)
    status = cli.invoke(app, ["status", "--json"])
    rows = {r["connector"]: r for r in json.loads(status.stdout)}
    assert rows["cura"]["healthy"] and rows["sbsys"]["events_stored"] == report["sbsys"]["stored"]
    table = cli.invoke(app, ["status"]).stdout
    assert "cura" in table and "FAILING" not in table
    # An explicit offset reset: the next pass reads everything again and stores nothing new.
    reset = cli.invoke(app, ["cursors", "reset", "sbsys", "--store", store_url])
    assert "reset 1 cursor(s) of sbsys" in reset.stdout
    code, again = run_json(store_url, "--only", "sbsys")
    assert code == 0 and again["sbsys"]["stored"] == 0 and again["sbsys"]["duplicates"] > 0
    assert "cura" not in again


def test_one_system_down_does_not_stop_the_other_and_catches_up(simulators, sqlite_url,
                                                                municipality, monkeypatch):
    monkeypatch.setenv("GLASPLADE_STORE_URL", sqlite_url)
    simulators["sbsys"].stop()
    code, report = run_json(sqlite_url)
    assert code == 2
    assert report["cura"]["ok"] and "source_unavailable" in report["sbsys"]["error"]
    assert not any(src == "sbsys" for src, _ in counts(sqlite_url))
    rows = {r["connector"]: r for r in json.loads(cli.invoke(app, ["status", "--json"]).stdout)}
    assert rows["sbsys"]["consecutive_failures"] == 1 and not rows["sbsys"]["healthy"]
    simulators["sbsys"].restart()
    code, report = run_json(sqlite_url)
    assert code == 0 and report["cura"]["stored"] == 0
    assert counts(sqlite_url) == expected(municipality)


def test_run_without_configuration_explains(monkeypatch, sqlite_url):
    for name in registry.names():
        monkeypatch.delenv(f"{name.upper()}_BASE_URL", raising=False)
        monkeypatch.delenv(f"{name.upper()}_BOOTSTRAP_SERVERS", raising=False)
    result = cli.invoke(app, ["run", "--once", "--store", sqlite_url])
    assert result.exit_code == 1
    assert "no connectors configured" in result.output


def test_metrics_are_served(simulators, sqlite_url, monkeypatch):
    import socket
    import threading
    import time

    import httpx

    from connectors.metrics import ConnectorMetrics
    from connectors.runner import ConnectorRunner
    from hub.config import Settings
    from hub.logging import configure
    from tests.conftest import make_store

    configure("json", "WARNING")  # CliRunner runs above left structlog on a closed stream
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = ConnectorMetrics()
    metrics.serve(port)
    store = make_store(sqlite_url)
    runner = ConnectorRunner(store, registry.build_connectors(Settings(), ["cura"]),
                             metrics=metrics)
    stop = threading.Event()
    t = threading.Thread(target=runner.run_forever, args=(0.05, stop), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            if 'glasplade_connector_last_success_timestamp_seconds{connector="cura"}' in text:
                break
            time.sleep(0.1)
        assert 'glasplade_connector_events_stored_total{connector="cura"}' in text
        assert 'glasplade_connector_breaker_state{connector="cura"} 0.0' in text
    finally:
        stop.set()
        t.join(10)
        runner.close()
        store.close()


def test_simulate_serves_prints_settings_and_stops(tmp_path):
    env_file = tmp_path / "sim.env"
    result = cli.invoke(app, ["simulate", "--citizens", "300", "--seed", "4", "--only", "cura",
                              "--only", "sbsys", "--duration", "1.5", "--tick", "0.5",
                              "--env-file", str(env_file), "--faults", "latency=0.01"])
    assert result.exit_code == 0, result.output
    assert "export CURA_BASE_URL=http://127.0.0.1:" in result.stdout
    settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert settings["SBSYS_BASE_URL"].startswith("http://127.0.0.1:")
    bad = cli.invoke(app, ["simulate", "--faults", "nonsense=1", "--duration", "0.1"])
    assert bad.exit_code == 1 and "unknown fault setting" in bad.output
