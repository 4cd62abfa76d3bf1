"""`glasplade serve` as a real process: it serves, follows the store, and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.domain import events as ev
from tests.api.world import event, populate
from tests.conftest import make_store

GLASPLADE = str(Path(sys.executable).with_name("glasplade"))
USERS = """
[[users]]
id = "anne"
name = "Anne Holm"
roles = ["caseworker"]
units = ["BUF-MYN-N"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def populated(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = make_store(url)
    world = populate(store)
    store.close()
    return url, world


def test_serve_follows_the_store_and_serves(tmp_path, populated, monkeypatch):
    url, world = populated
    (tmp_path / "users.toml").write_text(USERS)
    monkeypatch.setenv("API_USERS_FILE", str(tmp_path / "users.toml"))
    port = free_port()
    proc = subprocess.Popen([GLASPLADE, "serve", "--port", str(port), "--store", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"{base}/readyz", timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                why = proc.stdout.read() if proc.poll() is not None else "timeout"
                pytest.fail(f"serve did not become ready: {why}")
            time.sleep(0.2)
        with httpx.Client(base_url=base) as c:
            assert c.post("/api/v1/session", json={"user_id": "anne"}).status_code == 200
            r = c.get(f"/api/v1/persons/{world.child}/overview")
            assert r.status_code == 200 and r.json()["cases"][0]["decision"]["code"] == "own-unit"
            # An event appended by another process reaches the read model via the follower.
            store = make_store(url)
            store.append([event(ev.CaseOpened("BUF", "BUF-MYN-N", "Team Nord", "undersoegelse",
                                           "open", "Børnefaglig undersøgelse"),
                             person=world.child_cpr, case="dubu:S-999")])
            store.close()
            deadline = time.monotonic() + 15
            while "dubu:S-999" not in {x["case_key"] for x in c.get(
                    f"/api/v1/persons/{world.child}/overview").json()["cases"]}:
                assert time.monotonic() < deadline, "the follower did not pick up the event"
                time.sleep(0.2)
            assert c.get("/healthz").json() == {"status": "ok"}
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/" in out


def test_serve_without_users_says_what_to_do(populated):
    url, _ = populated
    r = subprocess.run([GLASPLADE, "serve", "--port", str(free_port()), "--store", url],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert r.returncode == 1
    assert "API_USERS_FILE" in r.stderr and "--demo-users" in r.stderr
