"""Benchmark: the nightly overlap run over a large municipality on PostgreSQL.

    .venv/bin/python bench/nightly.py                    # 500,000 citizens, 1,500,000 cases
    .venv/bin/python bench/nightly.py --citizens 50000   # quick run

Fact tables are bulk-loaded with COPY into a fresh database (the projection's tables; the event
store lives in the same database). Then, in the same run:
1. rule evaluation alone vs a plain PostgreSQL join computing the same overlap (BUF x BSF per
   household and per family; persons active in >= 2 departments), best of 3 each, both under
   the session settings the nightly run evaluates with (``hub.targets.compile.tune``). The
   family join is like for like: the person's own cases and relations followed both ways (as
   the rule does), with the rule's relation types;
2. the first (cold) run: every match is new and recorded as an event;
3. a nightly run after ~1 % of the cases changed status (the steady state): evaluate every rule,
   diff with the previous run, record match events, catch the projection up, write the report;
4. a repeat run with no changes (records nothing).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.bootstrap import open_recorder  # noqa: E402
from hub.domain.rules import Rule, RuleSet  # noqa: E402
from hub.personal_data import PayloadCipher, Pseudonymizer  # noqa: E402
from hub.store.eventstore import EventStore  # noqa: E402
from hub.targets.compile import run_rule, run_rules, tune  # noqa: E402
from hub.targets.loader import load_rules  # noqa: E402
from hub.targets.nightly import run_overlap  # noqa: E402
from projections.db import readmodel_engine  # noqa: E402
from projections.target_groups import TargetGroupsProjection  # noqa: E402

AS_OF = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
ADULT_DEPTS = (("BSF", 0.10), ("JOBCENTER", 0.35), ("VOKSEN", 0.55))
UNITS = {"BUF": ("BUF-MYN-N", "BUF-MYN-S", "BUF-UNGE"), "BSF": ("BSF-MISBRUG", "BSF-RAAD"),
         "JOBCENTER": ("JC-KONT", "JC-SYG", "JC-RF"), "VOKSEN": ("VOK-STOTTE", "VOK-VISIT")}


def generate(citizens: int, cases: int, rng: random.Random):
    persons, relations = [], []
    n = 0
    while n < citizens:
        hh = f"h{len(persons)}"
        kind = rng.random()
        adults = 1 if kind < 0.45 else 2
        children = 0 if kind < 0.40 or 0.45 <= kind < 0.75 else rng.choice((1, 1, 2, 2, 3))
        members = []
        for _ in range(adults):
            members.append((f"p{n}", date(1940, 1, 1) + timedelta(days=rng.randrange(24000)),
                            hh, False))
            n += 1
        for _ in range(children):
            members.append((f"p{n}", date(2008, 12, 1) + timedelta(days=rng.randrange(6500)),
                            hh, True))
            n += 1
        persons.extend(members)
        for c in (m for m in members if m[3]):
            for a in (m for m in members if not m[3]):
                relations.append((c[0], a[0], "parent"))
                relations.append((a[0], c[0], "child"))
    persons = persons[:citizens]
    keep = {p[0] for p in persons}
    relations = [r for r in relations if r[0] in keep and r[1] in keep]
    case_rows, grant_rows = [], []
    for i in range(cases):
        p = persons[int(rng.random() ** 2 * len(persons))]
        if p[3]:
            dept = "BUF"
        else:
            x, dept = rng.random(), "VOKSEN"
            for d, share in ADULT_DEPTS:
                if x < share:
                    dept = d
                    break
                x -= share
        active = rng.random() < 0.35
        key = f"c{i}"
        case_rows.append((key, p[0], dept, rng.choice(UNITS[dept]), active,
                          "open" if active else "closed"))
        if active and rng.random() < 0.25:
            if dept in ("VOKSEN", "BSF") or (dept == "BUF" and rng.random() < 0.1):
                law, par, kind = "SEL", "85", "service"
            else:
                law, par, kind = "LAS", "11", "benefit"
            start = AS_OF.date() - timedelta(days=rng.randrange(12 * 365))
            grant_rows.append((f"g{i}", key, p[0], law, par, kind,
                               rng.choice(("VOK-STOTTE", "BUF-UNGE", "BSF-RAAD"))
                               if par == "85" else "JC-KONT", start))
    consents = [(f"s{i}", persons[rng.randrange(len(persons))][0], "coordinated_pathway",
                 AS_OF.date() - timedelta(days=rng.randrange(700)))
                for i in range(citizens // 10)]
    meetings = [(f"m{i}", persons[rng.randrange(len(persons))][0],
                 rng.choice(("ungemoede-16", "ungemoede-17.5", "overgangsmoede-16.5")),
                 AS_OF.date() - timedelta(days=rng.randrange(700)))
                for i in range(citizens // 20)]
    return {
        "tg_persons (person_key, birth_date, household_key)": [p[:3] for p in persons],
        "tg_relations (person_key, related_key, relation)": relations,
        "tg_cases (case_key, person_key, department, unit_id, active, status)": case_rows,
        "tg_grants (grant_id, case_key, person_key, law, paragraph, kind, granting_unit_id, "
        "valid_from)": grant_rows,
        "tg_consents (consent_id, person_key, purpose, valid_from)": consents,
        "tg_meetings (meeting_id, person_key, meeting_type, held_on)": meetings,
    }


def copy_in(dsn: str, data: dict) -> float:
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for target, rows in data.items():
            with cur.copy(f"COPY {target} FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
        cur.execute("ANALYZE")
    return time.perf_counter() - t0


BASELINES = {
    "household_departments": """
        SELECT p.household_key FROM tg_persons p JOIN tg_cases c ON c.person_key = p.person_key
        WHERE c.active AND c.department IN ('BUF', 'BSF') AND p.household_key IS NOT NULL
        GROUP BY p.household_key HAVING count(DISTINCT c.department) = 2""",
    # BUF people with a BSF case of their own or at a relative, whichever side registered the
    # relation (the rule's semantics; one-directional it would miss families).
    "family_departments": """
        SELECT a.person_key FROM tg_cases a
        JOIN tg_cases b ON b.person_key = a.person_key AND b.active AND b.department = 'BSF'
        WHERE a.active AND a.department = 'BUF'
        UNION
        SELECT a.person_key FROM tg_cases a
        JOIN (SELECT person_key, related_key FROM tg_relations WHERE relation IN ({relations})
              UNION ALL
              SELECT related_key, person_key FROM tg_relations WHERE relation IN ({relations})
              ) r ON r.person_key = a.person_key
        JOIN tg_cases b ON b.person_key = r.related_key AND b.active AND b.department = 'BSF'
        WHERE a.active AND a.department = 'BUF'""",
    "multi_department": """
        SELECT person_key FROM tg_cases WHERE active
        GROUP BY person_key HAVING count(DISTINCT department) >= 2""",
}
BASELINE_RULE = {"household_departments": "odense-buf-bsf-household",
                 "family_departments": "odense-buf-bsf-family",
                 "multi_department": "frederikssund-flere-myndighedsomraader"}


def baseline_sql(kind: str, rule: Rule) -> str:
    return BASELINES[kind].format(relations=", ".join(f"'{x}'" for x in rule.relations))


def best_of(fn, n: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--citizens", type=int, default=500_000)
    ap.add_argument("--cases", type=int, default=None, help="default: 3 per citizen")
    ap.add_argument("--admin-url", default=os.environ.get(
        "GLASPLADE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--keep", action="store_true", help="keep the database")
    args = ap.parse_args()
    cases = args.cases or 3 * args.citizens
    dbname = f"glasplade_bench_{secrets.token_hex(4)}"
    base = args.admin_url.rsplit("/", 1)[0]
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    url = f"{base}/{dbname}"
    try:
        bench(url, args.citizens, cases)
    finally:
        if not args.keep:
            with psycopg.connect(args.admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')


def bench(url: str, citizens: int, cases: int) -> None:
    rng = random.Random(20261129)
    store = EventStore(open_recorder(url), Pseudonymizer(secrets.token_bytes(32)),
                       PayloadCipher(secrets.token_bytes(32)))
    engine = readmodel_engine(url)
    projection = TargetGroupsProjection(store.person_key)
    projection.metadata.create_all(engine)
    sets = [load_rules(m) for m in ("odense", "frederikssund", "esbjerg", "ballerup")]
    rules = RuleSet("bench", "1", tuple(r for s in sets for r in s.rules))

    t0 = time.perf_counter()
    data = generate(citizens, cases, rng)
    print(f"generated {citizens:,} citizens, {cases:,} cases, "
          f"{len(next(v for k, v in data.items() if k.startswith('tg_grants'))):,} grants, "
          f"{len(next(v for k, v in data.items() if k.startswith('tg_relations'))):,} relations "
          f"in {time.perf_counter() - t0:.1f} s")
    print(f"COPY into PostgreSQL + ANALYZE: {copy_in(url, data):.1f} s")

    print("\n-- rule evaluation vs a plain PostgreSQL join (best of 3, same run) --")
    with engine.connect() as conn:
        tune(conn)  # the same session settings for the joins as for the rules
        for kind in BASELINES:
            rule = rules.rule(BASELINE_RULE[kind])
            sql = baseline_sql(kind, rule)
            t_base, rows = best_of(lambda sql=sql: conn.exec_driver_sql(sql).fetchall())
            t_rule, matches = best_of(lambda rule=rule: run_rule(conn, rule, projection.facts,
                                                                  AS_OF.date()))
            groups = {m.group_key for m in matches}
            print(f"{kind:24s} plain join {t_base:6.3f} s ({len(rows):,} rows)   rule "
                  f"{t_rule:6.3f} s ({len(matches):,} matches, {len(groups):,} groups, with "
                  f"evidence)   ratio {t_rule / t_base:4.2f}x")
        t_all, _ = best_of(lambda: run_rules(conn, rules.rules, projection.facts, AS_OF.date()), 1)
    print(f"all {len(rules.rules)} rules evaluated together: {t_all:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp)
        t0 = time.perf_counter()
        first = run_overlap(store, engine, rules, AS_OF, projection, report)
        t_first = time.perf_counter() - t0
        print(f"\n-- first (cold) run: {t_first:.1f} s: {len(first.current):,} matches, all new; "
              f"{first.events_stored:,} events recorded; identity overlaps "
              f"{len(first.overlaps):,}")
        print("   " + ", ".join(f"{k} {v:.2f}" for k, v in first.timings.items()
                                if not k.startswith("rule:")))

        changed = mutate(url, rng, max(1, cases // 100))
        t0 = time.perf_counter()
        night = run_overlap(store, engine, rules, AS_OF + timedelta(days=1), projection, report)
        t_night = time.perf_counter() - t0
        print(f"\n-- nightly run after {changed:,} case status changes: {t_night:.2f} s "
              f"(target <= 10 s): {len(night.current):,} matches, {len(night.started):,} new, "
              f"{len(night.ended):,} ended, {night.events_stored:,} events recorded, report "
              f"{sum(p.stat().st_size for p in night.report_files) / 1e6:.1f} MB")
        print("   " + ", ".join(f"{k} {v:.2f}" for k, v in night.timings.items()
                                if not k.startswith("rule:")))
        t0 = time.perf_counter()
        again = run_overlap(store, engine, rules, AS_OF + timedelta(days=1), projection, report)
        print(f"\n-- repeat run, no changes: {time.perf_counter() - t0:.2f} s, "
              f"{again.events_stored} events recorded")
    per_rule = {k[5:]: v for k, v in night.timings.items() if k.startswith("rule:")}
    print("\nper rule query (nightly run; rules differing only in consent share one): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in per_rule.items()))
    print(f"median query {statistics.median(per_rule.values()):.2f} s")
    engine.dispose()
    store.close()


def mutate(url: str, rng: random.Random, n: int) -> int:
    """Flip the status of ``n`` random cases (closes some, opens others): a day's changes."""
    dsn = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as conn:
        total = conn.execute("SELECT count(*) FROM tg_cases").fetchone()[0]
        keys = [f"c{rng.randrange(total)}" for _ in range(n)]
        conn.execute("UPDATE tg_cases SET active = NOT active WHERE case_key = ANY(%s)", (keys,))
    return n


if __name__ == "__main__":
    main()
