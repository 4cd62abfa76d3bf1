"""Odense's write-back through the real CLI (``overlap run``, ``targets writeback list|approve|
execute``) against the Fasit and SBSYS simulators: the nightly run plans the rule's commands,
a leader approves them, ``execute`` writes them once and records what Fasit and SBSYS now show
as events."""

from __future__ import annotations

import dataclasses
from datetime import date

import orjson
from typer.testing import CliRunner

from hub.cli.main import app
from hub.synthetic.model import Person
from tests.conftest import make_store
from tests.connectors.conftest import make_municipality
from tests.targets.builders import address
from tests.targets.test_nightly import CHILD, MOTHER, _family
from tests.targets.writeback_sims import running_sims

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _municipality():
    """The simulators' world holds the test family: SBSYS knows both, Fasit the mother (she has
    a Fasit case), not the child."""
    m = make_municipality()
    for cpr, born in ((MOTHER, date(1990, 3, 4)), (CHILD, date(2012, 6, 7))):
        m.persons.append(Person(cpr, "Test", "Person", born, "K", address(), "H-fam"))
    fasit_case = next(c for c in m.cases if c.system == "fasit")
    m.cases.append(dataclasses.replace(fasit_case, case_id="F-1", person=MOTHER, grants=[],
                                       actions=[], status="open", closed_at=None))
    return m


def test_odense_write_back_through_the_cli(store_url, tmp_path, monkeypatch):
    s = make_store(store_url)
    _family(s)
    s.close()
    with running_sims(_municipality(), monkeypatch) as sims:
        run = _run("overlap", "run", "--store", store_url, "--rules", "odense", "--as-of",
                   "2026-11-29", "--report-dir", str(tmp_path), "--json")
        assert orjson.loads(run.stdout)["write_back_planned"] == 3
        listed = orjson.loads(_run("targets", "writeback", "list", "--status", "planned",
                                   "--store", store_url, "--json").stdout)
        assert sorted(x["kind"] for x in listed) == ["CreatePathwayCase", "SetMarking",
                                                     "SetOtherSystemMarking"]
        assert {x["mode"] for x in listed} == {"approval"}
        assert _run("targets", "writeback", "execute", "--store", store_url).stdout.startswith(
            "written 0, failed 0")  # waits for the leader
        approved = _run("targets", "writeback", "approve", *[x["command_id"] for x in listed],
                        "--store", store_url)
        assert approved.exit_code == 0, approved.output
        done = _run("targets", "writeback", "execute", "--store", store_url)
        assert done.exit_code == 0 and done.stdout.startswith("written 3, failed 0")

        (mark,) = sims.markings(MOTHER)
        assert mark["personGroupName"] == "Sammenhængende borgerforløb"
        (case,) = sims.pathway_cases(CHILD)
        assert {p["CPRnummer"].replace("-", "") for p in case["Parter"]} == {CHILD, MOTHER}
        assert "Familien har sag i DUBU" in sims.note_field(MOTHER)

        again = _run("overlap", "run", "--store", store_url, "--rules", "odense", "--as-of",
                     "2026-11-30", "--report-dir", str(tmp_path), "--json")
        assert orjson.loads(again.stdout)["write_back_planned"] == 0
        assert _run("targets", "writeback", "execute", "--store",
                    store_url).stdout.startswith("written 0, failed 0")

    s = make_store(store_url)
    try:
        types = sorted(e.event_type for e in s.person_events(MOTHER)
                       if e.event_type.startswith("Marking"))
        started = [e for e in s.person_events(CHILD) if e.event_type == "PathwayStarted"]
    finally:
        s.close()
    assert types == ["MarkingSet", "MarkingSet"]  # the person group and the other-system line
    assert len(started) == 1 and started[0].payload.rule_id == "odense-buf-bsf-family"


def test_list_and_approve_before_any_nightly_run(store_url):
    """A fresh store (no nightly run has created the record yet): ``list`` shows no commands and
    ``approve`` says it approved none (exit 1: not all were approved), instead of failing on a
    missing table."""
    make_store(store_url).close()
    listed = _run("targets", "writeback", "list", "--store", store_url, "--json")
    assert listed.exit_code == 0, listed.output
    assert orjson.loads(listed.stdout) == []
    approved = _run("targets", "writeback", "approve", "no-such-command", "--store", store_url)
    assert approved.exit_code == 1 and approved.stdout.startswith("approved 0 of 1")
