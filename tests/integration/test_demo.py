"""``glasplade demo``: the real path (simulators over sockets -> connectors -> store) and
``--direct``, on a tiny municipality in a temporary SQLite store."""

from __future__ import annotations

import os

import orjson
import pytest
from typer.testing import CliRunner

from connectors import registry
from hub.cli.main import app
from hub.synthetic.generate import generate
from hub.synthetic.to_events import municipality_events
from tests.conftest import make_store

CITIZENS, SEED = "150", "7"  # every system has cases (sbsys 2) and Kafka has consents (2)


def _demo(*args: str):
    res = CliRunner().invoke(app, ["demo", "--citizens", CITIZENS, "--seed", SEED, *args])
    return res


def _stored(url: str) -> int:
    store = make_store(url)
    try:
        return sum(n for _, _, n in store.counts())
    finally:
        store.close()


def test_real_path_counts_per_system_and_rerun_stores_nothing(sqlite_url):
    environ = dict(os.environ)
    first = _demo("--store", sqlite_url, "--json")
    assert first.exit_code == 0, first.output
    report = orjson.loads(first.stdout)
    assert report["path"] == "real"
    assert list(report["systems"]) == registry.names()
    for name, s in report["systems"].items():
        if s["result"] == "not started":  # e.g. no Kafka broker binary here: must be said why
            assert s["error"], name
            continue
        assert s["result"] == "ok", (name, s)
        assert s["stored"] > 0, (name, s)
        assert s["dead_letters"] == 0, (name, s)
    assert report["persons"] == 150 and report["households"] > 0
    assert sum(report["cases_per_department"].values()) == report["cases"] > 0
    assert report["stored"] == sum(s.get("stored", 0) for s in report["systems"].values())
    assert report["stored"] == report["store_events"] == _stored(sqlite_url)
    # the connectors' settings were for this process and this run only
    assert dict(os.environ) == environ

    second = _demo("--store", sqlite_url)
    assert second.exit_code == 0, second.output
    out = second.stdout
    for word in ("persons", "households", "cases", "system", "stored", "duplicates",
                 "dead letters", "seconds", "events/s", "elapsed", "BUF", "JOBCENTER"):
        assert word in out, word
    for name in report["systems"]:
        assert any(line.startswith(name) for line in out.splitlines()), name
    assert "0 new" in out
    assert f"the store holds {report['stored']:,}" in out
    assert _stored(sqlite_url) == report["stored"]


def test_a_simulator_that_cannot_start_is_reported_and_the_others_go_on(sqlite_url,
                                                                         monkeypatch):
    """As when the Kafka broker binary is missing: say so, load the other systems."""
    def no_broker(municipality, faults=None):
        raise FileNotFoundError("tansu binary not found")

    monkeypatch.setitem(registry.SYSTEMS, "no-broker", ("unused:unused", "unused:unused"))
    monkeypatch.setattr(registry, "names", lambda: ["sbsys", "no-broker"])
    real = registry.simulator_factory
    monkeypatch.setattr(registry, "simulator_factory",
                        lambda name: no_broker if name == "no-broker" else real(name))
    res = _demo("--store", sqlite_url)
    assert res.exit_code == 0, res.output
    assert "no-broker could not start and was left out: FileNotFoundError: tansu binary" \
        in res.stdout
    sbsys = next(line for line in res.stdout.splitlines() if line.startswith("sbsys"))
    assert sbsys.split()[1] == "ok" and int(sbsys.split()[2].replace(",", "")) > 0
    assert _stored(sqlite_url) > 0


@pytest.mark.parametrize("system, key, value", [
    ("cura", "CURA_PASSWORD", "wrong"),  # the system refuses the login
    ("cpr", "CPR_SERVICE_AGREEMENT_UUID", None),  # the connector cannot be configured
])
def test_a_failing_connector_fails_the_run_but_not_the_others(sqlite_url, monkeypatch,
                                                               system, key, value):
    """exit 2, the failure in the system's row, the other system stored."""
    real = registry.simulator_factory

    def broken(municipality, faults=None):
        sim = real(system)(municipality, faults)
        env = sim.env
        sim.env = lambda: {k: v for k, v in {**env(), key: value}.items() if v is not None}
        return sim

    monkeypatch.setattr(registry, "names", lambda: ["sbsys", system])
    monkeypatch.setattr(registry, "simulator_factory",
                        lambda name: broken if name == system else real(name))
    monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CURA_PASSWORD", "the operator's own")
    res = _demo("--store", sqlite_url, "--json")
    assert res.exit_code == 2, res.output
    report = orjson.loads(res.stdout)
    assert report["systems"][system]["result"] == "failed"
    assert report["systems"][system]["stored"] == 0
    assert report["systems"][system]["error"]
    assert report["systems"]["sbsys"]["stored"] > 0
    assert os.environ["CURA_PASSWORD"] == "the operator's own"  # restored afterwards
    assert key == "CURA_PASSWORD" or key not in os.environ


def test_direct_path_still_ingests_the_canonical_events(sqlite_url, tmp_path):
    res = _demo("--direct", "--store", sqlite_url, "--out", str(tmp_path / "data"))
    assert res.exit_code == 0, res.output
    expected = len(list(municipality_events(generate(int(CITIZENS), int(SEED)))))
    assert f"stored      {expected:,} new" in res.stdout
    assert len(list((tmp_path / "data").glob("*.avro"))) == 1
    assert _stored(sqlite_url) == expected


@pytest.mark.parametrize("args", [["--store", "mysql://x"], ["--direct", "--store", "mysql://x"]])
def test_a_bad_store_url_is_a_clear_error(args):
    res = _demo(*args)
    assert res.exit_code == 1
    assert "error" in res.output


def test_serve_serves_the_dashboard_over_what_was_loaded(sqlite_url, tmp_path, monkeypatch):
    """--serve hands the loaded hub to `glasplade serve`'s run_server (not started here)."""
    from hub.cli import serve
    seen = {}

    def run_server(hub, **kwargs):
        seen.update(kwargs, events=sum(n for _, _, n in hub.store.counts()))

    monkeypatch.setattr(serve, "run_server", run_server)
    res = _demo("--direct", "--serve", "--port", "0", "--store", sqlite_url,
                "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert seen["port"] == 0 and seen["demo_users"] is True
    assert seen["events"] == _stored(sqlite_url) > 0


def test_nothing_could_start_is_a_failure(sqlite_url, monkeypatch):
    def broken(municipality, faults=None):
        raise RuntimeError("port in use")

    monkeypatch.setattr(registry, "names", lambda: ["cura"])
    monkeypatch.setattr(registry, "simulator_factory", lambda name: broken)
    res = _demo("--store", sqlite_url)
    assert res.exit_code == 2, res.output
    assert "cura could not start and was left out: RuntimeError: port in use" in res.stdout
    assert _stored(sqlite_url) == 0
