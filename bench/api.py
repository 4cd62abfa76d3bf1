"""Benchmark: the citizen overview over HTTP with 200,000 persons in the read model.

    .venv/bin/python bench/api.py                    # PostgreSQL, 200,000 persons
    .venv/bin/python bench/api.py --sqlite           # the embedded default
    .venv/bin/python bench/api.py --persons 20000    # a quick run
    .venv/bin/python bench/api.py --follow           # projections follow in the server process

The read-model tables of the citizen overview are filled directly (bulk inserts: persons in
households, relations, cases with caseworkers, grants), which is much faster than ingesting and
projecting a million events (bench/projections.py measures that path), then analysed (as a
rebuild of the projections ends). A real uvicorn server (``create_app`` from ``hub.bootstrap``)
runs in a child process on 127.0.0.1 at a free port; this process is the client (one
keep-alive connection, requests in sequence), logged in as a caseworker. Timed in the same run,
for random persons:

1. baseline: ``GET /healthz`` (the trivial endpoint: routing, middleware, JSON);
   the three requests are interleaved per person, so machine load weighs on all alike;
2. ``GET /api/v1/persons/{key}/overview`` (JSON);
3. ``GET /borger/{key}`` (the Danish dashboard page, the target: p99 <= 20 ms).

Each overview and page view does what production does: the read-model queries, the consent
state from the person's stream in the event store, the access decision per case, and the append
of a PersonRecordAccessed event (a write transaction) before answering. With ``--follow`` the
projection follower runs beside the server as ``glasplade serve`` runs it (a child process): it
wakes on the appends and projects the access events while the next requests are served.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

DATA_KEY = base64.b64encode(bytes(range(100, 132))).decode()
PSEUDONYM_KEY = base64.b64encode(bytes(range(140, 172))).decode()
UNITS = [("BUF-MYN-N", "BUF", "dubu"), ("BUF-MYN-S", "BUF", "dubu"), ("JC-KONT", "JOBCENTER",
         "fasit"), ("BSF-RAAD", "BSF", "fasit"), ("VOK-STOTTE", "VOKSEN", "cura")]
USERS = """
[[users]]
id = "bench"
name = "Bench Caseworker"
roles = ["caseworker"]
units = ["BUF-MYN-N"]
"""
CHUNK = 10_000


def env_for(url: str, users_file: Path) -> dict[str, str]:
    return {"GLASPLADE_STORE_URL": url, "GLASPLADE_DATA_KEY": DATA_KEY,
            "GLASPLADE_PSEUDONYM_KEY": PSEUDONYM_KEY, "API_USERS_FILE": str(users_file),
            "API_SESSION_SECRET": "bench-" * 8, "GLASPLADE_LOG_LEVEL": "WARNING",
            "GLASPLADE_LOG_FORMAT": "json"}


def populate(url: str, persons: int, seed: int) -> list[str]:
    """Fill the citizen-overview tables directly; returns the person keys."""
    from hub.bootstrap import bootstrap
    from hub.domain.cpr import synthetic_cpr
    from projections import citizen_tables as t
    from projections.registry import open_runner

    hub = bootstrap(configure_logging=False)
    runner = open_runner(hub)
    runner.prepare()  # every projection's tables and tracking rows (position 0: nothing to do)
    rng = random.Random(seed)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    keys: list[str] = []
    rows: dict[sa.Table, list[dict]] = {tb: [] for tb in (t.persons, t.relations, t.cases,
                                                         t.caseworkers, t.grants)}

    def flush(force: bool = False) -> None:
        with runner.engine.begin() as conn:
            for tb, rs in rows.items():
                if rs and (force or len(rs) >= CHUNK):
                    conn.execute(tb.insert(), rs)
                    rs.clear()

    n = 0
    household = 0
    seen: set[str] = set()
    while n < persons:
        household += 1
        address_id = f"addr-{household}"
        size = min(rng.choice((1, 1, 2, 2, 3, 4)), persons - n)
        members = []
        for i in range(size):
            born = date(1950, 1, 1) + timedelta(days=rng.randrange(25_000))
            if i > 0 and size > 2:
                born = date(2008, 1, 1) + timedelta(days=rng.randrange(6_000))
            cpr = synthetic_cpr(born, n)
            while cpr in seen:  # serials repeat every 4,000: move the birthday instead
                born += timedelta(days=1)
                cpr = synthetic_cpr(born, n)
            seen.add(cpr)
            key = hub.store.person_key(cpr)
            first, last = f"Person{n}", f"Efternavn{n % 5000}"
            rows[t.persons].append(t.new_row(
                t.persons, person_key=key, cpr=cpr, registered=True, first_name=first,
                last_name=last, name_search=f"{first} {last}".casefold(),
                last_name_search=f"{last} {first}".casefold(), birth_date=born, sex="K",
                street="Glasvej", house_number=str(household % 300), postcode="5000",
                city="Glasby", address_id=address_id, civil_status="U",
                protected_address=rng.random() < 0.01, emigrated=False, updated_at=now))
            members.append((key, cpr))
            keys.append(key)
            for c in range(rng.choice((0, 1, 1, 2, 3))):
                unit, dept, system = rng.choice(UNITS)
                case_key = f"{system}:B-{n}-{c}"
                rows[t.cases].append(t.new_row(
                    t.cases, case_key=case_key, person_key=key, source_system=system,
                    department=dept, unit_id=unit, unit_name=unit, case_type="bench",
                    title=f"Sag {c}", status="open", law="SEL", paragraph="85",
                    opened_at=now - timedelta(days=rng.randrange(2000)), last_event_at=now))
                rows[t.caseworkers].append(t.new_row(
                    t.caseworkers, assignment_key=f"{case_key}|cw|primary", case_key=case_key,
                    caseworker_id=f"{unit}-001", role="primary", name="Sagsbehandler",
                    unit_id=unit, contact="sb@glasby.dk", assigned_at=now))
                if rng.random() < 0.4:
                    rows[t.grants].append(t.new_row(
                        t.grants, grant_key=f"{system}:G-{n}-{c}", grant_id=f"G-{n}-{c}",
                        source_system=system, case_key=case_key, person_key=key,
                        kind="service", law="SEL", paragraph="85", title="Støtte",
                        granting_unit_id=unit, granting_unit_name=unit,
                        valid_from=date(2025, 1, 1), hours_per_week=3.0))
            n += 1
        adults = members[:1]
        for key, _ in members[1:]:
            for parent, _ in adults:
                rows[t.relations].append(t.new_row(
                    t.relations, relation_key=f"{parent}|child|{key}", person_key=parent,
                    relation="child", related_key=key, related_cpr=None, since=date(2010, 1, 1)))
        flush()
    flush(force=True)
    # As a rebuild does (ProjectionRunner.rebuild): without statistics the planner guesses and
    # joined the caseworkers of a person's cases by scanning all of them.
    runner.analyze()
    runner.engine.dispose()
    hub.close()
    return keys


def serve(env: dict[str, str], port: int, follow: bool = False) -> None:
    """The server process: the hub from configuration, the app, uvicorn; with ``follow`` also
    the projections following the store in a child process, as ``glasplade serve`` runs them."""
    os.environ.update(env)
    from hub.bootstrap import bootstrap
    from hub.cli.serve import run_server

    hub = bootstrap()
    try:
        run_server(hub, port=port, projections=follow)  # what `glasplade serve` runs
    finally:
        hub.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def timed(client: httpx.Client, paths: list[str]) -> list[float]:
    out = []
    for path in paths:
        t0 = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"GET {path} answered {r.status_code}: {r.text[:300]}")
    return out


def report(name: str, ms: list[float], base: list[float] | None = None) -> None:
    line = (f"  {name:<34} n={len(ms):>5}  p50 {statistics.median(ms):6.2f} ms  "
            f"p99 {pct(ms, 99):6.2f} ms  max {max(ms):7.2f} ms")
    if base:
        line += f"  p99 ratio to /healthz {pct(ms, 99) / pct(base, 99):5.1f}x"
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--persons", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sqlite", action="store_true", help="embedded SQLite instead of PostgreSQL")
    ap.add_argument("--follow", action="store_true",
                    help="projections follow the store inside the server process, as in\n"
                         "`glasplade serve` (each view's access event is projected there too)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="glasplade-bench-api-"))
    users = tmp / "users.toml"
    users.write_text(USERS)
    if args.sqlite:
        from contextlib import nullcontext
        db = nullcontext(f"sqlite:///{tmp / 'bench.db'}")
    else:
        from bench.common import pg_database
        db = pg_database("glasplade_bench_api")
    with db as url:
        env = env_for(url, users)
        os.environ.update(env)
        backend = "SQLite" if args.sqlite else "PostgreSQL"
        t0 = time.perf_counter()
        keys = populate(url, args.persons, args.seed)
        print(f"{backend}: {len(keys):,} persons in the read model "
              f"(filled in {time.perf_counter() - t0:.1f} s)", flush=True)
        port = free_port()
        server = multiprocessing.get_context("spawn").Process(target=serve,
                                                                   args=(env, port, args.follow))
        server.start()
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=10) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline or not server.is_alive():
                            raise SystemExit("the server did not start") from None
                        time.sleep(0.2)
                r = client.post("/api/v1/session", json={"user_id": "bench"})
                r.raise_for_status()
                rng = random.Random(args.seed)
                picks = [rng.choice(keys) for _ in range(args.requests)]
                warm = [f"/api/v1/persons/{k}/overview" for k in picks[:100]]
                timed(client, ["/healthz"] * 200 + warm + [f"/borger/{k}" for k in picks[:100]])
                # Interleaved (baseline, API, page per person) so that the load of the
                # machine at any moment weighs on all three alike.
                health, api, page = [], [], []
                for k, other in zip(picks, reversed(picks), strict=True):
                    health += timed(client, ["/healthz"])
                    api += timed(client, [f"/api/v1/persons/{k}/overview"])
                    page += timed(client, [f"/borger/{other}"])
            print(f"HTTP over 127.0.0.1, one keep-alive connection, {args.requests} requests "
                  f"each{', projections following in the server' if args.follow else ''}:")
            report("GET /healthz (baseline)", health)
            report("GET /api/v1/persons/{key}/overview", api, health)
            report("GET /borger/{key} (page)", page, health)
            verdict = "meets" if pct(page, 99) <= 20 else "MISSES"
            print(f"page p99 {pct(page, 99):.2f} ms {verdict} the target of 20 ms; every view "
                  f"appended a PersonRecordAccessed event ({2 * args.requests + 200:,} in all)")
        finally:
            # Ctrl-C, as an operator stops `glasplade serve`: uvicorn shuts down and the server
            # stops its projection follower before the database is dropped.
            os.kill(server.pid, signal.SIGINT)
            server.join(timeout=30)
            if server.is_alive():
                server.terminate()
                server.join(timeout=10)


if __name__ == "__main__":
    main()
