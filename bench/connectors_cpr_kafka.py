"""CPR and Kafka connector benchmark: the real path over sockets against direct ingest, same run.

CPR    a generated municipality's case persons (seeded as CaseOpened events) looked up through
       the SOAP simulator (zeep client, lxml server) by the runner: lookups/s and events/s; then
       a refresh sweep of unchanged persons (lookups, zero events).
Kafka  canonical events published to a local Tansu broker (OutboxPublisher), then consumed by
       the runner from 3 assigned partitions: events/s.
Both   baseline: EventStore.append of the very same canonical events in the same batch sizes
       into a fresh store of the same kind, timed in the same run; the ratio is path / baseline.
SQLite stores in a temporary directory. Usage: python bench/connectors_cpr_kafka.py
    [--citizens N] [--events N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Timer, make_store, rate  # noqa: E402
from connectors.cpr.client import CprClient, InvocationContext  # noqa: E402
from connectors.cpr.connector import CprConnector  # noqa: E402
from connectors.cpr.simulator import app as cprsim  # noqa: E402
from connectors.http import RetryPolicy  # noqa: E402
from connectors.kafka.broker import Broker  # noqa: E402
from connectors.kafka.config import KafkaConfig  # noqa: E402
from connectors.kafka.connector import KafkaConnector  # noqa: E402
from connectors.kafka.producer import OutboxPublisher  # noqa: E402
from connectors.runner import ConnectorRunner  # noqa: E402
from hub.domain import events as ev  # noqa: E402
from hub.synthetic.generate import generate  # noqa: E402
from hub.synthetic.to_events import municipality_events  # noqa: E402

FAST = RetryPolicy(attempts=2, initial=0.01, maximum=0.05, jitter=0.0)


def baseline(tmp: Path, events: list[ev.CanonicalEvent], batch: int) -> float:
    store = make_store(f"sqlite:///{tmp / f'base-{uuid.uuid4().hex[:6]}.db'}")
    with Timer() as t:
        for i in range(0, len(events), batch):
            store.append(events[i:i + batch])
    store.close()
    return t.seconds


def bench_cpr(tmp: Path, citizens: int) -> None:
    m = generate(citizens, seed=1)
    store = make_store(f"sqlite:///{tmp / 'cpr.db'}")
    seeds = [ev.CanonicalEvent(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, c.case_key), source_system=c.system,
        source_record_id=f"{c.case_id}/opened", source_version="1", occurred_at=c.opened_at,
        payload=ev.CaseOpened(c.department, c.unit_id, "Enhed", c.case_type, "open"),
        person=c.person, case_key=c.case_key) for c in m.cases]
    store.append(seeds)
    sim = cprsim.simulator(m)
    sim.start()
    try:
        client = CprClient(sim.url, InvocationContext(cprsim.DEFAULT_AGREEMENT, "s", "u", "v"),
                           timeout=10, retry=FAST)
        now = [m.as_of]
        conn = CprConnector(client, store, batch_size=100, refresh_hours=1,
                            now=lambda: now[0])
        runner = ConnectorRunner(store, [conn], retry=FAST)
        with Timer() as t:
            report = runner.run_once().connectors["cpr"]
        lookups = client.requests
        stored = [e for e in store.iter_events() if e.source_system == "cpr"]
        now[0] += timedelta(hours=2)
        before = client.requests
        with Timer() as r:
            again = runner.run_once().connectors["cpr"]
        refreshed = client.requests - before
    finally:
        sim.stop()
    base = baseline(tmp, [e.__class__(**{**{f: getattr(e, f) for f in e.__dataclass_fields__},
                                         "position": None, "recorded_at": None})
                          for e in stored], 100)
    print(f"CPR ({citizens:,} citizens, {len(m.cases):,} cases, error={report.error})")
    print(f"  lookup pass   {lookups:>7,} lookups {rate(lookups, t.seconds)}  "
          f"{report.stored:>7,} events {rate(report.stored, t.seconds)}  {t.seconds:6.2f}s")
    print(f"  refresh       {refreshed:>7,} lookups {rate(refreshed, r.seconds)}  "
          f"{again.stored:>7,} events (unchanged persons)          {r.seconds:6.2f}s")
    print(f"  direct append {len(stored):>7,} events {rate(len(stored), base)}  {base:6.2f}s")
    print(f"  ratio lookup pass / direct append: {t.seconds / base:,.1f}x slower")
    store.close()


def bench_kafka(tmp: Path, n: int) -> None:
    m = generate(max(200, n // 20), seed=2)
    events = list(municipality_events(m))[:n]
    broker = Broker(tmp)
    broker.start()
    try:
        broker.create_topic("bench", 3)
        cfg = KafkaConfig(bootstrap_servers=broker.bootstrap, topic="bench", max_records=500,
                          poll_timeout_ms=500)
        store = make_store(f"sqlite:///{tmp / 'kafka.db'}")
        pub = OutboxPublisher(cfg, pseudonymize=store.person_key, include_person=True)
        with Timer() as p:
            pub.publish(events)
        pub.close()
        runner = ConnectorRunner(store, [KafkaConnector(cfg)], retry=FAST)
        with Timer() as t:
            report = runner.run_once().connectors["kafka"]
        store.close()
    finally:
        broker.stop()
    base = baseline(tmp, events, 500)
    print(f"Kafka ({len(events):,} events, 3 partitions, error={report.error})")
    print(f"  publish       {len(events):>7,} events {rate(len(events), p.seconds)}  "
          f"{p.seconds:6.2f}s")
    print(f"  consume+store {report.stored:>7,} events {rate(report.stored, t.seconds)}  "
          f"{t.seconds:6.2f}s")
    print(f"  direct append {len(events):>7,} events {rate(len(events), base)}  {base:6.2f}s")
    print(f"  ratio consume+store / direct append: {t.seconds / base:,.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--citizens", type=int, default=2000)
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        bench_cpr(Path(d), args.citizens)
        bench_kafka(Path(d), args.events)


if __name__ == "__main__":
    main()
