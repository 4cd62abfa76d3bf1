"""Ingest benchmark (issue 2): the store's append path against raw bulk writes, same run.

The events are a synthetic municipality's (hub.synthetic). For PostgreSQL and SQLite, in fresh
databases:
  raw      COPY (PostgreSQL) / executemany in one transaction (SQLite) of rows of the same sizes
           and columns as the store's rows into a bare table (no indexes, no keys): the ceiling.
  append   EventStore.append of canonical events in batches: pseudonymise, seal (AES-GCM),
           dedupe against the store, assign stream versions and positions, insert, commit.
  file     the whole `glasplade ingest` path from an Avro container file: decode, validate,
           append (reported for completeness; decoding and validation are per-record Python work).
  again    appending the same events again (all duplicates, nothing stored).
Prints events/s and each figure's ratio to raw. Usage: python bench/ingest.py [--events N]
"""

from __future__ import annotations

import argparse
import itertools
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from bench.common import Timer, make_store, pg_database, rate  # noqa: E402
from hub import schemas  # noqa: E402
from hub.ingest.formats import read_file, write_avro  # noqa: E402
from hub.ingest.pipeline import Ingestor  # noqa: E402
from hub.ingest.validate import Validator  # noqa: E402
from hub.logging import configure  # noqa: E402
from hub.synthetic.generate import generate  # noqa: E402
from hub.synthetic.to_events import municipality_events  # noqa: E402

COLS = ("originator_id", "originator_version", "topic", "state", "source_system", "source_key",
        "person_key", "case_key", "occurred_at", "recorded_at")


def synthetic_events(n: int, seed: int):
    """The first ``n`` canonical events of a synthetic municipality just large enough (about
    five events per citizen), so the benchmark ingests what the demo and the connectors do."""
    citizens = n // 4 + 100
    events = list(itertools.islice(municipality_events(generate(citizens, seed)), n))
    if len(events) < n:
        raise SystemExit(f"only {len(events)} events from {citizens} citizens")
    return events


def raw_rows(store, events):
    rows = store.to_rows(events)
    return [(r.originator_id, i, r.topic, r.state, r.source_system, r.source_key, r.person_key,
             r.case_key, r.occurred_at, r.occurred_at) for i, r in enumerate(rows)]


def raw_pg(url: str, rows) -> float:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE bare (originator_id uuid, originator_version bigint, topic text,"
                     " state bytea, source_system text, source_key bytea, person_key text,"
                     " case_key text, occurred_at timestamptz, recorded_at timestamptz)")
        conn.commit()
        with Timer() as t:
            with conn.cursor() as cur, cur.copy(
                    f"COPY bare ({', '.join(COLS)}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["uuid", "int8", "text", "bytea", "text", "bytea", "text", "text",
                              "timestamptz", "timestamptz"])
                for r in rows:
                    cp.write_row(r)
            conn.commit()
    return t.seconds


def raw_sqlite(path: str, rows) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE bare (originator_id TEXT, originator_version INTEGER, topic TEXT,"
                 " state BLOB, source_system TEXT, source_key BLOB, person_key TEXT,"
                 " case_key TEXT, occurred_at TEXT, recorded_at TEXT)")
    params = [(r[0].hex, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8].isoformat(),
               r[9].isoformat()) for r in rows]
    with Timer() as t:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO bare VALUES (?,?,?,?,?,?,?,?,?,?)", params)
        conn.execute("COMMIT")
    conn.close()
    return t.seconds


def append_all(store, events, batch: int) -> float:
    with Timer() as t:
        for i in range(0, len(events), batch):
            store.append(events[i:i + batch])
    return t.seconds


def run_backend(name: str, url: str, raw_url_or_path: str, events, avro_path: Path, batch: int,
                raw_fn) -> None:
    n = len(events)
    store = make_store(url)
    rows = raw_rows(store, events)
    raw_s = raw_fn(raw_url_or_path, rows)
    del rows
    append_s = append_all(store, events, batch)
    assert store.max_position() >= n, "not all events were stored"
    again_s = append_all(store, events, batch)
    store.close()
    store2 = make_store(url.replace("bench", "bench_file") if name == "sqlite" else url)
    file_s = None
    if name == "sqlite":
        ing = Ingestor(store2, Validator(schemas.default()), batch)
        with Timer() as t:
            s = ing.run(read_file(avro_path, schemas.default()))
        file_s = t.seconds
        assert s.stored == n, s.as_dict()
    store2.close()
    print(f"\n{name}: {n:,} events, batch {batch}")
    print(f"  raw bulk write  {raw_s:7.2f} s {rate(n, raw_s)}   ratio 1.00")
    print(f"  store append    {append_s:7.2f} s {rate(n, append_s)}   ratio {raw_s / append_s:.2f}")
    print(f"  append again    {again_s:7.2f} s {rate(n, again_s)}   ratio {raw_s / again_s:.2f}"
          "   (all duplicates)")
    if file_s is not None:
        print(f"  file ingest     {file_s:7.2f} s {rate(n, file_s)}   ratio {raw_s / file_s:.2f}"
              "   (Avro decode + validate + append)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--only", choices=["sqlite", "postgres"])
    args = ap.parse_args()
    configure("console", "WARNING")
    with Timer() as t:
        events = synthetic_events(args.events, seed=1)
    print(f"generated {len(events):,} canonical events in {t.seconds:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        avro_path = Path(tmp) / "events.avro"
        write_avro(avro_path, events, schemas.default())
        if args.only in (None, "postgres"):
            with pg_database() as url, pg_database("glasplade_bench_raw") as raw_url:
                run_backend("postgresql", url, raw_url, events, avro_path, args.batch, raw_pg)
        if args.only in (None, "sqlite"):
            run_backend("sqlite", f"sqlite:///{tmp}/bench.db", f"{tmp}/raw.db", events, avro_path,
                        args.batch, raw_sqlite)


if __name__ == "__main__":
    main()
