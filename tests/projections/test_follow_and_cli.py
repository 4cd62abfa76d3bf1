"""Follow mode (polling; PostgreSQL LISTEN/NOTIFY) and the ``glasplade projections`` commands."""

from __future__ import annotations

import json
import threading
import time

import pytest
import typer
from typer.testing import CliRunner

import projections.registry as registry
from hub.cli.projections import register
from hub.domain import events as ev
from projections.db import readmodel_engine, sqlalchemy_url
from projections.registry import build_projections, pg_waiter
from tests.conftest import make_store
from tests.projections import scenario as sc
from tests.projections.conftest import MODULES, make_runner
from tests.projections.factory import event


def _wait_until(cond, timeout: float = 10.0) -> float:
    start = time.perf_counter()
    while not cond():
        if time.perf_counter() - start > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
    return time.perf_counter() - start


def test_follow_polls_new_events(store, engine):
    runner = make_runner(store, engine)
    stop = threading.Event()
    t = threading.Thread(target=runner.follow, kwargs={"stop": stop, "interval": 0.02})
    t.start()
    try:
        store.append(sc.family())
        _wait_until(lambda: all(s.lag == 0 and s.position > 0 for s in runner.status()))
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive()


def test_follow_wakes_on_postgres_notify(pg_url):
    """With a 60 s poll interval only the store's NOTIFY can make it catch up quickly."""
    store = make_store(pg_url)
    engine = readmodel_engine(pg_url)
    wait = pg_waiter(pg_url)
    assert wait is not None
    runner = make_runner(store, engine)
    stop = threading.Event()
    t = threading.Thread(target=runner.follow,
                         kwargs={"stop": stop, "interval": 60.0, "wait": wait})
    t.start()
    try:
        time.sleep(0.2)  # let it go to sleep on LISTEN
        store.append(sc.family())
        took = _wait_until(lambda: all(s.lag == 0 and s.position > 0 for s in runner.status()))
        assert took < 10
    finally:
        stop.set()
        store.append([event(ev.PersonRecordAccessed("u", "p", "overview"), person=sc.MOTHER)])
        t.join(20)
        wait.close()
        engine.dispose()
        store.close()
    assert not t.is_alive()
    assert pg_waiter("sqlite:///x.db") is None


def test_urls():
    assert sqlalchemy_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("sqlite:///a.db") == "sqlite:///a.db"
    from hub.config import ConfigError
    with pytest.raises(ConfigError):
        sqlalchemy_url("mysql://x")
    with pytest.raises(ConfigError):
        sqlalchemy_url("sqlite:///:memory:")


@pytest.fixture
def cli(monkeypatch, store_url):
    monkeypatch.setattr(registry, "PROJECTION_MODULES", MODULES)
    monkeypatch.setenv("GLASPLADE_STORE_URL", store_url)
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["projections", *args])


def test_cli_run_status_rebuild(cli, store):
    store.append(sc.family())
    r = cli("status", "--json")
    assert r.exit_code == 0, r.output
    assert {s["name"]: s["lag"] for s in json.loads(r.output)} == {
        "citizen_overview": store.max_position(), "case_history": store.max_position(),
        "access_log": store.max_position()}
    r = cli("run")
    assert r.exit_code == 0, r.output
    assert "up to date at position" in r.output
    r = cli("status")
    assert r.exit_code == 0 and "citizen_overview" in r.output
    r = cli("status", "--json")
    assert all(s["lag"] == 0 for s in json.loads(r.output))
    r = cli("rebuild", "citizen_overview", "--batch-size", "3")
    assert r.exit_code == 0, r.output
    assert "rebuilt citizen_overview from" in r.output
    r = cli("rebuild", "nope")
    assert r.exit_code == 1 and "unknown projection" in r.output
    assert sc.MOTHER not in r.output  # no CPR in output or logs


def test_registry_builds_every_module_and_skips_absent_ones():
    built = build_projections(lambda s: "k" + s, [*MODULES, "projections.not_written_yet"])
    assert [p.name for p in built] == ["citizen_overview", "case_history", "access_log"]


def test_serve_follows_in_a_child_process(store_url, engine):
    """`glasplade serve` projects in a child process over the same configuration: it catches
    up with what is there, follows what comes, and stops when asked."""
    import base64

    from hub.cli.serve import follow_in_child
    from hub.config import Settings
    from tests.conftest import DATA_KEY, PSEUDONYM_KEY

    store = make_store(store_url)
    store.append(sc.family())
    settings = Settings(store_url=store_url, data_key=base64.b64encode(DATA_KEY).decode(),
                        pseudonym_key=base64.b64encode(PSEUDONYM_KEY).decode())
    runner = make_runner(store, engine)  # reads the positions the child writes
    halt = follow_in_child(settings)
    try:
        _wait_until(lambda: runner.positions() and all(
            s.lag == 0 and s.position > 0 for s in runner.status()), timeout=30)
        store.append([event(ev.PersonRecordAccessed("u", "p", "overview"), person=sc.MOTHER)])
        head = store.max_position()
        _wait_until(lambda: all(s.position == head for s in runner.status()), timeout=30)
    finally:
        halt()
        store.close()
    import multiprocessing
    assert not [p for p in multiprocessing.active_children() if p.name == "glasplade-projections"]
