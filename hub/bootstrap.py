"""The composition root: the one place that builds adapters from configuration.

The CLI, the API, the benchmarks and the tests all get their ``Hub`` from ``bootstrap()``;
nothing is built at import time. Tests pass fakes or prebuilt adapters as keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub import schemas as schemas_mod
from hub.config import ConfigError, Settings, load_settings
from hub.logging import configure, get_logger
from hub.personal_data import PayloadCipher, Pseudonymizer
from hub.store.contract import EventRecorder
from hub.store.eventstore import EventStore


@dataclass
class Hub:
    settings: Settings
    schemas: schemas_mod.Schemas
    store: EventStore
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for extra in self.extras.values():
            close = getattr(extra, "close", None)
            if callable(close):
                close()
        self.store.close()


def open_recorder(url: str, *, create: bool = True) -> EventRecorder:
    """An event recorder for ``url``: sqlite:///... or postgresql://..."""
    if url.startswith("sqlite:"):
        from hub.store.sqlite import GlaspladeSQLiteRecorder, datastore_from_url
        recorder: EventRecorder = GlaspladeSQLiteRecorder(datastore_from_url(url))
    elif url.startswith(("postgresql:", "postgres:", "postgresql+psycopg:")):
        from hub.store.postgres import GlaspladePostgresRecorder
        from hub.store.postgres import datastore_from_url as pg_datastore
        recorder = GlaspladePostgresRecorder(pg_datastore(url))
    else:
        raise ConfigError(f"store_url must start with sqlite:/// or postgresql://, got {url!r}")
    if create:
        recorder.create_tables()
    recorder.url = url
    return recorder


def open_store(settings: Settings, *, create: bool = True) -> EventStore:
    data_key, pseudonym_key = settings.keys()
    return EventStore(open_recorder(settings.store_url, create=create),
                      Pseudonymizer(pseudonym_key), PayloadCipher(data_key))


def bootstrap(settings: Settings | None = None, *, store: EventStore | None = None,
              configure_logging: bool = True, **overrides: Any) -> Hub:
    settings = settings or load_settings(**overrides)
    if configure_logging:
        configure(settings.log_format, settings.log_level)
    schemas = schemas_mod.default()  # loads and checks every schema at start-up
    store = store or open_store(settings)
    get_logger("glasplade").debug("bootstrapped", store=_redact_url(settings.store_url))
    return Hub(settings=settings, schemas=schemas, store=store)


def _redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
