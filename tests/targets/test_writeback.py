"""Write-back against the Fasit and SBSYS simulators over real sockets: planned from match
changes, approved, written exactly once, retried after an outage, ended when the match ends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from connectors.fasit.simulator.app import simulator as fasit_simulator
from connectors.sbsys.simulator import simulator as sbsys_simulator
from hub.config import Settings
from hub.domain import rules as r
from hub.targets import writeback as wb
from hub.targets.nightly import run_overlap
from hub.targets.writers import ConnectorWriters, cpr_from_store, writers_from_settings
from projections.db import readmodel_engine
from projections.target_groups import TargetGroupsProjection
from tests.connectors.conftest import make_municipality
from tests.targets import builders as b

MARKING = "Sammenhængende borgerforløb"


def _rules(mode: str) -> r.RuleSet:
    return r.RuleSet("test", "1", (r.Rule(
        "tyra", "1", "multi_department", "Tyra", min_departments=2,
        write_back=r.WriteBack(mode, "fasit", MARKING, pathway_case=True)),))


@pytest.fixture
def world(monkeypatch, store, store_url):
    m = make_municipality()
    fasit, sbsys = fasit_simulator(m), sbsys_simulator(m)
    fasit.start()
    sbsys.start()
    for k, v in {**fasit.env(), **sbsys.env(), "FASIT_RETRY_ATTEMPTS": "2",
                 "FASIT_RETRY_INITIAL": "0.01", "FASIT_TIMEOUT": "2",
                 "SBSYS_RETRY_ATTEMPTS": "2", "SBSYS_RETRY_INITIAL": "0.01"}.items():
        monkeypatch.setenv(k, v)
    cpr = sorted({c.person for c in m.cases if c.system == "fasit"})[0]
    store.append([b.open_case(cpr, "fasit:F-1", "BSF"), b.open_case(cpr, "dubu:S-1", "BUF")])
    engine = readmodel_engine(store_url)
    writers = writers_from_settings(Settings())
    yield m, fasit, sbsys, cpr, engine, writers
    writers.close()
    engine.dispose()
    fasit.stop()
    sbsys.stop()


def _night(store, engine, rules, as_of):
    result = run_overlap(store, engine, rules, as_of, TargetGroupsProjection(store.person_key))
    with engine.begin() as conn:
        return wb.record_plan(conn, wb.plan(rules, result.started, result.ended, as_of.date()),
                              as_of)


def _now():
    return datetime.now(UTC)


def test_approved_write_back_appears_once_and_ends_with_the_match(world, store):
    m, fasit, sbsys, cpr, engine, writers = world
    rules = _rules("approval")
    assert _night(store, engine, rules, b.AS_OF) == 2
    cpr_of = cpr_from_store(store)
    assert wb.execute(engine, writers, cpr_of, _now) == {"done": 0, "failed": 0}  # not approved
    with engine.begin() as conn:
        ids = [row.command_id for row in wb.pending(conn, "planned")]
        assert wb.approve(conn, ids, "leder", _now()) == 2
    assert wb.execute(engine, writers, cpr_of, _now) == {"done": 2, "failed": 0}
    marks = [mk for mk in m.markings if mk.person == cpr and mk.marking_type == MARKING]
    assert len(marks) == 1 and marks[0].valid_to is None
    cases = [c for c in m.cases if c.system == "sbsys" and "glasplade:tyra:" in c.title]
    assert len(cases) == 1 and cases[0].person == cpr and cases[0].status == "open"

    # again: nothing new planned, nothing written twice, and the connector writes are idempotent
    assert _night(store, engine, rules, b.AS_OF + timedelta(days=1)) == 0
    assert wb.execute(engine, writers, cpr_of, _now) == {"done": 0, "failed": 0}
    assert writers.set_marking(cpr, "fasit", MARKING, date(2026, 12, 1)) == marks[0].marking_id
    assert len([mk for mk in m.markings if mk.person == cpr]) == 1
    with engine.begin() as conn:
        done = wb.pending(conn, "done")
    assert {row.decided_by for row in done} == {"leder"} and all(x.written_at for x in done)

    # the BSF case closes: the match ends, the marking is ended and the case passivated
    store.append([b.close_case(cpr, "fasit:F-1")])
    assert _night(store, engine, rules, b.AS_OF + timedelta(days=2)) == 2
    with engine.begin() as conn:
        wb.approve(conn, [x.command_id for x in wb.pending(conn, "planned")], "leder", _now())
    assert wb.execute(engine, writers, cpr_of, _now) == {"done": 2, "failed": 0}
    assert marks[0].valid_to == (b.AS_OF + timedelta(days=2)).date()
    assert cases[0].status == "passive"


def test_automatic_mode_retries_after_an_outage(world, store):
    m, fasit, sbsys, cpr, engine, writers = world
    _night(store, engine, _rules("automatic"), b.AS_OF)
    fasit.stop()
    counts = wb.execute(engine, writers, cpr_from_store(store), _now)
    assert counts == {"done": 1, "failed": 1}  # SBSYS written, Fasit down
    with engine.begin() as conn:
        (failed,) = wb.pending(conn, "failed")
    assert failed.kind == "SetMarking" and failed.attempts == 1 and failed.last_error
    fasit.restart()
    assert wb.execute(engine, writers, cpr_from_store(store), _now) == {"done": 1, "failed": 0}
    assert len([mk for mk in m.markings if mk.person == cpr]) == 1


def test_dry_run_plans_but_never_writes(world, store):
    m, fasit, sbsys, cpr, engine, writers = world
    before = len(m.markings), len(m.cases)
    assert _night(store, engine, _rules("dry-run"), b.AS_OF) == 2
    with engine.begin() as conn:
        assert wb.approve(conn, [x.command_id for x in wb.pending(conn)], "leder", _now()) == 0
    assert wb.execute(engine, writers, cpr_from_store(store), _now) == {"done": 0, "failed": 0}
    assert (len(m.markings), len(m.cases)) == before


def test_unknown_subject_and_missing_system_fail_clearly(engine_only):
    engine = engine_only
    cmd = wb.SetMarking("c1", "tyra", "nobody", "fasit", MARKING, date(2026, 1, 1))
    with engine.begin() as conn:
        wb.record_plan(conn, [(cmd, "automatic")], _now())
    assert wb.execute(engine, ConnectorWriters(), lambda s: None, _now)["failed"] == 1
    with engine.begin() as conn:
        (row,) = wb.pending(conn, "failed")
    assert "no CPR" in row.last_error
    assert wb.execute(engine, ConnectorWriters(), lambda s: "0101011234", _now)["failed"] == 1
    with engine.begin() as conn:
        (row,) = wb.pending(conn, "failed")
    assert "fasit is not configured" in row.last_error and row.attempts == 2
    for _ in range(wb.MAX_ATTEMPTS):
        wb.execute(engine, ConnectorWriters(), lambda s: "0101011234", _now)
    with engine.begin() as conn:
        assert wb.pending(conn, "failed")[0].attempts == wb.MAX_ATTEMPTS  # gives up


def test_commands_round_trip():
    for c in (wb.SetMarking("a", "r", "s", "fasit", "M", date(2026, 1, 2)),
              wb.EndMarking("b", "r", "s", "fasit", "M", date(2026, 1, 3)),
              wb.CreatePathwayCase("c", "r", "s", "T", "k"),
              wb.PassivatePathwayCase("d", "r", "s", "k")):
        assert wb.decode(wb._encode(c)) == c


@pytest.fixture
def engine_only(sqlite_url):
    engine = readmodel_engine(sqlite_url)
    yield engine
    engine.dispose()
