"""``glasplade run | status | simulate | cursors reset``: the connectors from the command line."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from hub.cli.common import build_hub, print_json, print_table
from hub.config import ConfigError, load_settings

StoreOpt = typer.Option(None, "--store", envvar="GLASPLADE_STORE_URL",
                        help="sqlite:///path.db or postgresql://user@host:port/db")


def run(
    once: bool = typer.Option(False, "--once", help="One pass over every source, then exit"),
    only: list[str] = typer.Option(None, "--only", help="Run only this connector (repeatable)"),
    interval: float = typer.Option(60.0, help="Seconds between passes when running"),
    metrics_port: int = typer.Option(None, "--metrics-port",
                                     help="Serve Prometheus metrics on 127.0.0.1:PORT"),
    store: str = StoreOpt,
    json_out: bool = typer.Option(False, "--json", help="With --once: the report as JSON"),
) -> None:
    """Keep the event store up to date from every configured fagsystem.

    A system is configured when its <NAME>_BASE_URL (or [components.<name>] base_url) is set;
    `glasplade simulate` prints the settings for its simulators. Exit status with --once:
    0 all sources read, 2 some source failed (the others were still read), 1 no connectors.
    """
    from connectors import registry
    from connectors.metrics import ConnectorMetrics
    from connectors.runner import ConnectorRunner
    from connectors.status import StatusStore

    hub = build_hub(store)
    try:
        try:
            connectors = registry.build_connectors(hub.settings, only or None, store=hub.store)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if not connectors:
            typer.echo("error: no connectors configured: set e.g. CURA_BASE_URL, SBSYS_BASE_URL "
                       f"(known: {', '.join(registry.names())}); see docs/connectors.md",
                       err=True)
            raise typer.Exit(1)
        metrics = ConnectorMetrics()
        if metrics_port:
            metrics.serve(metrics_port)
            typer.echo(f"metrics on http://127.0.0.1:{metrics_port}/metrics", err=True)
        runner = ConnectorRunner(hub.store, connectors,
                                 status=StatusStore(hub.settings.effective_readmodel_url),
                                 metrics=metrics, **runner_options(hub.settings))
        try:
            if once:
                report = runner.run_once()
                rows = [[r.connector, "ok" if r.ok else ("skipped" if r.skipped else "FAILED"),
                         r.stored, r.duplicates, r.dead_letters, r.batches, r.error or ""]
                        for r in report.connectors.values()]
                if json_out:
                    print_json({r.connector: {"ok": r.ok, "stored": r.stored,
                                              "duplicates": r.duplicates,
                                              "dead_letters": r.dead_letters,
                                              "batches": r.batches, "error": r.error,
                                              "streams": r.streams}
                                for r in report.connectors.values()})
                else:
                    print_table(["connector", "result", "stored", "duplicates",
                                 "dead letters", "batches", "error"], rows)
                if not report.ok:
                    raise typer.Exit(2)
                return
            typer.echo(f"running {', '.join(c.name for c in connectors)} every {interval:g} s "
                       "(Ctrl-C stops)", err=True)
            try:
                runner.run_forever(interval)
            except KeyboardInterrupt:
                typer.echo("stopped", err=True)
        finally:
            runner.close()
    finally:
        hub.close()


def runner_options(settings) -> dict:
    """``RUNNER_RETRY_ATTEMPTS``, ``RUNNER_RETRY_INITIAL``, ``RUNNER_RETRY_MAX``,
    ``RUNNER_BREAKER_THRESHOLD``, ``RUNNER_BREAKER_COOLDOWN`` (or ``[components.runner]``)."""
    from connectors.http import RetryPolicy

    c = settings.component
    return {"retry": RetryPolicy(attempts=int(c("runner", "retry_attempts", 3)),
                                 initial=float(c("runner", "retry_initial", 1.0)),
                                 maximum=float(c("runner", "retry_max", 30.0))),
            "breaker_threshold": int(c("runner", "breaker_threshold", 3)),
            "breaker_cooldown": float(c("runner", "breaker_cooldown", 60.0))}


def status(json_out: bool = typer.Option(False, "--json", help="Machine-readable output"),
           store: str = StoreOpt) -> None:
    """Each connector's health, lag, errors and dead letters (as the running process left them)."""
    from connectors.status import StatusStore

    settings = load_settings(**({"store_url": store} if store else {}))
    statuses = StatusStore(settings.effective_readmodel_url).all()
    now = datetime.now(UTC)
    if json_out:
        print_json([s.as_dict(now) for s in statuses])
        return
    if not statuses:
        typer.echo("no connector has run yet (glasplade run)")
        return

    def ago(t: datetime | None) -> str:
        return "" if t is None else f"{_duration((now - t).total_seconds())} ago"

    print_table(
        ["connector", "health", "breaker", "last success", "lag", "backlog", "events",
         "duplicates", "dead letters", "failures", "last error"],
        [[s.connector, "ok" if s.healthy() else "FAILING", s.breaker, ago(s.last_success_at),
          _duration(s.lag_seconds(now)), "" if s.backlog is None else s.backlog,
          s.events_stored, s.duplicates, s.dead_letters, s.consecutive_failures,
          (s.last_error or "")[:60]] for s in statuses])


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def simulate(
    citizens: int = typer.Option(2000, help="Size of the synthetic municipality"),
    seed: int = typer.Option(1, help="Same seed, same municipality"),
    faults: str = typer.Option("", help="e.g. latency=0.05,error_rate=0.1,malformed_rate=0.01"),
    only: list[str] = typer.Option(None, "--only", help="Serve only this system (repeatable)"),
    tick: float = typer.Option(10.0, help="Real seconds between simulated-time steps"),
    step_hours: float = typer.Option(24.0, help="Simulated hours per step (0: frozen)"),
    env_file: Path = typer.Option(None, help="Also write the settings here (for `set -a; .`)"),
    duration: float = typer.Option(0, help="Stop after this many seconds (0: until Ctrl-C)"),
) -> None:
    """Serve one synthetic municipality through every registered fagsystem on 127.0.0.1."""
    from connectors.simulation import FaultConfig
    from hub.synthetic.generate import generate

    try:
        fault_config = FaultConfig.parse(faults)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    municipality = generate(citizens, seed)
    started = []
    try:
        started, failed = start_simulators(municipality, fault_config, only)
        for name, reason in failed.items():
            typer.echo(f"{name:8} not available: {reason}", err=True)
        lines = []
        for sim in started:
            typer.echo(f"{sim.name:8} {getattr(sim, 'url', '')}")
            lines += [f"{k}={v}" for k, v in sim.env().items()]
        typer.echo("\n# point `glasplade run` at the simulators:")
        for line in lines:
            typer.echo(f"export {line}")
        if env_file:
            env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _keep_alive(municipality, seed, tick, step_hours, duration)
    except KeyboardInterrupt:
        pass
    finally:
        for sim in started:
            sim.stop()


def start_simulators(municipality, fault_config=None, only: list[str] | None = None
                     ) -> tuple[list, dict[str, str]]:
    """Start the simulator of every registered system (or ``only``) on 127.0.0.1 ephemeral
    ports: (started simulators, {name: why it could not start}). A system that cannot start
    (still being written, no broker binary) is reported and the others go on; the caller
    stops the started ones."""
    from connectors import registry

    started, failed = [], {}
    try:
        for name in only or registry.names():
            sim = None
            try:
                sim = registry.simulator_factory(name)(municipality, fault_config)
                sim.start()
            except Exception as exc:  # noqa: BLE001 - reported to the caller, the others go on
                failed[name] = f"{type(exc).__name__}: {exc}"
                if sim is not None:
                    with contextlib.suppress(Exception):
                        sim.stop()
                continue
            started.append(sim)
    except BaseException:  # Ctrl-C while starting: the caller never gets the list to stop
        for sim in started:
            with contextlib.suppress(Exception):
                sim.stop()
        raise
    return started, failed


def _keep_alive(municipality, seed: int, tick: float, step_hours: float,
                duration: float) -> None:
    """Advance simulated time (new cases, status changes, closures, ...) every ``tick``."""
    try:
        from hub.synthetic.evolve import advance
    except ImportError:  # the municipality stays as generated
        advance = None
    rng = random.Random(seed)
    deadline = time.monotonic() + duration if duration else None
    stop = threading.Event()
    while deadline is None or time.monotonic() < deadline:
        wait = tick if deadline is None else min(tick, max(0.0, deadline - time.monotonic()))
        if stop.wait(wait):
            break
        if advance is not None and step_hours > 0 and (deadline is None
                                                       or time.monotonic() < deadline):
            advance(municipality, municipality.as_of + timedelta(hours=step_hours), rng)


def reset(name: str = typer.Argument(..., help="Connector name, e.g. sbsys"),
          stream: str = typer.Option(None, "--stream", help="Only this stream"),
          store: str = StoreOpt) -> None:
    """Forget a connector's stored position: its next pass reads from the beginning (facts
    already stored are not stored again)."""
    hub = build_hub(store)
    try:
        n = hub.store.reset_cursors(name, stream)
    finally:
        hub.close()
    typer.echo(f"reset {n} cursor(s) of {name}" + (f" stream {stream}" if stream else ""))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("status")(status)
    app.command("simulate")(simulate)
    cursors = typer.Typer(help="Connector positions (offsets) in their sources.",
                          no_args_is_help=True)
    cursors.command("reset")(reset)
    app.add_typer(cursors, name="cursors")
