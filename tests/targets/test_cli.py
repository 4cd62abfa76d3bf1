"""``glasplade overlap run`` / ``targets`` through the real CLI, on a real store."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.cli.overlap import next_run, schedule
from hub.logging import configure
from tests.conftest import make_store
from tests.targets.test_nightly import CHILD, _family

runner = CliRunner()


@pytest.fixture
def filled(store_url):
    s = make_store(store_url)
    _family(s)
    s.close()
    return store_url


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_overlap_run_twice_then_list_and_why(filled, tmp_path):
    args = ["overlap", "run", "--store", filled, "--rules", "odense", "--as-of", "2026-11-29",
            "--report-dir", str(tmp_path), "--json"]
    first = _run(*args)
    assert first.exit_code == 0, first.output
    out = orjson.loads(first.stdout)
    assert (out["matches"], out["started"], out["events_stored"]) == (3, 3, 3)
    assert len(list(tmp_path.glob("overlap-odense-*.html"))) == 1
    second = orjson.loads(_run(*args).stdout)
    assert (second["started"], second["ended"], second["events_stored"]) == (0, 0, 0)

    listed = _run("targets", "list", "odense-buf-bsf-household", "--store", filled, "--json")
    assert listed.exit_code == 0 and len(orjson.loads(listed.stdout)) == 2
    by_unit = _run("targets", "list", "odense-buf-bsf-household", "--unit", "BSF-RAAD",
                   "--store", filled, "--json")
    assert len(orjson.loads(by_unit.stdout)) == 2
    none = _run("targets", "list", "odense-buf-bsf-household", "--unit", "VOK-VISIT",
                "--store", filled, "--json")
    assert orjson.loads(none.stdout) == []

    why = _run("targets", "why", "--person", CHILD, "--store", filled)
    assert why.exit_code == 0 and "case:dubu:S-1" in why.stdout
    assert CHILD not in why.stdout  # the CPR number is not echoed
    s = make_store(filled)
    try:
        accessed = [e for e in s.person_events(CHILD) if e.event_type == "PersonRecordAccessed"]
    finally:
        s.close()
    assert len(accessed) == 1 and accessed[0].payload.view == "target-groups"


def test_bad_rule_file_fails_with_exit_1_and_the_line(sqlite_url, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('municipality = "x"\nversion = "1"\n[[rules]]\nid = "a"\nversion = 1\n'
                   'kind = "nope"\ntitle = "t"\n')
    result = runner.invoke(app, ["overlap", "run", "--store", sqlite_url, "--rules", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:6: kind: unknown kind" in result.stderr
    result = runner.invoke(app, ["targets", "validate", str(bad)])
    assert result.exit_code == 1


def test_unreachable_store_is_a_failure(tmp_path):
    url = "postgresql://postgres@127.0.0.1:1/none"
    result = runner.invoke(app, ["overlap", "run", "--store", url, "--report-dir",
                                 str(tmp_path)])
    assert result.exit_code == 1


def test_next_run_and_scheduler_survives_a_failed_run(capsys):
    configure("json", "INFO")  # CLI tests leave structlog on CliRunner's closed stream
    now = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
    assert next_run(now, "02:00") == datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    assert next_run(now, "01:30") == datetime(2026, 11, 30, 1, 30, tzinfo=UTC)
    slept, calls = [], []

    def job():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database down")

    failures = schedule("02:00", job, max_runs=2, clock=lambda: now, sleep=slept.append)
    assert failures == 1 and len(calls) == 2 and slept == [1800.0, 1800.0]
    assert "overlap run failed" in capsys.readouterr().err


def test_schedule_rejects_bad_time(sqlite_url):
    result = runner.invoke(app, ["overlap", "run", "--store", sqlite_url, "--schedule", "25"])
    assert result.exit_code != 0


def test_date_as_of_is_used(filled, tmp_path):
    result = _run("overlap", "run", "--store", filled, "--as-of", "2026-01-01",
                  "--report-dir", str(tmp_path), "--json")
    assert orjson.loads(result.stdout)["as_of"].startswith("2026-01-01")
