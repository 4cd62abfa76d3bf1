"""Write-back that follows a match while it lasts, against the Fasit and SBSYS simulators over
real sockets: the coordinated-pathway case (created, updated when the evidence changes,
passivated) and the "case in another system" marking in Fasit's "Kommunens markeringer" (set,
changed, ended). State is read back over the simulators' HTTP APIs; each write is also an event,
stored once (the connector's later read of the same state adds nothing)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from connectors.fasit.commands import note_line, with_line, without_line
from connectors.http import RequestRejected
from connectors.runner import ConnectorRunner
from connectors.sbsys import dialect as sbsys_dialect
from connectors.sbsys import mapping as sbsys_mapping
from connectors.sbsys.connector import from_settings as sbsys_connector
from hub.config import Settings
from hub.domain import rules as r
from hub.targets import writeback as wb
from hub.targets.loader import RuleFileError, default_rules_dir, load_rule_file, load_rule_text
from hub.targets.nightly import run_overlap
from hub.targets.writers import cpr_from_store
from projections.db import readmodel_engine
from projections.target_groups import TargetGroupsProjection
from tests.connectors.conftest import make_municipality
from tests.targets import builders as b
from tests.targets.writeback_sims import running_sims

MARKING = "Sammenhængende borgerforløb"
CASEWORKER_TEXT = "Ring før besøg"
INTERPRETER = "Tolk: arabisk"


def _family(mode: str, marking: bool = False) -> r.RuleSet:
    return r.RuleSet("test", "1", (r.Rule(
        "fam", "1", "family_departments", "Familie i BUF og BSF", departments=("BUF", "BSF"),
        relations=("parent",), write_back=r.WriteBack(
            mode, "fasit" if marking else None, MARKING if marking else None,
            pathway_case=True, other_system_marking="fasit")),))


def _dashed(cpr: str) -> str:
    return f"{cpr[:6]}-{cpr[6:]}"


@pytest.fixture
def fam(monkeypatch, store, store_url):
    """A child with a DUBU case (BUF) whose parent has a Fasit case (BSF). Fasit knows only the
    parent, whose note fields already hold a caseworker's text; SBSYS knows both."""
    m = make_municipality()
    with_cases = {c.person for c in m.cases}
    child, parent = sorted(p.cpr for p in m.persons if p.cpr not in with_cases)[:2]
    template = next(c for c in m.cases if c.system == "fasit")
    m.cases.append(dataclasses.replace(template, case_id="F-1", person=parent, grants=[],
                                       actions=[], status="open", closed_at=None))
    with running_sims(m, monkeypatch) as sims:
        sims.fasit.world.set_notes(parent, {"importantNote1": INTERPRETER,
                                            "importantNote2": CASEWORKER_TEXT})
        store.append([b.relation(child, parent, "parent"),
                      b.open_case(child, "dubu:S-1", "BUF"),
                      b.open_case(parent, "fasit:F-1", "BSF")])
        engine = readmodel_engine(store_url)
        wb.create_tables(engine)  # as the dashboard and the CLI do where they set up an engine
        yield sims, child, parent, engine
        engine.dispose()


def _night(store, engine, rules, days: int) -> list[str]:
    """One nightly run plus planning; the kinds of the commands recorded."""
    as_of = b.AS_OF + timedelta(days=days)
    result = run_overlap(store, engine, rules, as_of, TargetGroupsProjection(store.person_key))
    planned = wb.plan(rules, result.started, result.ended, as_of.date(), result.current)
    with engine.begin() as conn:
        before = {x.command_id for x in wb.pending(conn)}
        wb.record_plan(conn, planned, as_of)
        return sorted(x.kind for x in wb.pending(conn) if x.command_id not in before)


def _now():
    return datetime.now(UTC)


def _execute(store, engine, sims, **kw):
    return wb.execute(engine, sims.writers, cpr_from_store(store), _now, record=store.append,
                      **kw)


def _state(sims, child, parent):
    """What the fagsystemer show: the pathway cases with their notes, and the note field."""
    cases = sims.pathway_cases(child)
    return ([(c["SagsTitel"], c["SagsStatus"]["Navn"], c["SenestAendret"],
              sorted(p["CPRnummer"] for p in c["Parter"]),
              [n["Note"] for n in sims.case_notes(c["Id"])]) for c in cases],
            sims.note_field(parent))


def _events(store, cpr, prefix):
    return [e for e in store.person_events(cpr) if e.event_type.startswith(prefix)]


def test_pathway_case_and_other_system_marking_follow_the_match(fam, store):
    sims, child, parent, engine = fam
    rules = _family("automatic", marking=True)
    assert _night(store, engine, rules, 0) == ["CreatePathwayCase", "SetMarking",
                                               "SetOtherSystemMarking"]
    assert _execute(store, engine, sims) == {"done": 3, "failed": 0}
    (mark,) = sims.markings(parent)  # the parent in Fasit; Fasit does not know the child
    assert mark["personGroupName"] == MARKING and mark["endDate"] is None

    (case,) = sims.pathway_cases(child)
    assert case["SagSkabelon"] == {"Id": 2, "Navn": "Sammenhængende borgerforløb"}
    assert {p["CPRnummer"] for p in case["Parter"]} == {_dashed(child), _dashed(parent)}
    (note,) = sims.case_notes(case["Id"])
    assert "Aktiv sag i DUBU: S-1" in note["Note"] and "Aktiv sag i Fasit: F-1" in note["Note"]
    kept, line = sims.note_field(parent).splitlines()
    assert kept == CASEWORKER_TEXT and line.startswith("Familien har sag i DUBU (")
    assert sims.citizen(child) is None  # Fasit does not know the child: nothing to mark there
    assert sims.fasit_reader.notes(sims.citizen(parent))["importantNote1"] == INTERPRETER

    # each write is an event too
    (started,) = _events(store, child, "PathwayStarted")
    assert started.payload.pathway_id == f"sbsys:{case['Nummer']}"
    assert started.payload.rule_id == "fam" and set(started.payload.members) == {child, parent}
    marked, group = sorted(_events(store, parent, "MarkingSet"),
                           key=lambda e: e.payload.marking_type)
    assert (group.payload.marking_type, group.payload.marking_id) == (MARKING, mark["id"])
    assert marked.payload.marking_type == "Sag i andet system" and marked.payload.note == line

    # the next night, nothing changed: nothing planned, nothing written
    before = _state(sims, child, parent)
    assert _night(store, engine, rules, 1) == []
    assert _execute(store, engine, sims) == {"done": 0, "failed": 0}
    assert _state(sims, child, parent) == before

    # the evidence changes while the match continues: the child has a case in SBSYS too
    store.append([b.open_case(child, "sbsys:B-7", "BUF")])
    assert _night(store, engine, rules, 2) == ["SetOtherSystemMarking", "UpdatePathwayCase"]
    assert _execute(store, engine, sims) == {"done": 2, "failed": 0}
    (case,) = sims.pathway_cases(child)
    first, second = sims.case_notes(case["Id"])
    assert "Aktiv sag i SBSYS: B-7" in second["Note"] and "B-7" not in first["Note"]
    kept, line = sims.note_field(parent).splitlines()
    assert kept == CASEWORKER_TEXT and line.startswith("Familien har sag i DUBU, SBSYS (")
    assert [e.payload.note for e in _events(store, parent, "MarkingSet")][-1] == line
    before = _state(sims, child, parent)
    assert _night(store, engine, rules, 3) == []
    assert _execute(store, engine, sims) == {"done": 0, "failed": 0}
    assert _state(sims, child, parent) == before

    # the parent's BSF case closes: the match ends
    store.append([b.close_case(parent, "fasit:F-1")])
    assert _night(store, engine, rules, 4) == ["EndMarking", "EndOtherSystemMarking",
                                               "PassivatePathwayCase"]
    assert _execute(store, engine, sims) == {"done": 3, "failed": 0}
    (mark,) = sims.markings(parent)
    assert mark["endDate"] is not None
    assert sims.note_field(parent) == CASEWORKER_TEXT
    assert sims.fasit_reader.notes(sims.citizen(parent))["importantNote1"] == INTERPRETER
    (case,) = sims.pathway_cases(child)
    assert case["SagsStatus"]["SagsTilstand"] == "Passiv"
    (closed,) = _events(store, child, "PathwayClosed")
    assert closed.payload.reason == "no_longer_in_target_group"
    ended = {e.payload.marking_id for e in _events(store, parent, "MarkingEnded")}
    assert ended == {marked.payload.marking_id, mark["id"]}

    # the SBSYS connector reads the same case: every fact is in the store already
    ids = {e.event_id for e in store.person_events(child)}
    assert {e.event_id for e in sbsys_mapping.pathway_events(case, {})} <= ids
    pathway = [e.event_id for e in _events(store, child, "Pathway")]
    runner = ConnectorRunner(store, [sbsys_connector(Settings())])
    assert runner.run_once().ok
    assert [e.event_id for e in _events(store, child, "Pathway")] == pathway
    assert not store.case_events(f"sbsys:{case['Nummer']}"), "not a department's case"

    # the match starts again: a new pathway case (the passive one stays as it is)
    store.append([b.open_case(parent, "fasit:F-2", "BSF")])
    assert _night(store, engine, rules, 5) == ["CreatePathwayCase", "SetMarking",
                                               "SetOtherSystemMarking"]
    assert _execute(store, engine, sims) == {"done": 3, "failed": 0}
    old, new = sorted(sims.pathway_cases(child), key=lambda c: c["Id"])
    assert old["SagsStatus"]["SagsTilstand"] == "Passiv" and old["Id"] == case["Id"]
    assert new["SagsStatus"]["Navn"] == "Oprettet" and new["SagsTitel"].endswith(":2]")
    assert len(sims.note_field(parent).splitlines()) == 2


def test_dry_run_writes_nothing_and_approval_waits(fam, store):
    sims, child, parent, engine = fam
    assert _night(store, engine, _family("dry-run"), 0) == ["CreatePathwayCase",
                                                            "SetOtherSystemMarking"]
    with engine.begin() as conn:
        assert wb.approve(conn, [x.command_id for x in wb.pending(conn)], "leder", _now()) == 0
    assert _execute(store, engine, sims) == {"done": 0, "failed": 0}
    assert sims.pathway_cases() == [] and sims.note_field(parent) == CASEWORKER_TEXT


def test_approval_mode_waits_for_the_leader(fam, store):
    sims, child, parent, engine = fam
    assert len(_night(store, engine, _family("approval"), 0)) == 2
    assert _execute(store, engine, sims) == {"done": 0, "failed": 0}
    assert sims.pathway_cases() == [] and sims.note_field(parent) == CASEWORKER_TEXT
    with engine.begin() as conn:
        ids = [x.command_id for x in wb.pending(conn, "planned")]
        assert wb.approve(conn, ids, "leder", _now()) == 2
    assert _execute(store, engine, sims) == {"done": 2, "failed": 0}
    assert len(sims.pathway_cases(child)) == 1
    assert len(sims.note_field(parent).splitlines()) == 2
    with engine.begin() as conn:
        assert {x.decided_by for x in wb.pending(conn, "done")} == {"leder"}


def test_a_newer_state_supersedes_one_still_waiting(fam, store):
    sims, child, parent, engine = fam
    rules = _family("approval")
    _night(store, engine, rules, 0)
    with engine.begin() as conn:
        first = [x.command_id for x in wb.pending(conn, "planned")]
    store.append([b.open_case(child, "sbsys:B-7", "BUF")])
    # the case was never written, so the new state is still a creation
    assert _night(store, engine, rules, 1) == ["CreatePathwayCase", "SetOtherSystemMarking"]
    with engine.begin() as conn:
        assert sorted(x.command_id for x in wb.pending(conn, "superseded")) == sorted(first)
        assert wb.approve(conn, first, "leder", _now()) == 0
        assert wb.approve(conn, [x.command_id for x in wb.pending(conn, "planned")], "leder",
                          _now()) == 2
    assert _execute(store, engine, sims) == {"done": 2, "failed": 0}
    (case,) = sims.pathway_cases(child)
    (note,) = sims.case_notes(case["Id"])
    assert "Aktiv sag i SBSYS: B-7" in note["Note"]
    assert "DUBU, SBSYS" in sims.note_field(parent).splitlines()[1]


def test_outage_is_retried_and_writes_once(fam, store):
    sims, child, parent, engine = fam
    _night(store, engine, _family("automatic"), 0)
    sims.sbsys.stop()
    sims.fasit.stop()
    assert _execute(store, engine, sims) == {"done": 0, "failed": 2}
    with engine.begin() as conn:
        assert {(x.kind, x.attempts) for x in wb.pending(conn, "failed")} == {
            ("CreatePathwayCase", 1), ("SetOtherSystemMarking", 1)}
    sims.sbsys.restart()
    sims.fasit.restart()
    assert _execute(store, engine, sims) == {"done": 2, "failed": 0}
    assert _execute(store, engine, sims) == {"done": 0, "failed": 0}
    assert len(sims.pathway_cases(child)) == 1
    assert len(sims.note_field(parent).splitlines()) == 2


def test_a_write_is_done_only_once_its_events_are_recorded(fam, store):
    sims, child, parent, engine = fam
    _night(store, engine, _family("automatic"), 0)
    calls = []

    def failing_once(events):
        calls.append(len(events))
        if len(calls) == 1:
            raise RuntimeError("store unavailable")
        return store.append(events)

    first = wb.execute(engine, sims.writers, cpr_from_store(store), _now, record=failing_once)
    assert first == {"done": 1, "failed": 1}
    assert wb.execute(engine, sims.writers, cpr_from_store(store), _now,
                      record=failing_once) == {"done": 1, "failed": 0}
    assert len(sims.pathway_cases(child)) == 1  # the retried write changed nothing
    assert len(_events(store, child, "PathwayStarted")) == 1
    assert len(_events(store, parent, "MarkingSet")) == 1


# --- configuration, simulator and text handling ---------------------------------------------

RULE = """municipality = "x"
version = "1"
[[rules]]
id = "a"
version = 1
kind = "multi_department"
title = "A"
[rules.write_back]
mode = "automatic"
"""


def test_other_system_marking_is_configured_per_rule():
    rs = load_rule_text(RULE + 'other_system_marking = "fasit"\n')
    assert rs.rule("a").write_back == r.WriteBack("automatic", other_system_marking="fasit")
    with pytest.raises(RuleFileError, match="other_system_marking"):
        load_rule_text(RULE + "other_system_marking = 3\n")
    odense = load_rule_file(default_rules_dir() / "odense.toml")
    assert odense.rule("odense-buf-bsf-family").write_back.other_system_marking == "fasit"


def test_a_continuing_match_whose_other_system_line_is_no_longer_true_ends_it():
    rs = load_rule_text(RULE + 'other_system_marking = "fasit"\n')
    both = r.Match("a", "1", "S", "S", ("case:fasit:F-1", "case:dubu:D-1"))
    only_fasit = dataclasses.replace(both, evidence=("case:fasit:F-1", "case:fasit:F-2"))
    on = datetime(2026, 3, 1, tzinfo=UTC).date()
    kinds = [type(c).__name__ for c, _ in wb.plan(rs, [], [], on, {("a", "S"): both})]
    assert kinds == ["SetOtherSystemMarking"]
    ended = [c for c, _ in wb.plan(rs, [], [], on, {("a", "S"): only_fasit})]
    assert [type(c).__name__ for c in ended] == ["EndOtherSystemMarking"]
    assert ended[0].system == "fasit" and ended[0].subject == "S"
    # a new match without a line to write plans nothing
    assert wb.plan(rs, [only_fasit], [], on, {}) == []


def test_fasit_simulator_replaces_all_note_fields(fam):
    sims, child, parent, engine = fam
    cid = sims.citizen(parent)
    sims.fasit_reader.update_notes(cid, {"importantNote2": "Kun dette"})
    assert sims.fasit_reader.notes(cid) == {"importantNote1": None, "importantNote2": "Kun dette",
                                            "importantNote3": None}
    path = "api/citizen/citizenmasterdata/citizencore/commands/updatenotes"
    for body, status in (({"citizenId": cid, "notes": {"noSuchField": "x"}}, 400),
                         ({"citizenId": "nobody", "notes": {}}, 404)):
        with pytest.raises(RequestRejected) as info:
            sims.fasit_reader.post_json(path, body)
        assert info.value.status_code == status


def test_note_lines_keep_the_caseworkers_text():
    text = f"{CASEWORKER_TEXT}\n\nAndet [glasplade:b:2]"
    once = with_line(text, "glasplade:a:1", "Har sag i DUBU")
    assert once == f"{CASEWORKER_TEXT}\nAndet [glasplade:b:2]\nHar sag i DUBU [glasplade:a:1]"
    assert with_line(once, "glasplade:a:1", "Har sag i DUBU") == once
    changed = with_line(once, "glasplade:a:1", "Har sag i\nSBSYS")
    assert note_line(changed, "glasplade:a:1") == "Har sag i SBSYS [glasplade:a:1]"
    assert changed.splitlines()[:2] == once.splitlines()[:2]
    assert without_line(changed, "glasplade:a:1") == f"{CASEWORKER_TEXT}\nAndet [glasplade:b:2]"
    assert without_line(None, "glasplade:a:1") == ""


def test_a_party_added_to_the_pathway_case_reaches_the_store(fam, store):
    """A caseworker adds a party to the pathway case in SBSYS: the connector records the new
    member set (PathwayMembersChanged) once; reading the same parties again adds nothing."""
    sims, child, parent, engine = fam
    rules = _family("automatic")
    assert _night(store, engine, rules, 0) == ["CreatePathwayCase", "SetOtherSystemMarking"]
    assert _execute(store, engine, sims) == {"done": 2, "failed": 0}
    (case,) = sims.pathway_cases(child)
    (first,) = _events(store, child, "PathwayMembersChanged")  # recorded with the write
    assert set(first.payload.members) == {child, parent}

    runner = ConnectorRunner(store, [sbsys_connector(Settings())])
    assert runner.run_once().ok
    assert len(_events(store, child, "PathwayMembersChanged")) == 1  # same parties: nothing
    other = next(p.cpr for p in sims.m.persons if p.cpr not in (child, parent))
    assert sims.sbsys_reader.add_parties(case["Id"], [other])
    assert runner.run_once().ok
    first_again, now = _events(store, child, "PathwayMembersChanged")
    assert first_again.event_id == first.event_id
    assert set(now.payload.members) == {child, parent, other}
    assert now.payload.pathway_id == first.payload.pathway_id == f"sbsys:{case['Nummer']}"
    assert runner.run_once().ok
    assert len(_events(store, child, "PathwayMembersChanged")) == 2

    # A caseworker removes that party again in SBSYS's own screens (its API as the public
    # clients use it removes none): the case as SBSYS then shows it, one change later.
    (case,) = sims.pathway_cases(child)
    later = sbsys_dialect.parse_local(case["SenestAendret"]) + timedelta(minutes=5)
    removed = {**case, "SenestAendret": sbsys_dialect.local_time(later),
               "Parter": [p for p in case["Parter"] if p["CPRnummer"] != _dashed(other)]}
    store.append(sbsys_mapping.pathway_events(removed, {}))
    *_, back = _events(store, child, "PathwayMembersChanged")
    assert set(back.payload.members) == {child, parent}  # the same set as the first, recorded
