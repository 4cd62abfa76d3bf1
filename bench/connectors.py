"""Connector benchmark (issue 3): a full sweep of a synthetic municipality through every
fagsystem simulator, against appending the very same canonical events directly, same run.

path      ``glasplade demo``'s real path: every registered simulator started on 127.0.0.1
          (ephemeral ports, in this process, no faults) with ``start_simulators``; every
          connector built by the registry from the simulators' settings; one
          ``ConnectorRunner`` pass per connector, in registry order, into ONE fresh store (CPR
          enriches the persons the case systems stored before it). Timed per connector: login,
          paging, parsing, mapping, and the store's append (pseudonymise, seal, dedupe, commit).
baseline  ``EventStore.append`` of exactly the batches that connector handed to the store, in
          the same batch boundaries, into a fresh store of the same kind.
ratio     path events/s / baseline events/s (1.0 would mean reading the source costs nothing).

The simulators share the process (and the GIL) with the connectors, as in the demo; Kafka's
figure includes the consumer's final empty poll. Usage:
    python bench/connectors.py [--citizens 50000] [--seed 1] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Timer, make_store, pg_database  # noqa: E402
from connectors import registry  # noqa: E402
from connectors.http import RetryPolicy  # noqa: E402
from connectors.runner import ConnectorRunner  # noqa: E402
from hub.cli.connectors import start_simulators  # noqa: E402
from hub.config import Settings  # noqa: E402
from hub.synthetic.generate import generate  # noqa: E402
from hub.synthetic.stats import figures  # noqa: E402


class RecordingStore:
    """The event store, remembering every batch a connector appends (for the baseline)."""

    def __init__(self, store):
        self.store = store
        self.batches: list[list] = []

    def append(self, events, **kwargs):
        events = list(events)
        if events:
            self.batches.append(events)
        return self.store.append(events, **kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)


def direct(url: str, batches: list[list]) -> float:
    """Seconds to append ``batches`` into a fresh store at ``url``."""
    store = make_store(url)
    try:
        with Timer() as t:
            for batch in batches:
                store.append(batch)
    finally:
        store.close()
    return t.seconds


def sweep(citizens: int, seed: int, urls) -> None:
    with Timer() as g:
        m = generate(citizens, seed)
    f = figures(m)
    print(f"{citizens:,} citizens (seed {seed}): {f.households:,} households, {f.cases:,} cases "
          f"{dict(f.cases_per_system)}, {f.consents:,} consents; generated in {g.seconds:.1f} s")
    with Timer() as s:
        sims, failed = start_simulators(m)
    print(f"simulators started in {s.seconds:.1f} s: {', '.join(x.name for x in sims)}")
    for name, reason in failed.items():
        print(f"  {name}: NOT STARTED ({reason}); left out")
    store = make_store(next(urls))
    rows, total = [], [0, 0.0, 0.0]
    try:
        saved = dict(os.environ)
        for sim in sims:
            os.environ.update(sim.env())
        settings = Settings()
        for sim in sims:
            recording = RecordingStore(store)
            connector = registry.connector_factory(sim.name)(settings, store)
            runner = ConnectorRunner(recording, [connector],
                                     retry=RetryPolicy(attempts=3, initial=0.2, maximum=2.0))
            try:
                with Timer() as t:
                    r = runner.run_once().connectors[sim.name]
            finally:
                runner.close()
            events = sum(len(b) for b in recording.batches)
            base = direct(next(urls), recording.batches)
            rows.append((sim.name, r.stored, r.dead_letters, t.seconds, events, base, r.error))
            total[0] += r.stored
            total[1] += t.seconds
            total[2] += base
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for sim in sims:
            with contextlib.suppress(Exception):
                sim.stop()
        store.close()
    print(f"{'connector':9} {'events':>9} {'seconds':>8} {'events/s':>9} "
          f"{'direct/s':>9} {'ratio':>6}  notes")
    for name, stored, dead, secs, events, base, error in rows:
        path_rate, base_rate = stored / secs, (events / base if base else 0.0)
        ratio = path_rate / base_rate if base_rate else 0.0
        note = f"dead letters {dead}" if dead else ""
        note += f" ERROR {error[:80]}" if error else ""
        print(f"{name:9} {stored:>9,} {secs:>8.1f} {path_rate:>9,.0f} {base_rate:>9,.0f} "
              f"{ratio:>6.3f}  {note}")
    path_rate, base_rate = total[0] / total[1], total[0] / total[2]
    print(f"{'all':9} {total[0]:>9,} {total[1]:>8.1f} {path_rate:>9,.0f} {base_rate:>9,.0f} "
          f"{path_rate / base_rate:>6.3f}  (direct append of the same batches: "
          f"{total[2]:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--citizens", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--postgres", action="store_true",
                    help="PostgreSQL stores (GLASPLADE_BENCH_PG) instead of SQLite files")
    args = ap.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        def urls():
            n = 0
            while True:
                n += 1
                yield (stack.enter_context(pg_database()) if args.postgres
                       else f"sqlite:///{Path(d) / f'store-{n}.db'}")

        print(f"store: {'PostgreSQL' if args.postgres else 'SQLite'}")
        sweep(args.citizens, args.seed, urls())
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
