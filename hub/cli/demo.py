"""``glasplade demo``: generate a synthetic municipality, write its events, ingest them."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer
from tqdm import tqdm

from hub.cli.common import build_hub, print_json
from hub.ingest.formats import read_file, write_avro
from hub.ingest.pipeline import Ingestor, IngestSummary
from hub.ingest.validate import Validator
from hub.synthetic.cases import TZ
from hub.synthetic.generate import DEFAULT_AS_OF, generate
from hub.synthetic.stats import figures
from hub.synthetic.to_events import municipality_events


def demo(
    citizens: int = typer.Option(5000, "--citizens", min=1, help="Inhabitants to generate"),
    seed: int = typer.Option(7, "--seed", help="Same seed, same municipality, same events"),
    store: str = typer.Option(None, "--store", envvar="GLASPLADE_STORE_URL",
                              help="sqlite:///path.db or postgresql://user@host:port/db"),
    out: Path = typer.Option(Path("demo-data"), "--out", help="Folder for the Avro file"),
    as_of: datetime = typer.Option(
        None, "--as-of", help=f"The municipality's 'now' (default {DEFAULT_AS_OF:%Y-%m-%d}); "
        "fixed by default so that a rerun stores nothing new"),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
) -> None:
    """Generate a synthetic municipality, write it as canonical events to an Avro file, ingest
    the file, and print what was made and how fast. Running it again stores 0 new events."""
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=TZ)
    hub = build_hub(store)
    try:
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
    finally:
        hub.close()
    f = figures(m)
    elapsed = ended - started
    report = {
        "municipality": f"{m.name} ({m.code})", "seed": seed, "as_of": m.as_of.isoformat(),
        "persons": f.persons, "households": f.households, "children": f.children,
        "cases": f.cases, "cases_per_department": f.cases_per_department,
        "cases_per_system": f.cases_per_system, "grants": f.grants, "consents": f.consents,
        "markings": f.markings, "caseworkers": f.caseworkers,
        "multi_department_persons": f.multi_department_persons,
        "events": written, "file": str(path), "stored": summary.stored,
        "duplicates": summary.duplicates, "rejected": summary.rejected,
        "elapsed_s": round(elapsed, 2), "generate_s": round(generated - started, 2),
        "write_s": round(wrote - generated, 2), "ingest_s": round(ended - wrote, 2),
        "events_per_s": round(written / elapsed, 1) if elapsed else 0.0,
        "ingest_events_per_s": round(summary.events_per_second, 1),
    }
    if json_out:
        print_json(report)
    else:
        _print(report)
    if summary.rejected:
        raise typer.Exit(2)


def _print(r: dict) -> None:
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
    typer.echo(f"  events      {r['events']:,} written to {r['file']}")
    typer.echo(f"  stored      {r['stored']:,} new, {r['duplicates']:,} duplicate, "
               f"{r['rejected']:,} rejected")
    typer.echo(f"  elapsed     {r['elapsed_s']:.1f} s (generate {r['generate_s']:.1f} s, write "
               f"{r['write_s']:.1f} s, ingest {r['ingest_s']:.1f} s), "
               f"{r['events_per_s']:,.0f} events/s overall, "
               f"{r['ingest_events_per_s']:,.0f} events/s ingest")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
