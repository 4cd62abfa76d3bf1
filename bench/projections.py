"""Benchmark: rebuild of all projections from >= 1,000,000 events, and overview query latency.

    .venv/bin/python bench/projections.py                  # 200,000 citizens, ~1.06 M events
    .venv/bin/python bench/projections.py --citizens 20000 # a quick run (~106,000 events)

The events come from the synthetic municipality (hub.synthetic) and are ingested into a
PostgreSQL database once (``glasplade_bench_proj_<citizens>_<seed>``; reused when present, in a
child process so this process's peak memory is the rebuild's). Then, in the same run:

1. baseline: a plain sequential read of every event (``store.iter_events``: decrypted and
   decoded), best of two passes;
2. rebuild of every registered projection from zero (``ProjectionRunner.rebuild``; its rows
   fetched by a child process, ``hub.store.prefetch``, unless ``--no-prefetch``);
   events/s, ratio to the baseline (target >= 0.5), peak RSS of this process and the child;
3. ``queries.citizen_overview`` for random persons (one connection): p50/p99 (target p99 <= 5 ms).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from hub.bootstrap import open_recorder  # noqa: E402
from hub.personal_data import PayloadCipher, Pseudonymizer  # noqa: E402
from hub.store.eventstore import EventStore  # noqa: E402

DATA_KEY = bytes(range(100, 132))
PSEUDONYM_KEY = bytes(range(140, 172))


def store_for(url: str) -> EventStore:
    return EventStore(open_recorder(url), Pseudonymizer(PSEUDONYM_KEY), PayloadCipher(DATA_KEY))


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ensure_database(admin: str, name: str) -> tuple[str, bool]:
    """The bench database's URL and whether it already holds a complete ingest."""
    base = admin.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (k text PRIMARY KEY, v text)")
        done = conn.execute("SELECT v FROM bench_meta WHERE k = 'ingested'").fetchone()
    return url, bool(done)


def ingest(url: str, citizens: int, seed: int, batch: int = 5000) -> None:
    """Generate the municipality and append its events (run in a child process)."""
    from hub.synthetic.generate import generate
    from hub.synthetic.to_events import municipality_events

    started = time.perf_counter()
    m = generate(citizens, seed)
    print(f"  generated {citizens:,} citizens in {time.perf_counter() - started:.1f} s",
          flush=True)
    store = store_for(url)
    pending, n, t0 = [], 0, time.perf_counter()
    for e in municipality_events(m):
        pending.append(e)
        if len(pending) >= batch:
            n += store.append(pending).stored
            pending = []
    n += store.append(pending).stored
    took = time.perf_counter() - t0
    print(f"  ingested {n:,} events in {took:.1f} s ({n / took:,.0f} events/s)", flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO bench_meta VALUES ('ingested', %s) ON CONFLICT (k) DO UPDATE"
                     " SET v = EXCLUDED.v", (str(n),))
    store.close()


def baseline(store: EventStore) -> tuple[int, float]:
    """A plain read of every event in ``iter_events``' own batches (5,000: faster than the
    rebuild's 20,000 for a plain read, 23.1-23.5 s against 24.9-26.0 s for a million events)."""
    t0 = time.perf_counter()
    n = 0
    for _ in store.iter_events():
        n += 1
    return n, time.perf_counter() - t0


def latency(engine: sa.Engine, samples: int, seed: int) -> tuple[int, list[float]]:
    from projections import citizen_tables as t
    from projections import queries as q

    with engine.connect() as conn:
        persons = conn.execute(sa.select(sa.func.count()).select_from(t.persons)).scalar() or 0
        keys = list(conn.execute(sa.select(t.persons.c.person_key)).scalars())
        rng = random.Random(seed)
        picks = [rng.choice(keys) for _ in range(samples)]
        for k in picks[:50]:  # warm the connection and statement caches
            q.citizen_overview(conn, k)
        times = []
        for k in picks:
            t0 = time.perf_counter()
            o = q.citizen_overview(conn, k)
            times.append((time.perf_counter() - t0) * 1000)
            assert o is not None
    return persons, times


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--citizens", type=int, default=200_000,
                    help="synthetic citizens (about 5.3 events each; default 200,000)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="admin URL of the PostgreSQL server")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="events per batch of the rebuild (default: the runner's, 20,000 on "
                    "PostgreSQL)")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--no-prefetch", action="store_true",
                    help="read every row in this process (no row prefetch process: "
                    "hub.store.prefetch), for comparison")
    ap.add_argument("--projections", default="",
                    help="comma-separated projection names to rebuild (default: all registered)")
    args = ap.parse_args()

    from hub.logging import configure
    configure("console", "WARNING")
    url, ready = ensure_database(args.pg, f"glasplade_bench_proj_{args.citizens}_{args.seed}")
    if not ready:
        print(f"ingesting the synthetic municipality into {url.rsplit('/', 1)[1]} (once)")
        child = multiprocessing.get_context("spawn").Process(
            target=ingest, args=(url, args.citizens, args.seed))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"ingest failed (exit {child.exitcode})")

    from projections.db import readmodel_engine
    from projections.registry import build_projections
    from projections.runner import ProjectionRunner

    store = store_for(url)
    engine = readmodel_engine(url)
    head = store.max_position()
    rss_start = maxrss_mb()
    projections = build_projections(store.person_key)
    if args.projections:
        wanted = args.projections.split(",")
        projections = [p for p in projections if p.name in wanted]
    runner = ProjectionRunner(store, engine, projections, batch_size=args.batch_size,
                              prefetch=not args.no_prefetch)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    n1, t1 = baseline(store)
    rss_before = maxrss_mb()
    t0 = time.perf_counter()
    runner.rebuild()
    rebuild_s = time.perf_counter() - t0
    rss_rebuild = maxrss_mb()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    n2, t2 = baseline(store)
    read_s = min(t1, t2)
    read_eps, rebuild_eps = n1 / read_s, head / rebuild_s
    persons, times = latency(engine, args.queries, args.seed)

    print(f"events in store:            {n1:,} (head position {head:,})")
    print(f"projections:                {', '.join(p.name for p in projections)}")
    print(f"plain read (baseline):      {read_s:7.1f} s  {read_eps:10,.0f} events/s "
          f"(passes {t1:.1f} s, {t2:.1f} s)")
    print(f"rebuild of all projections: {rebuild_s:7.1f} s  {rebuild_eps:10,.0f} events/s")
    print(f"ratio rebuild / read:       {rebuild_eps / read_eps:.2f}  (target >= 0.5)")
    print(f"peak RSS:                   {rss_start:.0f} MB at start, {rss_before:.0f} MB after "
          f"the read, {rss_rebuild:.0f} MB after the rebuild")
    if children > children_before:  # (else the ingest child's, or none)
        print(f"peak RSS, prefetch process: {children:.0f} MB")
    print(f"overview query, {persons:,} persons, {len(times)} queries: "
          f"p50 {pct(times, 50):.2f} ms, p99 {pct(times, 99):.2f} ms, "
          f"max {max(times):.2f} ms, mean {statistics.fmean(times):.2f} ms  (target p99 <= 5 ms)")
    engine.dispose()
    store.close()


if __name__ == "__main__":
    main()
