"""Crash safety with a real process: ``glasplade ingest`` killed with SIGKILL mid-run, then run
again to the end, leaves exactly the events of one clean run, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from hub import schemas as schemas_mod
from hub.domain import events as ev
from hub.domain.cpr import synthetic_cpr
from hub.domain.streams import stream_id, stream_name
from hub.ingest.formats import read_file, write_avro
from hub.ingest.pipeline import Ingestor
from hub.ingest.validate import Validator
from hub.store.eventstore import EventStore
from tests.conftest import make_store

ROOT = Path(__file__).resolve().parents[2]
PERSONS, ACTIONS, BATCH = 300, 30, 100
T0 = datetime(2021, 1, 4, 8, 0, tzinfo=UTC)


def _events() -> list[ev.CanonicalEvent]:
    out = []
    for i in range(PERSONS):
        person = synthetic_cpr(date(1960, 1, 1) + timedelta(days=17 * i), i)
        case_key = f"dubu:S-{i:05d}"

        def add(payload, rid, n, *, case=case_key, person=person):
            out.append(ev.CanonicalEvent(
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"crash/{rid}"), source_system="dubu",
                source_record_id=rid, source_version="1", occurred_at=T0 + timedelta(hours=n),
                payload=payload, person=person, case_key=case, actor="cw-1"))

        add(ev.PersonCivilStatusChanged(civil_status="G"), f"P-{i}", 0, case=None)
        add(ev.CaseOpened(department="BUF", unit_id="u1", unit_name="Familie",
                          case_type="underretning", status="open"), f"S-{i}", 1)
        for a in range(ACTIONS):
            add(ev.CaseActionRecorded(action_id=f"{i}-{a}", action_type="journal_note"),
                f"A-{i}-{a}", 2 + a)
        if i % 100 == 7:  # a bad record now and then: dead-lettered, kept once
            add(ev.CaseClosed(reason="x"), f"BAD-{i}", 99, person="123")
    return out


@pytest.fixture(scope="module")
def source_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "events.avro"
    write_avro(path, _events(), schemas_mod.default())
    return path


def _count(url: str) -> int:
    """Committed events, read with a plain driver (the table may not exist yet)."""
    try:
        if url.startswith("sqlite"):
            with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=5) as conn:
                return conn.execute("SELECT count(*) FROM glasplade_events").fetchone()[0]
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM glasplade_events").fetchone()[0]
    except (sqlite3.Error, psycopg.Error):
        return 0


def _ingest(url: str, path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli.main", "ingest", str(path), "--store", url,
         "--batch-size", str(BATCH)],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_after_growth(url: str, path: Path) -> int:
    """Start an ingest, SIGKILL it once it has committed at least one more batch."""
    before = _count(url)
    proc = _ingest(url, path)
    deadline = time.monotonic() + 60
    while _count(url) < before + BATCH:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"ingest ended before it could be killed ({proc.returncode}): {err!r}")
        assert time.monotonic() < deadline, "ingest committed nothing within 60 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()
    proc.stderr.close()
    return _count(url)


def _shape(store: EventStore) -> tuple[set, dict, int]:
    """Dedupe keys, the order of each stream, and the dead letters."""
    keys, streams = set(), defaultdict(list)
    for e in store.iter_events():
        keys.add(e.dedupe_key)
        name = stream_name(e.payload, case_key=e.case_key, person_key=e.person_key)
        streams[name].append(e.dedupe_key)
    return keys, dict(streams), sum(store.dead_letter_counts().values())


@pytest.mark.slow
def test_sigkill_mid_ingest_then_rerun_equals_one_clean_run(store_url, source_file, tmp_path):
    total = len(list(read_file(source_file, schemas_mod.default())))
    # The reference: one clean, uninterrupted run into another store.
    clean = make_store(f"sqlite:///{tmp_path / 'clean.db'}")
    summary = Ingestor(clean, Validator(schemas_mod.default()), BATCH).run(
        read_file(source_file, schemas_mod.default()))
    assert summary.rejected == PERSONS // 100 and summary.stored == total - summary.rejected
    want = _shape(clean)
    clean.close()

    seen = _kill_after_growth(store_url, source_file)
    assert 0 < seen < summary.stored, f"not killed mid-run: {seen} of {summary.stored}"

    proc = _ingest(store_url, source_file)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err  # 2: the bad records were rejected again
    assert b"stored %d," % (summary.stored - seen) in out, out

    store = make_store(store_url)
    try:
        got = _shape(store)
        assert got[0] == want[0]                  # the same facts, none lost, none doubled
        assert got[1] == want[1]                  # every stream in the same order
        assert got[2] == want[2] == PERSONS // 100  # dead letters kept once each
        assert store.max_position() >= summary.stored
        for name in list(got[1])[:50]:             # stream versions without gaps
            rows = store.recorder.stream_rows(stream_id(name))
            assert [r.originator_version for r in rows] == list(range(1, len(rows) + 1))
    finally:
        store.close()
