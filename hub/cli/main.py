"""``glasplade``: the command line of the hub (integration team, operators, auditors)."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from hub.cli.common import build_hub, current_user, print_json, print_table, record_access
from hub.ingest.formats import FileUnreadable, event_to_json, read_file
from hub.ingest.pipeline import Ingestor, IngestSummary
from hub.ingest.validate import Validator

app = typer.Typer(
    name="glasplade", no_args_is_help=True, add_completion=False,
    help="Glasplade: an event-sourced integration hub over the municipality's fagsystemer.")

StoreOpt = typer.Option(None, "--store", envvar="GLASPLADE_STORE_URL",
                        help="sqlite:///path.db or postgresql://user@host:port/db")


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="Avro container (.avro) or JSON Lines (.jsonl)"),
    batch_size: int = typer.Option(None, help="Events per transaction (default from config)"),
    store: str = StoreOpt,
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
) -> None:
    """Validate and append canonical events from files; bad records go to dead letters.

    Exit status: 0 all stored or duplicate; 2 some records rejected (dead-lettered); 1 failure.
    """
    hub = build_hub(store)
    try:
        ingestor = Ingestor(hub.store, Validator(hub.schemas),
                            batch_size or hub.settings.ingest_batch_size)
        summary = IngestSummary()
        for path in paths:
            try:
                ingestor.run(read_file(path, hub.schemas), summary=summary)
            except FileUnreadable as exc:
                summary.file_errors.append(str(exc))
    finally:
        hub.close()
    if json_out:
        print_json(summary.as_dict())
    else:
        typer.echo(f"read {summary.read}, stored {summary.stored}, duplicate "
                   f"{summary.duplicates}, rejected {summary.rejected} "
                   f"({summary.elapsed:.2f} s, {summary.events_per_second:,.0f} events/s)")
        for reason, n in sorted(summary.reasons.items()):
            typer.echo(f"  rejected {n}: {reason}")
        for err in summary.file_errors:
            typer.echo(f"  file error: {err}", err=True)
    if summary.file_errors:
        raise typer.Exit(1)
    if summary.rejected:
        raise typer.Exit(2)


@app.command()
def events(
    case: str = typer.Option(None, "--case", help="Case key, e.g. dubu:S-2024-000123"),
    person: str = typer.Option(None, "--person", help="CPR or substitute number"),
    purpose: str = typer.Option("integration-support", help="Why you look (logged)"),
    json_out: bool = typer.Option(False, "--json", help="JSON Lines instead of a table"),
    store: str = StoreOpt,
) -> None:
    """A case's or a person's events in order. Looking at a person is logged as an access."""
    if bool(case) == bool(person):
        typer.echo("error: give exactly one of --case or --person", err=True)
        raise typer.Exit(1)
    hub = build_hub(store)
    try:
        found = hub.store.case_events(case) if case else hub.store.person_events(person)
        subjects = {e.person for e in found if e.person}
        if person:
            subjects.add(person)
        for subject in sorted(subjects):
            record_access(hub, subject, user=current_user(), purpose=purpose, view="events")
    finally:
        hub.close()
    if json_out:
        for e in found:
            typer.echo(event_to_json(e).decode())
        return
    if not found:
        typer.echo("no events")
        return
    print_table(
        ["position", "occurred_at", "recorded_at", "source", "type", "case", "actor"],
        [[e.position, e.occurred_at.isoformat(timespec="seconds"),
          e.recorded_at.isoformat(timespec="seconds") if e.recorded_at else "",
          e.source_system, e.event_type, e.case_key or "", e.actor or ""] for e in found])


@app.command()
def stats(store: str = StoreOpt,
          json_out: bool = typer.Option(False, "--json", help="Machine-readable output")) -> None:
    """Counts of events per type and source, and dead letters per source."""
    hub = build_hub(store)
    try:
        counts = hub.store.counts()
        dead = hub.store.dead_letter_counts()
        last = hub.store.max_position()
    finally:
        hub.close()
    if json_out:
        print_json({"events": sum(c for _, _, c in counts), "last_position": last,
                    "by_type_and_source": [{"event_type": t, "source_system": s, "count": c}
                                           for t, s, c in counts],
                    "dead_letters": dead})
        return
    print_table(["event type", "source", "count"], counts)
    typer.echo(f"total {sum(c for _, _, c in counts)} events, last position {last}")
    for source, n in sorted(dead.items()):
        typer.echo(f"dead letters from {source}: {n}")


@app.command("dead-letters")
def dead_letters(limit: int = typer.Option(20), source: str = typer.Option(None),
                 store: str = StoreOpt,
                 json_out: bool = typer.Option(False, "--json")) -> None:
    """The newest dead letters with their reasons (record ids and raw records only with --json)."""
    hub = build_hub(store)
    try:
        rows = hub.store.dead_letters(limit, source)
    finally:
        hub.close()
    if json_out:
        print_json([{"id": d.id, "source_system": d.source_system,
                     "source_record_id": d.source_record_id, "reason": d.reason,
                     "raw": d.raw.decode("utf-8", "replace"), "recorded_at": d.recorded_at}
                    for d in rows])
        return
    # Record ids and raw records may hold personal data: only with --json, for the one fixing it.
    print_table(["id", "recorded_at", "source", "reason"],
                [[d.id, d.recorded_at.isoformat(timespec="seconds"), d.source_system, d.reason]
                 for d in rows])


#: Command groups owned by other modules; each module has ``register(app)``.
#: Add one line per module (keep this list the only place that knows them).
COMMAND_MODULES: list[str] = [
    "hub.cli.serve",
    "hub.cli.demo",
    "hub.cli.projections",
    "hub.cli.overlap",
    "hub.cli.connectors",
]

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
