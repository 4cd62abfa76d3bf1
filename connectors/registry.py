"""Which systems exist: name -> (connector factory, simulator factory), as dotted paths.

Adding a system is one line in ``SYSTEMS`` plus its folder under ``connectors/``:

    "mysystem": ("connectors.mysystem.connector:from_settings",
                 "connectors.mysystem.simulator:simulator"),

- connector factory: ``(settings: hub.config.Settings, store: EventStore | None = None)
  -> hub.ingest.connector.Connector``, reading its own settings with
  ``settings.component("mysystem", "base_url")``; ``store`` is the store the runner appends to
  (snapshot-diffing connectors read what it already knows from it).
- simulator factory: ``(municipality: hub.synthetic.model.Municipality,
  faults: connectors.simulation.FaultConfig) -> connectors.simulation.Simulator``.
Nothing is imported until asked for (no import-time building).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from hub.config import ConfigError, Settings

SYSTEMS: dict[str, tuple[str, str]] = {
    "cura": ("connectors.cura.connector:from_settings", "connectors.cura.simulator:simulator"),
    "sbsys": ("connectors.sbsys.connector:from_settings", "connectors.sbsys.simulator:simulator"),
    "dubu": ("connectors.dubu.connector:from_settings", "connectors.dubu.simulator:simulator"),
    "fasit": ("connectors.fasit.connector:from_settings", "connectors.fasit.simulator:simulator"),
    "cpr": ("connectors.cpr.connector:from_settings", "connectors.cpr.simulator:simulator"),
    "kafka": ("connectors.kafka.connector:from_settings", "connectors.kafka.simulator:simulator"),
}


def _load(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def names() -> list[str]:
    return list(SYSTEMS)


def _entry(name: str) -> tuple[str, str]:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise ConfigError(f"unknown connector {name!r}; known: {', '.join(SYSTEMS)}") from None


def connector_factory(name: str) -> Callable[..., Any]:
    return _load(_entry(name)[0])


def simulator_factory(name: str) -> Callable[..., Any]:
    return _load(_entry(name)[1])


def enabled(settings: Settings) -> list[str]:
    """Systems to run: ``GLASPLADE``-level ``[components.<name>] enabled = false`` or
    ``<NAME>_ENABLED=false`` turns one off; a system without a ``base_url`` (or, for push
    systems, ``bootstrap_servers``) is not configured and is left out."""
    out = []
    for name in SYSTEMS:
        flag = str(settings.component(name, "enabled", "true")).lower()
        if flag in ("0", "false", "no", "off"):
            continue
        if settings.component(name, "base_url") or settings.component(name, "bootstrap_servers"):
            out.append(name)
    return out


def build_connectors(settings: Settings, only: Iterable[str] | None = None,
                     store: Any = None) -> list[Any]:
    """The configured connectors (or exactly ``only``, which must be configured), reading what
    the store knows from ``store`` (the one the runner appends to)."""
    chosen = list(only) if only else enabled(settings)
    return [connector_factory(name)(settings, store=store) for name in chosen]
