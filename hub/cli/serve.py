"""``glasplade serve``: the HTTP API and the Danish dashboard, with the projections following
the store in a child process (a thread for an in-memory store)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable

import typer

from hub.bootstrap import Hub, bootstrap
from hub.cli.common import build_hub
from hub.config import ConfigError, Settings
from hub.logging import get_logger

log = get_logger("glasplade.serve")


def follow_projections(hub: Hub, stop: threading.Event, *, interval: float = 0.5,
                       retry: float = 5.0) -> threading.Thread:
    """Start a daemon thread that keeps every registered projection caught up until ``stop``.
    A failing batch is logged and retried after ``retry`` seconds (readiness shows the lag)."""
    from projections.registry import open_runner, pg_waiter

    def loop() -> None:
        runner = open_runner(hub)
        wait = pg_waiter(hub.settings.store_url)
        try:
            while not stop.is_set():
                try:
                    runner.follow(stop=stop, interval=interval, wait=wait)
                except Exception as exc:  # keep serving; /readyz reports the lag
                    log.error("projection follower failed; retrying", error=type(exc).__name__,
                              detail=str(exc)[:300])
                    stop.wait(retry)
        finally:
            if wait is not None:
                wait.close()  # type: ignore[attr-defined]
            runner.engine.dispose()

    thread = threading.Thread(target=loop, name="glasplade-projections", daemon=True)
    thread.start()
    return thread


def follow_in_child(settings: Settings) -> Callable[[], None]:
    """Start the projection follower in a child process over the same configuration; returns
    the function that stops it.

    Not a thread of the server: the follower decodes and projects in bursts, and a CPU-bound
    thread holds the interpreter lock while a request's database answer waits for it (the page
    p50 doubled and its p99 tripled with the follower as a thread, measured by
    ``bench/api.py --follow``)."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    process = context.Process(target=_follower_main, args=(settings, stop),
                              name="glasplade-projections", daemon=True)
    process.start()

    def halt() -> None:
        stop.set()
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()

    return halt


def _follower_main(settings: Settings, stop: threading.Event) -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:  # a server killed outright must not leave its follower behind
        threading.Thread(target=lambda: (parent.join(), stop.set()), daemon=True).start()
    hub = bootstrap(settings)
    try:
        follow_projections(hub, stop).join()
    finally:
        hub.close()


def _start_follower(hub: Hub) -> Callable[[], None]:
    if ":memory:" in hub.settings.store_url:  # not shared with another process
        stop = threading.Event()
        thread = follow_projections(hub, stop)

        def halt() -> None:
            stop.set()
            thread.join(timeout=10)

        return halt
    return follow_in_child(hub.settings)


def run_server(hub: Hub, *, host: str = "127.0.0.1", port: int = 8080,
               demo_users: bool = False, projections: bool = True) -> None:
    """Serve ``hub`` until interrupted (the demo calls this too). The caller closes the hub."""
    import uvicorn

    from hub.api.app import create_app

    api = create_app(hub, demo_users=demo_users)  # ConfigError: the caller reports it
    halt = _start_follower(hub) if projections else None
    typer.echo(f"Glasplade serves the dashboard at http://{host}:{port}/ "
               f"(API: http://{host}:{port}/api/docs)")
    try:
        uvicorn.run(api, host=host, port=port, log_level="warning", access_log=False)
    finally:
        if halt is not None:
            halt()


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
        port: int = typer.Option(8080, help="Port"),
        demo_users: bool = typer.Option(False, "--demo-users",
                                        help="Development login with the demo municipality's "
                                             "users (hub/api/demo_users.toml)"),
        projections: bool = typer.Option(True, "--projections/--no-projections",
                                         help="Follow the store with the projections in a "
                                              "child process"),
        store: str = typer.Option(None, "--store", envvar="GLASPLADE_STORE_URL",
                                  help="sqlite:///path.db or postgresql://user@host:port/db"),
    ) -> None:
        """Serve the HTTP API (/api/v1, OpenAPI at /api/docs) and the Danish dashboard."""
        hub = build_hub(store)
        try:
            run_server(hub, host=host, port=port, demo_users=demo_users,
                       projections=projections)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        finally:
            hub.close()
