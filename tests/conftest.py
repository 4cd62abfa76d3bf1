"""Fixtures shared by every test: keys, settings, stores on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os

import pytest

from hub.bootstrap import open_recorder
from hub.config import Settings
from hub.personal_data import PayloadCipher, Pseudonymizer
from hub.store.eventstore import EventStore
from tests import pg

DATA_KEY = bytes(range(32))
PSEUDONYM_KEY = bytes(range(32, 64))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the developer's glasplade.toml or keys."""
    monkeypatch.setenv("GLASPLADE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("GLASPLADE_DATA_KEY", base64.b64encode(DATA_KEY).decode())
    monkeypatch.setenv("GLASPLADE_PSEUDONYM_KEY", base64.b64encode(PSEUDONYM_KEY).decode())
    monkeypatch.setenv("GLASPLADE_LOG_FORMAT", "json")


@pytest.fixture(scope="session")
def pg_admin_url():
    try:
        with pg.server_url() as url:
            yield url
    except pg.NoPostgres as exc:
        pytest.fail(f"PostgreSQL is required for this test: {exc}", pytrace=False)


@pytest.fixture
def pg_url(pg_admin_url):
    """A fresh, empty PostgreSQL database for one test."""
    with pg.fresh_database(pg_admin_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'store.db'}"


def make_store(url: str) -> EventStore:
    return EventStore(open_recorder(url), Pseudonymizer(PSEUDONYM_KEY), PayloadCipher(DATA_KEY))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """Run a test once on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        admin = request.getfixturevalue("pg_admin_url")
        with pg.fresh_database(admin) as url:
            yield url


@pytest.fixture
def store(store_url):
    s = make_store(store_url)
    yield s
    s.close()


@pytest.fixture
def settings(store_url, tmp_path) -> Settings:
    return Settings(store_url=store_url, dev_key_file=tmp_path / "dev.key")


@pytest.fixture(scope="session")
def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
