"""Keep a projection caught up with the store before the nightly run reads it.

Uses the shared runner (``projections.runner``) when it exists; until then this small loop does
the same job for one projection: events in global order, the tracking position written in the
same transaction as the rows, a version change rebuilds the tables from zero.
"""

from __future__ import annotations

import sqlalchemy as sa

from hub.store.eventstore import EventStore
from projections.base import Projection
from projections.db import WRITE

_md = sa.MetaData()
TRACKING = sa.Table(
    "tg_tracking", _md, sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False))


def catch_up(store: EventStore, engine: sa.Engine, projection: Projection,
             batch_size: int = 2000) -> int:
    """Apply every event not yet applied; returns the number of events applied."""
    _md.create_all(engine)
    projection.metadata.create_all(engine)
    with engine.begin() as conn:
        row = conn.execute(sa.select(TRACKING).where(TRACKING.c.name == projection.name)).first()
        if row is None or row.version != projection.version:
            if row is not None:  # logic changed: rebuild from zero
                projection.metadata.drop_all(conn)
                projection.metadata.create_all(conn)
                conn.execute(TRACKING.delete().where(TRACKING.c.name == projection.name))
            conn.execute(TRACKING.insert().values(name=projection.name,
                                                  version=projection.version, position=0))
            position = 0
        else:
            position = row.position
    applied = 0
    while True:
        events = store.read(after=position, limit=batch_size, types=projection.topics)
        if not events:
            return applied
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            projection.handle(events, conn)
            position = events[-1].position
            conn.execute(TRACKING.update().where(TRACKING.c.name == projection.name)
                         .values(position=position))
        applied += len(events)
