"""Which projections the hub runs, and how to build the runner from a bootstrapped hub.

Each module in ``PROJECTION_MODULES`` has ``create(person_key_of) -> Projection`` (``person_key_of``
is the store's pseudonymizer, for events that name other persons by CPR), or else its concrete
``Projection`` classes are built with ``person_key_of`` (or no argument). Adding a read model
is one line here.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from projections.base import KeyOf, Projection
from projections.db import readmodel_engine
from projections.runner import ProjectionRunner

if TYPE_CHECKING:
    from hub.bootstrap import Hub

PROJECTION_MODULES: tuple[str, ...] = (
    "projections.citizen_overview",
    "projections.case_history",
    "projections.access_log",
    "projections.target_groups",
    "projections.management",
)


def build_projections(person_key_of: KeyOf,
                      modules: Sequence[str] | None = None) -> list[Projection]:
    out: list[Projection] = []
    for name in modules if modules is not None else PROJECTION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet: the others still run
                continue
            raise
        create = getattr(module, "create", None)
        if create is not None:
            out.append(create(person_key_of))
            continue
        # No factory: the module's concrete Projection classes, given the key function if
        # their constructor takes an argument.
        for cls in vars(module).values():
            if (isinstance(cls, type) and issubclass(cls, Projection)
                    and cls.__module__ == module.__name__ and not inspect.isabstract(cls)):
                takes_arg = len(inspect.signature(cls).parameters) > 0
                out.append(cls(person_key_of) if takes_arg else cls())
    return out


def open_runner(hub: Hub, *, batch_size: int | None = None, engine=None) -> ProjectionRunner:  # noqa: ANN001
    """The runner over every registered projection, on the hub's read-model database."""
    engine = engine or readmodel_engine(hub.settings.effective_readmodel_url)
    return ProjectionRunner(hub.store, engine, build_projections(hub.store.person_key),
                            batch_size=batch_size)


def pg_waiter(store_url: str, channel: str = "glasplade_events") -> Callable[[float], None] | None:
    """A ``wait(timeout)`` that returns as soon as the PostgreSQL store NOTIFYs new events (the
    store's recorder notifies its channel on every append), or None for SQLite (poll)."""
    if not store_url.startswith(("postgresql", "postgres:")):
        return None
    import psycopg

    from projections.db import sqlalchemy_url

    conninfo = sqlalchemy_url(store_url).replace("postgresql+psycopg://", "postgresql://", 1)
    conn = psycopg.connect(conninfo, autocommit=True)
    conn.execute(f'LISTEN "{channel}"')

    def wait(timeout: float) -> None:
        for _ in conn.notifies(timeout=timeout, stop_after=1):
            pass
        for _ in conn.notifies(timeout=0.0):  # and the ones queued behind it: one wake-up
            pass

    wait.close = conn.close  # type: ignore[attr-defined]
    return wait
