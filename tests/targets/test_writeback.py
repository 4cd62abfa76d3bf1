"""Write-back against the Fasit and SBSYS simulators over real sockets: planned from match
changes, approved, written exactly once, retried after an outage, ended when the match ends.
What was written is read back from the simulators over their HTTP APIs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from hub.domain import rules as r
from hub.targets import writeback as wb
from hub.targets.nightly import run_overlap
from hub.targets.writers import ConnectorWriters, cpr_from_store
from projections.db import readmodel_engine
from projections.target_groups import TargetGroupsProjection
from tests.connectors.conftest import make_municipality
from tests.targets import builders as b
from tests.targets.writeback_sims import running_sims

MARKING = "Sammenhængende borgerforløb"


def _rules(mode: str) -> r.RuleSet:
    return r.RuleSet("test", "1", (r.Rule(
        "tyra", "1", "multi_department", "Tyra", min_departments=2,
        write_back=r.WriteBack(mode, "fasit", MARKING, pathway_case=True)),))


@pytest.fixture
def world(monkeypatch, store, store_url):
    m = make_municipality()
    with running_sims(m, monkeypatch) as sims:
        cpr = sorted({c.person for c in m.cases if c.system == "fasit"})[0]
        store.append([b.open_case(cpr, "fasit:F-1", "BSF"), b.open_case(cpr, "dubu:S-1", "BUF")])
        engine = readmodel_engine(store_url)
        yield sims, cpr, engine
        engine.dispose()


def _night(store, engine, rules, as_of):
    result = run_overlap(store, engine, rules, as_of, TargetGroupsProjection(store.person_key))
    with engine.begin() as conn:
        return wb.record_plan(conn, wb.plan(rules, result.started, result.ended, as_of.date(),
                                            result.current), as_of)


def _now():
    return datetime.now(UTC)


def test_approved_write_back_appears_once_and_ends_with_the_match(world, store):
    sims, cpr, engine = world
    writers = sims.writers
    rules = _rules("approval")
    assert _night(store, engine, rules, b.AS_OF) == 2
    cpr_of = cpr_from_store(store)
    assert wb.execute(engine, writers, cpr_of, _now) == {"done": 0, "failed": 0}  # not approved
    assert sims.markings(cpr) == [] and sims.pathway_cases(cpr) == []
    with engine.begin() as conn:
        ids = [row.command_id for row in wb.pending(conn, "planned")]
        assert wb.approve(conn, ids, "leder", _now()) == 2
    assert wb.execute(engine, writers, cpr_of, _now) == {"done": 2, "failed": 0}
    (mark,) = sims.markings(cpr)
    assert mark["personGroupName"] == MARKING and mark["endDate"] is None
    (case,) = sims.pathway_cases(cpr)
    assert "[glasplade:tyra:" in case["SagsTitel"] and case["SagsStatus"]["Navn"] == "Oprettet"

    # again: nothing new planned, nothing written twice, and the connector writes are idempotent
    assert _night(store, engine, rules, b.AS_OF + timedelta(days=1)) == 0
    assert wb.execute(engine, writers, cpr_of, _now) == {"done": 0, "failed": 0}
    again = writers.set_marking([cpr], "fasit", MARKING, date(2026, 12, 1))
    assert again.ref == mark["id"] and not again.changed
    assert len(sims.markings(cpr)) == 1 and len(sims.pathway_cases(cpr)) == 1
    with engine.begin() as conn:
        done = wb.pending(conn, "done")
    assert {row.decided_by for row in done} == {"leder"} and all(x.written_at for x in done)

    # the BSF case closes: the match ends, the marking is ended and the case passivated
    store.append([b.close_case(cpr, "fasit:F-1")])
    assert _night(store, engine, rules, b.AS_OF + timedelta(days=2)) == 2
    with engine.begin() as conn:
        wb.approve(conn, [x.command_id for x in wb.pending(conn, "planned")], "leder", _now())
    assert wb.execute(engine, writers, cpr_of, _now) == {"done": 2, "failed": 0}
    (mark,) = sims.markings(cpr)
    assert mark["endDate"] is not None
    (case,) = sims.pathway_cases(cpr)
    assert case["SagsStatus"]["SagsTilstand"] == "Passiv"


def test_automatic_mode_retries_after_an_outage(world, store):
    sims, cpr, engine = world
    _night(store, engine, _rules("automatic"), b.AS_OF)
    sims.fasit.stop()
    counts = wb.execute(engine, sims.writers, cpr_from_store(store), _now)
    assert counts == {"done": 1, "failed": 1}  # SBSYS written, Fasit down
    with engine.begin() as conn:
        (failed,) = wb.pending(conn, "failed")
    assert failed.kind == "SetMarking" and failed.attempts == 1 and failed.last_error
    sims.fasit.restart()
    assert wb.execute(engine, sims.writers, cpr_from_store(store), _now) == {"done": 1,
                                                                           "failed": 0}
    assert len(sims.markings(cpr)) == 1 and len(sims.pathway_cases(cpr)) == 1


def test_dry_run_plans_but_never_writes(world, store):
    sims, cpr, engine = world
    assert _night(store, engine, _rules("dry-run"), b.AS_OF) == 2
    with engine.begin() as conn:
        assert wb.approve(conn, [x.command_id for x in wb.pending(conn)], "leder", _now()) == 0
    assert wb.execute(engine, sims.writers, cpr_from_store(store), _now) == {"done": 0,
                                                                           "failed": 0}
    assert sims.markings(cpr) == [] and sims.pathway_cases() == []


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
              wb.CreatePathwayCase("c", "r", "s", "T", "k", parties=("p",), evidence=("e",)),
              wb.UpdatePathwayCase("u", "r", "s", "T", "k", parties=("p",), evidence=("e",)),
              wb.PassivatePathwayCase("d", "r", "s", "k"),
              wb.SetOtherSystemMarking("o", "r", "s", "fasit", "k", "t", ("s", "p"),
                                       date(2026, 1, 2), date(2026, 1, 1), ("q",)),
              wb.EndOtherSystemMarking("x", "r", "s", "fasit", "k", date(2026, 1, 3), ("s",))):
        assert wb.decode(wb._encode(c)) == c


@pytest.fixture
def engine_only(sqlite_url):
    engine = readmodel_engine(sqlite_url)
    yield engine
    engine.dispose()
