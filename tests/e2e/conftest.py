"""A real server for end-to-end tests: uvicorn on 127.0.0.1 (ephemeral port) in a thread, over a
populated SQLite store, with the projections following the store in the background exactly as
``glasplade serve`` runs them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from hub.api.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.cli.serve import follow_projections
from hub.config import Settings
from tests.api.conftest import api_config
from tests.api.world import World, populate


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    world: World


@pytest.fixture
def live_server(tmp_path):
    hub = bootstrap(Settings(store_url=f"sqlite:///{tmp_path / 'store.db'}",
                             dev_key_file=tmp_path / "dev.key"), configure_logging=False)
    try:
        world = populate(hub.store)
        with running_server(hub, world) as server:
            yield server
    finally:
        hub.close()


@contextmanager
def running_server(hub: Hub, world: World) -> Iterator[LiveServer]:
    """Serve ``hub`` until the block ends, once the projections have caught up with its store."""
    stop = threading.Event()
    follower = follow_projections(hub, stop, interval=0.1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(hub, config=api_config()),
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:  # up, and the projections have caught up with the populated store
            try:
                if httpx.get(f"{base}/readyz", timeout=2).json().get("status") == "ready":
                    lag = httpx.get(f"{base}/readyz", timeout=2).json()["projection_lag"]
                    if lag and not any(lag.values()):
                        break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the server did not become ready within 20 s")
            time.sleep(0.1)
        yield LiveServer(base, world)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        stop.set()
        follower.join(timeout=10)
        sock.close()
