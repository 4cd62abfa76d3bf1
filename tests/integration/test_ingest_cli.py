"""``glasplade ingest | events | stats`` on both backends: bad records are dead-lettered with
reasons while the rest is stored, exit status and summary say so, re-runs store nothing new,
reading a person's events is itself recorded."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from hub import schemas as schemas_mod
from hub.cli.main import app
from hub.domain import events as ev
from hub.domain.cpr import synthetic_cpr
from hub.ingest.formats import event_to_json, write_avro
from tests.conftest import make_store

PERSON = synthetic_cpr(date(1987, 6, 5), 11)
OTHER = synthetic_cpr(date(2012, 9, 30), 3)
T0 = datetime(2024, 1, 10, 9, 0, tzinfo=UTC)


def _event(payload, n: int, *, case_key: str | None = "dubu:S-1", person: str = PERSON,
           source: str = "dubu") -> ev.CanonicalEvent:
    return ev.CanonicalEvent(
        event_id=uuid.uuid4(), source_system=source, source_record_id=f"R-{n}",
        source_version="1", occurred_at=T0 + timedelta(days=n), payload=payload, person=person,
        case_key=case_key, actor="cw-7")


def good_events() -> list[ev.CanonicalEvent]:
    return [
        _event(ev.PersonCivilStatusChanged(civil_status="G"), 0, case_key=None, source="cpr"),
        _event(ev.CaseOpened(department="BUF", unit_id="u1", unit_name="Familie",
                             case_type="underretning", status="open"), 1),
        _event(ev.CaseActionRecorded(action_id="a1", action_type="journal_note"), 2),
        _event(ev.CaseStatusChanged(status="active", previous_status="open"), 3),
    ]


def _line(e: ev.CanonicalEvent, **override) -> bytes:
    d = orjson.loads(event_to_json(e))
    d.update(override)
    return orjson.dumps(d)


def bad_lines() -> dict[str, bytes]:
    """One bad record of each kind, and a word its rejection reason must contain."""
    base = _event(ev.CaseActionRecorded(action_id="b", action_type="journal_note"), 9)
    missing = orjson.loads(event_to_json(base))
    del missing["source_record_id"]
    wrong = orjson.loads(_line(base, source_record_id="R-wrong"))
    wrong["payload"]["action_id"] = 42
    return {
        "JSON": b'{"event_type": "CaseOpened", "payload": {',
        "unknown event type": _line(base, event_type="CaseTeleported", source_record_id="R-u"),
        "missing": orjson.dumps(missing),
        "CPR": _line(base, person="0000000000", source_record_id="R-cpr"),
        "action_id": orjson.dumps(wrong),
    }


def _write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _run(runner: CliRunner, *args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result, result.stdout


def test_bad_records_are_dead_lettered_and_the_rest_stored(runner, store_url, tmp_path):
    good, bad = good_events(), bad_lines()
    lines = [_line(good[0]), bad["JSON"], _line(good[1]), bad["unknown event type"],
             bad["missing"], _line(good[2]), bad["CPR"], bad["action_id"], _line(good[3])]
    path = _write_jsonl(tmp_path / "mixed.jsonl", lines)

    result, out = _run(runner, "ingest", str(path), "--store", store_url, "--batch-size", "3")
    assert result.exit_code == 2, out
    assert "read 9, stored 4, duplicate 0, rejected 5" in out
    assert len(re.findall(r"^  rejected \d+: ", out, re.M)) >= 3  # reasons, counted by class

    store = make_store(store_url)
    try:
        stored = store.read()
        assert [e.event_id for e in stored] == [e.event_id for e in good]
        dead = store.dead_letters()
        assert len(dead) == 5
        reasons = " | ".join(d.reason for d in dead)
        for word in bad:
            assert word in reasons, (word, reasons)
        assert all(d.reason.startswith("mixed.jsonl:") for d in dead)  # the line is named
        raws = {d.raw for d in dead}
        assert bad["JSON"] in raws and bad["CPR"] in raws  # the raw record, as read
    finally:
        store.close()

    # The same file again: nothing new stored, the dead letters are kept once.
    result, out = _run(runner, "ingest", str(path), "--store", store_url, "--json")
    assert result.exit_code == 2
    summary = json.loads(out)
    assert (summary["read"], summary["stored"], summary["duplicates"], summary["rejected"]) == (
        9, 0, 4, 5)
    store = make_store(store_url)
    try:
        assert len(store.read()) == 4
        assert sum(store.dead_letter_counts().values()) == 5
    finally:
        store.close()


def test_clean_files_exit_zero_and_rerun_stores_nothing(runner, store_url, tmp_path):
    events = good_events()
    avro_path = tmp_path / "a.avro"
    write_avro(avro_path, events[:2], schemas_mod.default())
    jsonl = _write_jsonl(tmp_path / "b.jsonl", [_line(e) for e in events[2:]])

    result, out = _run(runner, "ingest", str(avro_path), str(jsonl), "--store", store_url)
    assert result.exit_code == 0, out
    assert "read 4, stored 4, duplicate 0, rejected 0" in out
    result, out = _run(runner, "ingest", str(avro_path), str(jsonl), "--store", store_url)
    assert result.exit_code == 0, out
    assert "read 4, stored 0, duplicate 4, rejected 0" in out


def test_bad_avro_records_are_dead_lettered_and_the_rest_stored(runner, store_url, tmp_path):
    # What Avro decoding cannot catch: empty strings, unknown schema versions, CPR form, no
    # stream. A person with an address (a union branch holding a record) goes in whole.
    good = good_events() + [_event(ev.PersonRegistered(
        first_name="Testa", last_name="Testesen", birth_date=date(1987, 6, 5), sex="K",
        address=ev.Address("Glasvej", "1", "9990", "Glasby", floor="2")), 4, case_key=None,
        source="cpr")]
    base = ev.CaseActionRecorded(action_id="b", action_type="journal_note")
    bad = {  # a word of the reason -> the record
        "missing required field(s): source_version": replace(_event(base, 10),
                                                             source_version=""),
        "schema_version 99": replace(_event(base, 11), schema_version=99),
        "person is not a CPR": _event(base, 12, person="0000000000"),
        "needs a person": _event(ev.PersonCivilStatusChanged(civil_status="G"), 13,
                                 case_key=None, person=None),
    }
    mixed = [good[0], *bad.values(), *good[1:]]
    path = tmp_path / "mixed.avro"
    write_avro(path, mixed, schemas_mod.default())

    result, out = _run(runner, "ingest", str(path), "--store", store_url, "--batch-size", "3")
    assert result.exit_code == 2, out
    assert "read 9, stored 5, duplicate 0, rejected 4" in out
    store = make_store(store_url)
    try:
        stored = store.read()
        assert [(e.event_id, e.payload, e.person) for e in stored] == [
            (e.event_id, e.payload, e.person) for e in good]
        by_origin = {d.reason.split(":")[0]: d.reason for d in store.dead_letters()}
        assert len(by_origin) == 4
        for reason, e in bad.items():
            assert reason in by_origin[f"mixed.avro#{mixed.index(e) + 1}"], (reason, by_origin)
    finally:
        store.close()


def test_a_json_person_with_a_nested_record_is_ingested(runner, store_url, tmp_path):
    # PersonRegistered's schema references the named record Address.
    person = _event(ev.PersonRegistered(first_name="Testa", last_name="Testesen",
                                        birth_date=date(1987, 6, 5), sex="K"), 0, case_key=None,
                    source="cpr")
    path = _write_jsonl(tmp_path / "p.jsonl", [_line(person)])
    result = runner.invoke(app, ["ingest", str(path), "--store", store_url])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception))
    assert result.exit_code == 0, result.output
    assert "stored 1" in result.stdout


def test_an_unreadable_file_fails_with_status_1(runner, store_url, tmp_path):
    good = _write_jsonl(tmp_path / "good.jsonl", [_line(good_events()[1])])
    not_avro = tmp_path / "broken.avro"
    not_avro.write_bytes(b"this is not an avro container")
    result = runner.invoke(app, ["ingest", str(good), str(not_avro), str(tmp_path / "x.csv"),
                                 "--store", store_url])
    assert result.exit_code == 1, result.output
    assert "stored 1" in result.stdout          # the readable file still went in
    assert "broken.avro" in result.stderr and "x.csv" in result.stderr


def test_a_bad_store_url_fails_with_status_1(runner, tmp_path):
    path = _write_jsonl(tmp_path / "g.jsonl", [_line(good_events()[1])])
    result = runner.invoke(app, ["ingest", str(path), "--store", "mysql://nope"])
    assert result.exit_code == 1
    assert "store_url" in result.stderr


def _ingest_case_and_person(runner, store_url, tmp_path) -> list[ev.CanonicalEvent]:
    events = good_events() + [
        _event(ev.CaseOpened(department="BSF", unit_id="u9", unit_name="Jobcenter",
                             case_type="kontanthjælp", status="open"), 20, case_key="fasit:F-2",
               source="fasit", person=OTHER)]
    path = _write_jsonl(tmp_path / "e.jsonl", [_line(e) for e in events])
    assert _run(runner, "ingest", str(path), "--store", store_url)[0].exit_code == 0
    return events


def _accesses(store_url: str) -> list[ev.CanonicalEvent]:
    store = make_store(store_url)
    try:
        return store.read(types=["PersonRecordAccessed"])
    finally:
        store.close()


def test_events_of_a_case_in_order_and_the_read_is_recorded(runner, store_url, tmp_path):
    events = _ingest_case_and_person(runner, store_url, tmp_path)
    result, out = _run(runner, "events", "--case", "dubu:S-1", "--store", store_url, "--json",
                       "--purpose", "support-ticket-17")
    assert result.exit_code == 0, out
    got = [json.loads(line) for line in out.splitlines()]
    assert [g["event_id"] for g in got] == [str(e.event_id) for e in events[1:4]]
    assert [g["position"] for g in got] == sorted(g["position"] for g in got)
    assert all(g["recorded_at"] for g in got)
    (access,) = _accesses(store_url)
    assert access.person == PERSON
    assert access.payload.purpose == "support-ticket-17"
    assert access.payload.view == "events"

    result, out = _run(runner, "events", "--case", "dubu:S-1", "--store", store_url)
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["position", "occurred_at", "recorded_at", "source", "type"]
    assert [ln.split()[4] for ln in lines[2:]] == [
        "CaseOpened", "CaseActionRecorded", "CaseStatusChanged"]
    assert PERSON not in out  # the table shows no CPR numbers


def test_events_of_a_person_in_order_and_the_read_is_recorded(runner, store_url, tmp_path):
    events = _ingest_case_and_person(runner, store_url, tmp_path)
    result, out = _run(runner, "events", "--person", PERSON, "--store", store_url, "--json")
    assert result.exit_code == 0, out
    got = [json.loads(line) for line in out.splitlines()]
    assert [g["event_id"] for g in got][:4] == [str(e.event_id) for e in events[:4]]
    assert str(events[4].event_id) not in out  # the other person's case is not shown
    accesses = _accesses(store_url)
    assert [a.person for a in accesses] == [PERSON]
    assert accesses[0].actor and accesses[0].payload.user_id == accesses[0].actor

    result, out = _run(runner, "events", "--person", OTHER, "--store", store_url)
    assert result.exit_code == 0
    assert [a.person for a in _accesses(store_url)] == [PERSON, OTHER]


def test_events_needs_exactly_one_subject(runner, store_url):
    assert runner.invoke(app, ["events", "--store", store_url]).exit_code == 1
    result = runner.invoke(app, ["events", "--case", "x:1", "--person", PERSON,
                                 "--store", store_url])
    assert result.exit_code == 1


def test_stats_json(runner, store_url, tmp_path):
    path = _write_jsonl(tmp_path / "s.jsonl",
                        [_line(e) for e in good_events()] + [bad_lines()["CPR"]])
    assert _run(runner, "ingest", str(path), "--store", store_url)[0].exit_code == 2
    result, out = _run(runner, "stats", "--json", "--store", store_url)
    assert result.exit_code == 0, out
    stats = json.loads(out)
    assert stats["events"] == 4
    assert stats["last_position"] >= 4
    by = {(r["event_type"], r["source_system"]): r["count"] for r in stats["by_type_and_source"]}
    assert by == {("PersonCivilStatusChanged", "cpr"): 1, ("CaseOpened", "dubu"): 1,
                  ("CaseActionRecorded", "dubu"): 1, ("CaseStatusChanged", "dubu"): 1}
    assert stats["dead_letters"] == {"dubu": 1}
