"""An app over a populated SQLite store with the read models caught up."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.api.config import ApiConfig, load_policy
from hub.bootstrap import bootstrap
from hub.config import Settings
from projections.registry import open_runner
from tests.api.world import USERS, populate

TODAY = date(2026, 11, 29)


def api_config(**kw) -> ApiConfig:
    base = dict(auth="dev", users=USERS, policy=load_policy(), session_secret="test-secret-" * 3)
    base.update(kw)
    return ApiConfig(**base)


@pytest.fixture
def hub(tmp_path):
    h = bootstrap(Settings(store_url=f"sqlite:///{tmp_path / 'store.db'}",
                           dev_key_file=tmp_path / "dev.key"), configure_logging=False)
    yield h
    h.close()


@pytest.fixture
def world(hub):
    w = populate(hub.store)
    catch_up(hub)
    return w


def catch_up(hub) -> None:
    runner = open_runner(hub)
    try:
        runner.prepare()
        runner.run()
    finally:
        runner.engine.dispose()


@pytest.fixture
def app(hub, world):
    return create_app(hub, config=api_config(), today=lambda: TODAY)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def login(client: TestClient, user_id: str) -> None:
    r = client.post("/api/v1/session", json={"user_id": user_id})
    assert r.status_code == 200, r.text
