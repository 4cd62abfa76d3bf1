"""Personal data at rest and in logs: after ingesting a synthetic population (with some bad
records), neither the SQLite files nor a ``pg_dump`` of the event store tables, nor the log
output, contain a CPR number (with or without dash) or a name of that population in clear.

The dump is restricted to the event store's tables (``glasplade_*``: events, cursors, dead
letters). Read models (projections) are a separate concern with their own rules.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from hub import schemas as schemas_mod
from hub.cli.main import app
from hub.ingest.formats import event_to_json, read_file, write_avro
from hub.ingest.pipeline import Ingestor
from hub.ingest.validate import Validator
from hub.logging import configure, get_logger
from hub.synthetic.generate import generate
from hub.synthetic.to_events import municipality_events
from tests.conftest import make_store


@pytest.fixture(scope="module")
def population():
    m = generate(200, seed=11)
    return m, list(municipality_events(m))


def needles(m) -> dict[str, bytes]:
    """What must never be found in clear: CPR numbers in both notations and names."""
    out: dict[str, bytes] = {}
    for p in m.persons:
        for number in filter(None, (p.cpr, p.substitute_number)):
            out[f"cpr {number}"] = number.encode()
            out[f"cpr {number[:6]}-{number[6:]}"] = f"{number[:6]}-{number[6:]}".encode()
        for name in filter(None, (p.first_name, p.last_name, p.alternate_last_name)):
            # As it would appear in a JSON payload; bare as well when long enough that a
            # chance match in ciphertext is practically impossible.
            out[f"name {name!r} quoted"] = f'"{name}"'.encode()
            if len(name.encode()) >= 6:
                out[f"name {name!r}"] = name.encode()
        full = f"{p.first_name} {p.last_name}"
        out[f"full name {full}"] = full.encode()
    return out


def found(haystack: bytes, wanted: dict[str, bytes], *, hex_too: bool = False) -> list[str]:
    """Labels of needles present; ``hex_too`` also finds them hex-encoded (bytea in a dump)."""
    hay_hex = haystack.lower() if hex_too else b""
    return sorted(label for label, n in wanted.items()
                  if n in haystack or (hex_too and n.hex().encode() in hay_hex))


def bad_records(events) -> list[bytes]:
    """Bad copies of real person records: wrong date format, dashed CPR, unknown type, broken
    JSON with a name in it. Their reasons, record ids and raw bytes all touch personal data."""
    person = next(e for e in events if e.event_type == "PersonRegistered")
    d = orjson.loads(event_to_json(person))
    wrong_date = {**d, "source_version": "bad-date",
                  "payload": {**d["payload"], "birth_date": "14.02.2005"}}
    rel = orjson.loads(event_to_json(next(e for e in events
                                          if e.event_type == "PersonRelationChanged")))
    dashed = {**rel, "source_version": "dashed",
              "person": f"{rel['person'][:6]}-{rel['person'][6:]}"}
    unknown = {**rel, "source_version": "unknown", "event_type": "PersonTeleported"}
    broken = b'{"event_type": "PersonRegistered", "payload": {"first_name": "' + \
        d["payload"]["first_name"].encode() + b'"'
    return [orjson.dumps(wrong_date), orjson.dumps(dashed), orjson.dumps(unknown), broken]


def _ingest_with_cli(store_url: str, tmp_path: Path, events, monkeypatch) -> tuple[str, str]:
    avro_path = tmp_path / "population.avro"
    write_avro(avro_path, events, schemas_mod.default())
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(bad_records(events)) + b"\n")
    monkeypatch.setenv("GLASPLADE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("GLASPLADE_LOG_FORMAT", "json")
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(avro_path), str(bad), "--store", store_url,
                                 "--batch-size", "250"])
    assert result.exit_code == 2, result.output  # the bad records were rejected
    assert "rejected 4" in result.stdout
    out = [result.stdout, result.stderr]
    for extra in (["stats"], ["dead-letters"], ["events", "--case", events[-1].case_key or ""]):
        r = runner.invoke(app, [*extra, "--store", store_url])
        out += [r.stdout, r.stderr]
    return "".join(out[0::2]), "".join(out[1::2])


def _positive_control(m, tmp_path: Path) -> None:
    """The search finds the population where it IS in clear (the source file)."""
    src = (tmp_path / "bad.jsonl").read_bytes()
    p = next(x for x in m.persons if x.cpr.encode() in src)
    assert found(src, {"cpr": p.cpr.encode(), "name": f'"{p.first_name}"'.encode()}) == [
        "cpr", "name"]
    assert found(b"\\x" + p.cpr.encode().hex().encode(), {"cpr": p.cpr.encode()},
                 hex_too=True) == ["cpr"]


def test_sqlite_file_holds_no_cpr_or_name_in_clear(population, sqlite_url, tmp_path,
                                                   monkeypatch):
    m, events = population
    stdout, stderr = _ingest_with_cli(sqlite_url, tmp_path, events, monkeypatch)
    _positive_control(m, tmp_path)
    store = make_store(sqlite_url)
    try:
        assert len(store.read(limit=10_000)) >= len(events)  # it is all there, decryptable
        assert any(e.payload.first_name == m.persons[0].first_name
                   for e in store.person_events(m.persons[0].cpr)
                   if e.event_type == "PersonRegistered")
    finally:
        store.close()
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    files = sorted(db.parent.glob(db.name + "*"))
    assert db in files
    wanted = needles(m)
    for f in files:  # the database, its -wal and -shm
        assert found(f.read_bytes(), wanted) == [], f.name
    assert found(stderr.encode(), wanted) == [], "log output"
    assert found(stdout.encode(), wanted) == [], "printed summary and tables"


def test_postgres_dump_holds_no_cpr_or_name_in_clear(population, pg_url, tmp_path, monkeypatch):
    m, events = population
    stdout, stderr = _ingest_with_cli(pg_url, tmp_path, events, monkeypatch)
    _positive_control(m, tmp_path)
    pg_dump = shutil.which("pg_dump") or "/usr/bin/pg_dump"
    dump = subprocess.run([pg_dump, "--dbname", pg_url, "--table", "glasplade_*"],
                          capture_output=True, check=True, timeout=60).stdout
    assert b"COPY public.glasplade_events" in dump and len(dump) > 100_000
    wanted = needles(m)
    assert found(dump, wanted, hex_too=True) == []
    assert found(stderr.encode(), wanted) == [], "log output"
    assert found(stdout.encode(), wanted) == [], "printed summary and tables"


def test_logs_hold_no_cpr_or_name_while_ingesting_and_on_errors(population, sqlite_url,
                                                               tmp_path):
    """hub.logging as JSON into a buffer around an in-process ingest with bad records, a store
    failure, and a careless log call: the masking guard must hold."""
    m, events = population
    buf = io.StringIO()
    configure("json", "DEBUG", stream=buf)
    try:
        write_avro(tmp_path / "p.avro", events[:300], schemas_mod.default())
        (tmp_path / "bad.jsonl").write_bytes(b"\n".join(bad_records(events)) + b"\n")
        store = make_store(sqlite_url)
        ingestor = Ingestor(store, Validator(schemas_mod.default()), batch_size=50)
        summary = ingestor.run(read_file(tmp_path / "p.avro", schemas_mod.default()))
        summary = ingestor.run(read_file(tmp_path / "bad.jsonl", schemas_mod.default()),
                               summary=summary)
        assert summary.rejected == 4
        log = get_logger("glasplade.test")
        p = m.persons[0]
        # Code must never do this; the guard masks numbers that look like CPR numbers.
        log.error("lookup failed", detail=f"no answer for {p.cpr} / {p.cpr[:6]}-{p.cpr[6:]}",
                  at=datetime.now(UTC))
        for d in store.dead_letters():
            log.warning("dead letter", source=d.source_system, reason=d.reason)
        store.close()
    finally:
        configure("json", "INFO")
    text = buf.getvalue()
    assert "lookup failed" in text and "dead letter" in text
    assert all(orjson.loads(line)["level"] for line in text.splitlines())  # JSON lines
    assert found(text.encode(), needles(m)) == []
