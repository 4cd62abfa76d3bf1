"""Keep a projection caught up with the store before the nightly run reads it, through the
shared projection runner (same tracking row as ``glasplade projections``: exactly once, and a
runner following in another process is never doubled)."""

from __future__ import annotations

import sqlalchemy as sa

from hub.store.eventstore import EventStore
from projections.base import Projection
from projections.runner import ProjectionRunner


def catch_up(store: EventStore, engine: sa.Engine, projection: Projection,
             batch_size: int | None = None) -> int:
    """Apply every event not yet applied; returns the number of events read."""
    runner = ProjectionRunner(store, engine, [projection], batch_size=batch_size)
    runner.prepare([projection.name])
    return runner.run([projection.name])
