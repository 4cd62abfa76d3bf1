"""The one place a connector chooses between the runner's store and opening its own."""

from __future__ import annotations

from connectors.cpr.connector import from_settings as cpr_from_settings
from connectors.stores import LazyStore, store_or_opener
from hub.config import Settings
from hub.store.eventstore import EventStore
from tests.conftest import make_store


class Opened:
    """A factory that counts the stores it opens and sees them closed."""

    def __init__(self, url: str):
        self.url = url
        self.stores: list[EventStore] = []
        self.closed = 0

    def __call__(self) -> EventStore:
        store = make_store(self.url)
        close = store.close

        def counted_close() -> None:
            self.closed += 1
            close()

        store.close = counted_close
        self.stores.append(store)
        return store


def test_a_factory_opens_on_first_use_once_and_its_store_is_closed(sqlite_url):
    opened = Opened(sqlite_url)
    lazy = LazyStore(opened)
    assert opened.stores == [], "nothing is opened before it is needed"
    assert lazy.get() is lazy.get() is opened.stores[0]
    assert lazy.close() is True and opened.closed == 1
    assert lazy.close() is False and opened.closed == 1
    assert lazy.get() is opened.stores[1], "after close(), the next use opens a new one"
    lazy.close()


def test_a_given_store_is_used_and_left_open(sqlite_url):
    store = make_store(sqlite_url)
    try:
        lazy = LazyStore(store)
        assert lazy.get() is store
        assert lazy.close() is False
        assert store.cursors("x") == {}, "still open"
    finally:
        store.close()


def test_the_registry_factories_choice(sqlite_url, tmp_path, monkeypatch):
    settings = Settings(store_url=sqlite_url, dev_key_file=tmp_path / "dev.key")
    store = make_store(sqlite_url)
    try:
        assert store_or_opener(settings, store) is store
        own = store_or_opener(settings, None)
        assert callable(own) and not isinstance(own, EventStore)
        opened = own()
        assert isinstance(opened, EventStore) and opened is not store
        opened.close()
        # As the CPR connector's factory makes it: the runner's store, else its own.
        monkeypatch.setenv("CPR_BASE_URL", "http://127.0.0.1:9")
        monkeypatch.setenv("CPR_SERVICE_AGREEMENT_UUID", "00000000-0000-0000-0000-000000000001")
        given = cpr_from_settings(settings, store)
        assert given.store is store
        given.close()
        assert store.cursors("cpr") == {}, "the runner's store stays open"
        alone = cpr_from_settings(settings)
        assert isinstance(alone.store, EventStore) and alone.store is not store
        alone.close()
    finally:
        store.close()
