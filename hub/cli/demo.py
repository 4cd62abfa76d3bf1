"""``glasplade demo``: a synthetic municipality through the real path, or straight into the store.

Default (the real path, what ``make demo`` runs): generate the municipality, serve it through
every registered fagsystem simulator on 127.0.0.1 (ephemeral ports), point the connectors at
them (environment of this process only, the simulators' demo credentials), run one pass of every
connector with the ``ConnectorRunner`` and print what each system stored.

``--direct``: write the municipality's canonical events to an Avro file and ingest that file
(no simulators, no connectors). ``--serve``: afterwards run the projections and serve the
dashboard. Both paths are idempotent: a rerun stores 0 new events.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

import typer
from tqdm import tqdm

from hub.bootstrap import Hub
from hub.cli.common import build_hub, print_json, print_table
from hub.config import ConfigError
from hub.ingest.formats import read_file, write_avro
from hub.ingest.pipeline import Ingestor, IngestSummary
from hub.ingest.validate import Validator
from hub.synthetic.cases import TZ
from hub.synthetic.generate import DEFAULT_AS_OF, generate
from hub.synthetic.model import Municipality
from hub.synthetic.stats import figures
from hub.synthetic.to_events import municipality_events

DEFAULT_CITIZENS = 2000
"""The whole real-path demo takes ~20-25 s at this size on a 2-core machine (docs/demo.md)."""

def demo(
    citizens: int = typer.Option(DEFAULT_CITIZENS, "--citizens", min=1,
                                 help="Inhabitants to generate"),
    seed: int = typer.Option(7, "--seed", help="Same seed, same municipality, same events"),
    store: str = typer.Option(None, "--store", envvar="GLASPLADE_STORE_URL",
                              help="sqlite:///path.db or postgresql://user@host:port/db"),
    direct: bool = typer.Option(False, "--direct",
                                help="Skip simulators and connectors: write the canonical "
                                     "events to an Avro file and ingest it"),
    out: Path = typer.Option(Path("demo-data"), "--out",
                             help="With --direct: folder for the Avro file"),
    as_of: datetime = typer.Option(
        None, "--as-of", help=f"The municipality's 'now' (default {DEFAULT_AS_OF:%Y-%m-%d}); "
        "fixed by default so that a rerun stores nothing new"),
    serve: bool = typer.Option(False, "--serve",
                               help="Afterwards run the projections and serve the dashboard "
                                    "(as `glasplade serve --demo-users`)"),
    port: int = typer.Option(8080, "--port", help="With --serve: port on 127.0.0.1"),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
) -> None:
    """Load a synthetic municipality through the fagsystem simulators and the connectors (the
    real path) and print per-system counts; --direct ingests its canonical events instead.
    Running it again stores 0 new events."""
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=TZ)
    hub = build_hub(store)
    try:
        if direct:
            report, code = _direct(hub, citizens, seed, as_of, out)
        else:
            report, code = _real(hub, citizens, seed, as_of)
        if json_out:
            print_json(report)
        else:
            (_print_direct if direct else _print_real)(report)
        if serve:
            _serve(hub, port)
    finally:
        hub.close()
    if code:
        raise typer.Exit(code)


# --- the real path ------------------------------------------------------------------------------

def _real(hub: Hub, citizens: int, seed: int, as_of: datetime | None) -> tuple[dict, int]:
    from connectors import registry
    from connectors.http import RetryPolicy
    from connectors.runner import ConnectorRunner
    from connectors.status import StatusStore
    from hub.cli.connectors import start_simulators

    started = time.perf_counter()
    m = generate(citizens, seed, as_of=as_of)
    generated = time.perf_counter()
    sims, failed = start_simulators(m)
    served = time.perf_counter()
    systems: dict[str, dict] = {name: {"result": "not started", "error": reason}
                                for name, reason in failed.items()}
    try:
        env: dict[str, str] = {}
        for sim in sims:
            env.update(sim.env())
        with _environ(env):
            connectors = []
            for sim in sims:
                try:
                    connectors.append(registry.connector_factory(sim.name)(hub.settings))
                except Exception as exc:  # noqa: BLE001 - one system's problem; the others go on
                    systems[sim.name] = _failed(f"{type(exc).__name__}: {exc}")
            runner = ConnectorRunner(
                hub.store, connectors, status=StatusStore(hub.settings.effective_readmodel_url),
                retry=RetryPolicy(attempts=3, initial=0.2, maximum=2.0))
            try:
                for connector in connectors:
                    t = time.perf_counter()
                    r = runner.run_connector(connector)
                    seconds = time.perf_counter() - t
                    systems[connector.name] = {
                        "result": "ok" if r.ok else "skipped" if r.skipped else "failed",
                        "stored": r.stored, "duplicates": r.duplicates,
                        "dead_letters": r.dead_letters, "seconds": round(seconds, 2),
                        "events_per_s": round(r.stored / seconds, 1) if seconds else 0.0,
                        "streams": r.streams, "error": r.error}
            finally:
                runner.close()
    finally:
        for sim in sims:
            with contextlib.suppress(Exception):
                sim.stop()
    ended = time.perf_counter()
    ran = [s for s in systems.values() if "stored" in s]
    stored = sum(s["stored"] for s in ran)
    elapsed = ended - started
    report = {**_municipality(m, seed), "path": "real", "systems": {
        name: systems[name] for name in registry.names() if name in systems},
        "stored": stored, "duplicates": sum(s["duplicates"] for s in ran),
        "dead_letters": sum(s["dead_letters"] for s in ran),
        "store_events": sum(n for _, _, n in hub.store.counts()),
        "elapsed_s": round(elapsed, 2), "generate_s": round(generated - started, 2),
        "simulators_s": round(served - generated, 2), "connectors_s": round(ended - served, 2),
        "events_per_s": round(stored / (ended - served), 1) if ended > served else 0.0}
    return report, 2 if not ran or any(s["result"] == "failed" for s in ran) else 0


def _failed(error: str) -> dict:
    return {"result": "failed", "stored": 0, "duplicates": 0, "dead_letters": 0,
            "seconds": 0.0, "events_per_s": 0.0, "streams": {}, "error": error}


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for this process while the block runs, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _print_real(r: dict) -> None:
    _print_municipality(r)
    rows = []
    for name, s in r["systems"].items():
        if "stored" not in s:
            rows.append([name, s["result"], "", "", "", "", "", s["error"][:70]])
            continue
        rows.append([name, s["result"], f"{s['stored']:,}", f"{s['duplicates']:,}",
                     f"{s['dead_letters']:,}", f"{s['seconds']:.1f}",
                     f"{s['events_per_s']:,.0f}", (s["error"] or "")[:70]])
    print_table(["system", "result", "stored", "duplicates", "dead letters", "seconds",
                 "events/s", "error"], rows)
    typer.echo(f"  events      {r['stored']:,} new, {r['duplicates']:,} duplicate, "
               f"{r['dead_letters']:,} dead letters; the store holds {r['store_events']:,}")
    typer.echo(f"  elapsed     {r['elapsed_s']:.1f} s (generate {r['generate_s']:.1f} s, "
               f"simulators {r['simulators_s']:.1f} s, connectors {r['connectors_s']:.1f} s), "
               f"{r['events_per_s']:,.0f} events/s through the connectors")
    for name, s in r["systems"].items():
        if s["result"] == "not started":
            typer.echo(f"  note        {name} could not start and was left out: {s['error']}")


# --- the direct path ----------------------------------------------------------------------------

def _direct(hub: Hub, citizens: int, seed: int, as_of: datetime | None,
            out: Path) -> tuple[dict, int]:
    started = time.perf_counter()
    m = generate(citizens, seed, as_of=as_of)
    generated = time.perf_counter()
    # by business time as the facts happened (in memory: fine up to ~100,000 citizens);
    # larger runs stream each stream's events in turn
    events = municipality_events(m, time_ordered=citizens <= 100_000)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"glasplade-demo-{m.code}-{citizens}-{seed}.avro"
    with tqdm(events, desc="writing", unit="ev", disable=None, leave=False) as bar:
        written = write_avro(path, bar, hub.schemas)
    wrote = time.perf_counter()
    bar = tqdm(total=written, desc="ingesting", unit="ev", disable=None, leave=False)
    last = [0]

    def progress(s: IngestSummary) -> None:
        bar.update(s.read - last[0])
        last[0] = s.read

    ingestor = Ingestor(hub.store, Validator(hub.schemas), hub.settings.ingest_batch_size,
                        on_batch=progress)
    try:
        summary = ingestor.run(read_file(path, hub.schemas))
    finally:
        bar.close()
    ended = time.perf_counter()
    elapsed = ended - started
    report = {
        **_municipality(m, seed), "path": "direct",
        "events": written, "file": str(path), "stored": summary.stored,
        "duplicates": summary.duplicates, "rejected": summary.rejected,
        "elapsed_s": round(elapsed, 2), "generate_s": round(generated - started, 2),
        "write_s": round(wrote - generated, 2), "ingest_s": round(ended - wrote, 2),
        "events_per_s": round(written / elapsed, 1) if elapsed else 0.0,
        "ingest_events_per_s": round(summary.events_per_second, 1),
    }
    return report, 2 if summary.rejected else 0


def _print_direct(r: dict) -> None:
    _print_municipality(r)
    typer.echo(f"  events      {r['events']:,} written to {r['file']}")
    typer.echo(f"  stored      {r['stored']:,} new, {r['duplicates']:,} duplicate, "
               f"{r['rejected']:,} rejected")
    typer.echo(f"  elapsed     {r['elapsed_s']:.1f} s (generate {r['generate_s']:.1f} s, write "
               f"{r['write_s']:.1f} s, ingest {r['ingest_s']:.1f} s), "
               f"{r['events_per_s']:,.0f} events/s overall, "
               f"{r['ingest_events_per_s']:,.0f} events/s ingest")


# --- shared -------------------------------------------------------------------------------------

def _municipality(m: Municipality, seed: int) -> dict:
    f = figures(m)
    return {
        "municipality": f"{m.name} ({m.code})", "seed": seed, "as_of": m.as_of.isoformat(),
        "persons": f.persons, "households": f.households, "children": f.children,
        "cases": f.cases, "cases_per_department": f.cases_per_department,
        "cases_per_system": f.cases_per_system, "grants": f.grants, "consents": f.consents,
        "markings": f.markings, "caseworkers": f.caseworkers,
        "multi_department_persons": f.multi_department_persons}


def _print_municipality(r: dict) -> None:
    def per(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in d.items())

    typer.echo(f"{r['municipality']}, seed {r['seed']}, as of {r['as_of'][:10]}")
    typer.echo(f"  persons     {r['persons']:,} in {r['households']:,} households "
               f"({r['children']:,} children; {r['multi_department_persons']:,} in families "
               "touching 2+ departments)")
    typer.echo(f"  cases       {r['cases']:,}: {per(r['cases_per_department'])}")
    typer.echo(f"  per system  {per(r['cases_per_system'])}")
    typer.echo(f"  grants {r['grants']:,}, consents {r['consents']:,}, markings "
               f"{r['markings']:,}, caseworkers {r['caseworkers']:,}")


def _serve(hub: Hub, port: int) -> None:
    """The dashboard over what was just loaded (the projections catch up in the background)."""
    try:
        from hub.cli.serve import run_server
    except ImportError:  # the serve command is not there yet
        typer.echo("To look at the result: glasplade serve --demo-users")
        return
    try:
        run_server(hub, port=port, demo_users=True)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
