"""``glasplade projections status|run|rebuild``: the read models and their positions."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from tqdm import tqdm

from hub.bootstrap import Hub
from hub.cli.common import build_hub, print_json, print_table
from projections.registry import open_runner, pg_waiter
from projections.runner import ProjectionError, ProjectionRunner

StoreOpt = typer.Option(None, "--store", envvar="GLASPLADE_STORE_URL",
                        help="sqlite:///path.db or postgresql://user@host:port/db")
NamesArg = typer.Argument(None, help="Projection names (default: all)")
BatchOpt = typer.Option(None, "--batch-size", min=1, show_default=False,
                        help="Events per transaction [default: 20000 on PostgreSQL, 5000 on "
                        "SQLite]")


@contextmanager
def _opened(store: str | None, batch_size: int | None) -> Iterator[tuple[Hub, ProjectionRunner]]:
    hub = build_hub(store)
    runner = None
    try:
        runner = open_runner(hub, batch_size=batch_size)
        yield hub, runner
    except ProjectionError as exc:
        _fail(exc)
    finally:
        if runner is not None:
            runner.engine.dispose()
        hub.close()


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


def _bar(runner: ProjectionRunner, names: list[str] | None, desc: str,
         start: int | None = None) -> tqdm:
    """A bar over the store positions from ``start`` (default: the lowest projection's) to the
    head."""
    if start is None:
        stored = runner.positions()
        start = min((stored.get(p.name, (0, 0, None))[1] for p in runner.select(names)),
                    default=0)
    total = max(runner.store.max_position() - start, 0)
    return tqdm(total=total, desc=desc, unit="pos", unit_scale=True, dynamic_ncols=True)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="Read models (projections): status, run, "
                        "rebuild. A projection whose version changed is rebuilt automatically.")
    app.add_typer(group, name="projections")

    @group.command()
    def status(store: str = StoreOpt,
               json_out: bool = typer.Option(False, "--json", help="Machine-readable output")
               ) -> None:
        """Each projection's position against the store's head."""
        with _opened(store, None) as (_, runner):
            rows = runner.status()
        if json_out:
            print_json([{"name": s.name, "version": s.version, "stored_version": s.stored_version,
                         "position": s.position, "head": s.head, "lag": s.lag,
                         "needs_rebuild": s.needs_rebuild, "updated_at": s.updated_at}
                        for s in rows])
            return
        print_table(["projection", "version", "position", "head", "lag", "updated"],
                    [[s.name, s.version if not s.needs_rebuild
                      else f"{s.stored_version} -> {s.version} (rebuild)",
                      s.position, s.head, s.lag,
                      s.updated_at.isoformat(timespec="seconds") if s.updated_at else "never"]
                     for s in rows])

    @group.command()
    def run(names: list[str] = NamesArg, follow: bool = typer.Option(
                False, "--follow", help="Keep following new events until interrupted"),
            interval: float = typer.Option(0.5, help="Poll interval in seconds (--follow)"),
            batch_size: int | None = BatchOpt, store: str = StoreOpt) -> None:
        """Bring projections up to date (rebuilding any whose version changed)."""
        with _opened(store, batch_size) as (hub, runner):
            reset = runner.prepare(names or None)
            for name in reset:
                typer.echo(f"{name}: version changed, rebuilding from the first event")
            with _bar(runner, names or None, "projections") as bar:
                n = runner.run(names or None, progress=bar.update)
            if reset:
                runner.analyze(reset)
            typer.echo(f"applied {n} events; up to date at position {runner.store.max_position()}")
            if follow:
                stop = threading.Event()
                signal.signal(signal.SIGINT, lambda *_: stop.set())
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                wait = pg_waiter(hub.settings.store_url)
                typer.echo("following new events (Ctrl-C to stop)")
                try:
                    runner.follow(names or None, stop=stop, interval=interval,
                                  wait=(lambda t: wait(t)) if wait else None)
                finally:
                    if wait:
                        wait.close()  # type: ignore[attr-defined]

    @group.command()
    def rebuild(names: list[str] = NamesArg, batch_size: int | None = BatchOpt,
                store: str = StoreOpt) -> None:
        """Drop the read models and rebuild them from the first event (progress bar)."""
        with _opened(store, batch_size) as (_, runner):
            with _bar(runner, names or None, "rebuild", start=0) as bar:
                n = runner.rebuild(names or None, progress=bar.update)
            typer.echo(f"rebuilt {', '.join(p.name for p in runner.select(names or None))} "
                       f"from {n} events")
