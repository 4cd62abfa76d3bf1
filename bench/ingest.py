"""Ingest benchmark (issue 2): the store's append path against raw bulk writes, same run.

The events are a synthetic municipality's (hub.synthetic). For PostgreSQL and SQLite, in fresh
databases:
  raw      COPY (PostgreSQL) / executemany in one transaction (SQLite) of rows of the same sizes
           and columns as the store's rows into a bare table (no indexes, no keys): the baseline.
  indexed  the same rows, already sealed and numbered, into the store's own events table (primary
           key, position and dedupe indexes), with each batch's person and stream pairs, in
           transactions of the append's batch size:
           what the indexes alone cost, with no sealing, dedupe or look-ups.
  append   EventStore.append of canonical events in batches: pseudonymise, seal (AES-GCM),
           dedupe against the store, assign stream versions and positions, insert, commit.
  again    appending the same events again (all duplicates, nothing stored).
  file     (SQLite) the whole `glasplade ingest` path from an Avro container file: decode,
           validate, append.
Each figure is the best of --repeat runs (the machine is shared), steps interleaved. Prints
events/s and each figure's ratio to raw.
Usage: python bench/ingest.py [--events N] [--only sqlite|postgres] [--repeat R]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import sqlite3
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from bench.common import Timer, make_store, pg_database, rate  # noqa: E402
from hub import schemas  # noqa: E402
from hub.ingest.formats import read_file, write_avro  # noqa: E402
from hub.ingest.pipeline import Ingestor  # noqa: E402
from hub.ingest.validate import Validator  # noqa: E402
from hub.logging import configure  # noqa: E402
from hub.store.sqlite import WRITER_PRAGMAS  # noqa: E402
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
    """The store's rows for ``events`` (sealed state, keys), numbered in their streams."""
    version: dict = {}
    out = []
    for r in store.to_rows(events):
        v = version[r.originator_id] = version.get(r.originator_id, 0) + 1
        out.append((r.originator_id, v, r.topic, r.state, r.source_system, r.source_key,
                    r.person_key, r.case_key, r.occurred_at, r.occurred_at))
    return out


PG_TYPES = ["uuid", "int8", "text", "bytea", "text", "bytea", "text", "text", "timestamptz",
            "timestamptz"]


def person_pairs(rows) -> list[tuple]:
    """The rows' distinct (person, stream) pairs: what the store adds to its stream persons
    table with a batch."""
    return list(dict.fromkeys((r[6], r[0]) for r in rows if r[6] is not None))


def copy_pg(url: str, table: str, rows, batch: int, pairs: bool = False) -> float:
    """Binary COPY of ``rows`` into ``table``, one transaction per ``batch`` rows (and, with
    ``pairs``, each batch's person and stream pairs, as the store writes them)."""
    with psycopg.connect(url) as conn, Timer() as t:
        for i in range(0, len(rows), batch):
            with conn.cursor() as cur, cur.copy(
                    f"COPY {table} ({', '.join(COLS)}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(PG_TYPES)
                for r in rows[i:i + batch]:
                    cp.write_row(r)
            if pairs:
                found = person_pairs(rows[i:i + batch])
                conn.execute("INSERT INTO glasplade_stream_persons (person_key, originator_id)"
                             " SELECT * FROM unnest(%b::text[], %b::uuid[])"
                             " ON CONFLICT DO NOTHING",
                             ([p for p, _ in found], [o for _, o in found]))
            conn.commit()
    return t.seconds


def raw_pg(url: str, rows) -> float:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE bare (originator_id uuid, originator_version bigint, topic text,"
                     " state bytea, source_system text, source_key bytea, person_key text,"
                     " case_key text, occurred_at timestamptz, recorded_at timestamptz)")
        conn.commit()
    return copy_pg(url, "bare", rows, len(rows))


def indexed_pg(url: str, rows, batch: int) -> float:
    make_store(url).close()  # the store's events table, with its keys and indexes
    return copy_pg(url, "glasplade_events", rows, batch, pairs=True)


def executemany_sqlite(path: str, table: str, rows, batch: int, pairs: bool = False) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for pragma in WRITER_PRAGMAS:  # the store's writer settings
        conn.execute(pragma)
    params = [(r[0].hex, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8].isoformat(),
               r[9].isoformat()) for r in rows]
    with Timer() as t:
        for i in range(0, len(params), batch):
            conn.execute("BEGIN")
            conn.executemany(f"INSERT INTO {table} ({', '.join(COLS)})"
                             " VALUES (?,?,?,?,?,?,?,?,?,?)", params[i:i + batch])
            if pairs:
                conn.executemany("INSERT OR IGNORE INTO glasplade_stream_persons (person_key,"
                                 " originator_id) VALUES (?, ?)",
                                 [(p, o.hex) for p, o in person_pairs(rows[i:i + batch])])
            conn.execute("COMMIT")
    conn.close()
    return t.seconds


def raw_sqlite(path: str, rows) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE bare (originator_id TEXT, originator_version INTEGER, topic TEXT,"
                 " state BLOB, source_system TEXT, source_key BLOB, person_key TEXT,"
                 " case_key TEXT, occurred_at TEXT, recorded_at TEXT)")
    conn.close()
    return executemany_sqlite(path, "bare", rows, len(rows))


def indexed_sqlite(path: str, rows, batch: int) -> float:
    make_store(f"sqlite:///{path}").close()
    return executemany_sqlite(path, "glasplade_events", rows, batch, pairs=True)


def append_all(store, events, batch: int) -> float:
    with Timer() as t:
        for i in range(0, len(events), batch):
            store.append(events[i:i + batch])
    return t.seconds


class Backend:
    """Fresh databases of one kind, one per measurement."""

    def __init__(self, name: str, tmp: Path):
        self.name = name
        self.tmp = tmp
        self.made = 0

    @contextmanager
    def database(self):
        """A fresh database: its store URL and its plain address (URL or file path)."""
        if self.name == "postgresql":
            with pg_database() as url:
                yield url, url
        else:
            self.made += 1
            path = self.tmp / f"db{self.made}.sqlite"
            try:
                yield f"sqlite:///{path}", str(path)
            finally:  # a measurement's file is not needed after it (hundreds of MB each)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)


def measure(backend: Backend, events, rows, avro_path: Path, batch: int, repeat: int) -> None:
    """Each figure the best of ``repeat`` runs, in fresh databases, the steps interleaved so the
    machine's load weighs on all alike."""
    n = len(events)
    pg = backend.name == "postgresql"
    best: dict[str, float] = {}

    def keep(step: str, seconds: float) -> None:
        best[step] = min(seconds, best.get(step, seconds))

    for _ in range(repeat):
        with backend.database() as (_, plain):
            keep("raw", raw_pg(plain, rows) if pg else raw_sqlite(plain, rows))
        with backend.database() as (_, plain):
            keep("indexed", indexed_pg(plain, rows, batch) if pg
                 else indexed_sqlite(plain, rows, batch))
        with backend.database() as (url, _):
            store = make_store(url)
            keep("append", append_all(store, events, batch))
            assert store.max_position() >= n, "not all events were stored"
            keep("again", append_all(store, events, batch))
            store.close()
        if not pg:
            with backend.database() as (url, _):
                store = make_store(url)
                ing = Ingestor(store, Validator(schemas.default()), batch)
                with Timer() as t:
                    s = ing.run(read_file(avro_path, schemas.default()))
                assert s.stored == n, s.as_dict()
                keep("file", t.seconds)
                store.close()
    raw = best["raw"]
    print(f"\n{backend.name}: {n:,} events, batch {batch}, best of {repeat}")
    lines = [("raw", "raw bulk write", ""),
             ("indexed", "same rows, store's table",
              "   (keys and indexes, batches of the same size; no sealing or dedupe)"),
             ("append", "store append", ""),
             ("again", "append again", "   (all duplicates)"),
             ("file", "file ingest", "   (Avro decode + validate + append)")]
    for step, label, note in lines:
        if step in best:
            sec = best[step]
            print(f"  {label:25s} {sec:7.2f} s {rate(n, sec)}   ratio {raw / sec:.2f}{note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--only", choices=["sqlite", "postgres"])
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept")
    args = ap.parse_args()
    configure("console", "WARNING")
    with Timer() as t:
        events = synthetic_events(args.events, seed=1)
    print(f"generated {len(events):,} canonical events in {t.seconds:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        avro_path = Path(tmp) / "events.avro"
        write_avro(avro_path, events, schemas.default())
        with Timer() as t:
            sealer = make_store(f"sqlite:///{tmp}/rows.db")
            try:
                rows = raw_rows(sealer, events)
            finally:
                sealer.close()
        print(f"sealed them as the store's rows in {t.seconds:.1f} s (for the baselines)")
        # The inputs (events and rows, millions of objects) stay in memory for every step. A
        # process that ingests holds one batch at a time; here the collector would walk all of
        # the inputs whenever it runs after a batch, so they are moved out of its sight.
        gc.collect()
        gc.freeze()
        for name in ("postgresql", "sqlite"):
            if args.only in (None, name.removesuffix("ql")):
                measure(Backend(name, Path(tmp)), events, rows, avro_path, args.batch,
                        args.repeat)


if __name__ == "__main__":
    main()
