"""The projection runner: feeds projections the store's events in global order, exactly once.

For each batch and projection, ONE read-model transaction holds the projection's new rows and
its new tracking position (``projection_positions``); a crash anywhere leaves both as they were,
and the next run repeats the batch. Projections at the same position share one read of the
store (events are decrypted and decoded once however many projections consume them).

A projection whose ``version`` differs from the stored one is rebuilt from zero before it runs
again (tables dropped and created, position 0), so a schema change never needs a hand edit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from hub.domain.events import CanonicalEvent
from hub.logging import get_logger
from hub.store.eventstore import EventStore, gc_paused
from projections.base import Projection
from projections.db import WRITE
from projections.rows import SeenKeys, fresh_tables

log = get_logger("glasplade.projections")

positions_metadata = sa.MetaData()
positions = sa.Table(
    "projection_positions", positions_metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

Progress = Callable[[int], None]
"""Called with the number of store positions a batch advanced (for a progress bar)."""


@dataclass(frozen=True, slots=True)
class _Batch:
    events: list[CanonicalEvent]
    last: int
    """Position of the last row read (whatever its type)."""
    full: bool
    head: int
    """The store's head just before the read."""


class ProjectionError(RuntimeError):
    """A projection is unknown, or failed on a batch (the batch was not applied)."""


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    version: int
    stored_version: int | None
    position: int
    head: int
    updated_at: datetime | None

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)

    @property
    def needs_rebuild(self) -> bool:
        return self.stored_version is not None and self.stored_version != self.version


def _now() -> datetime:
    return datetime.now(UTC)


class ProjectionRunner:
    def __init__(self, store: EventStore, engine: sa.Engine, projections: Sequence[Projection],
                 *, batch_size: int = 5000, clock: Callable[[], datetime] = _now):
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ProjectionError(f"duplicate projection names: {names}")
        self.store = store
        self.engine = engine
        self.projections = list(projections)
        self.batch_size = batch_size
        self.clock = clock
        self._fresh: dict[str, tuple[int, dict[str, SeenKeys]]] = {}
        """Projections this runner rebuilds from empty tables and alone so far: name ->
        (position it last moved them to, keys written per table). See ``_fresh_scope``."""

    # --- selection and positions ------------------------------------------------------------

    def select(self, names: Sequence[str] | None = None) -> list[Projection]:
        if not names:
            return list(self.projections)
        known = {p.name: p for p in self.projections}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ProjectionError(f"unknown projection(s) {unknown}; known: {sorted(known)}")
        return [known[n] for n in names]

    def _write(self) -> sa.Connection:
        return self.engine.connect().execution_options(**WRITE)

    def positions(self) -> dict[str, tuple[int, int, datetime | None]]:
        """name -> (stored version, position, updated_at) for every tracked projection."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(positions.name):
                return {}
            return {r.name: (r.version, r.position, r.updated_at)
                    for r in conn.execute(sa.select(positions))}

    def status(self) -> list[ProjectionStatus]:
        stored = self.positions()
        head = self.store.max_position()
        out = []
        for p in self.projections:
            version, position, updated = stored.get(p.name, (None, 0, None))
            out.append(ProjectionStatus(p.name, p.version, version, position, head, updated))
        return out

    # --- schema and version -----------------------------------------------------------------

    def prepare(self, names: Sequence[str] | None = None) -> list[str]:
        """Create missing tables and tracking rows; reset any projection whose version changed
        or whose tables are missing. Returns the names that were reset (to be rebuilt)."""
        reset: list[str] = []
        with self._write() as conn, conn.begin():
            positions_metadata.create_all(conn)
        for p in self.select(names):
            with self._write() as conn, conn.begin():
                row = conn.execute(sa.select(positions).where(positions.c.name == p.name)
                                   .with_for_update()).first()
                inspector = sa.inspect(conn)
                missing = [t for t in p.metadata.tables if not inspector.has_table(t)]
                if row is not None and (row.version != p.version or missing):
                    log.info("projection reset", projection=p.name, stored_version=row.version,
                             version=p.version, missing_tables=len(missing))
                    self._reset(conn, p)
                    reset.append(p.name)
                elif row is None:
                    p.metadata.create_all(conn)
                    conn.execute(positions.insert().values(
                        name=p.name, version=p.version, position=0, updated_at=self.clock()))
        return reset

    def _reset(self, conn: sa.Connection, p: Projection) -> None:
        p.metadata.drop_all(conn)
        p.metadata.create_all(conn)
        values = {"version": p.version, "position": 0, "updated_at": self.clock()}
        if conn.execute(positions.update().where(positions.c.name == p.name)
                        .values(**values)).rowcount == 0:
            conn.execute(positions.insert().values(name=p.name, **values))

    def reset(self, names: Sequence[str] | None = None) -> None:
        """Empty the projections' tables and set their positions to 0 (one transaction each)."""
        with self._write() as conn, conn.begin():
            positions_metadata.create_all(conn)
        for p in self.select(names):
            with self._write() as conn, conn.begin():
                conn.execute(sa.select(positions.c.name).where(positions.c.name == p.name)
                             .with_for_update())
                self._reset(conn, p)

    # --- catching up ------------------------------------------------------------------------

    def run(self, names: Sequence[str] | None = None, *, until: int | None = None,
            progress: Progress | None = None) -> int:
        """Bring the projections up to the store's head (or ``until``); returns the number of
        events read. Call ``prepare`` first (``follow`` and the CLI do)."""
        selected = self.select(names)
        read = 0
        parallel = len(selected) > 1 and self.engine.dialect.name == "postgresql"
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="projection-read") as pool, \
                ThreadPoolExecutor(max_workers=len(selected),
                                   thread_name_prefix="projection-apply") as appliers:
            ahead: tuple[tuple[int, frozenset[str]], Future[_Batch]] | None = None
            while True:
                # No cyclic garbage collection while a batch is handled: every batch allocates
                # hundreds of thousands of short-lived objects (freed by reference counting),
                # and collections triggered by them would traverse the batch's live rows and
                # events again and again. Between batches it runs as usual.
                with gc_paused():
                    stored = self.positions()
                    missing = [p.name for p in selected if p.name not in stored]
                    if missing:
                        raise ProjectionError(f"projection not prepared: {missing}")
                    pos = {p.name: stored[p.name][1] for p in selected}
                    head = self.store.max_position() if until is None else until
                    lowest = min(pos.values())
                    if lowest >= head:
                        return read
                    group = [p for p in selected if pos[p.name] == lowest]
                    topics = frozenset() if not all(p.topics for p in group) else frozenset(
                        t for p in group for t in p.topics)
                    if ahead is not None and ahead[0] == (lowest, topics):
                        batch = ahead[1].result()
                    else:
                        batch = self._read(lowest, topics)
                    ahead = None
                    if batch.full and (until is None or batch.last < until):
                        # decrypt and decode the next batch while this one is written
                        ahead = ((batch.last, topics), pool.submit(self._read, batch.last, topics))
                    end = batch.last if batch.full else max(batch.head, batch.last)
                    if until is not None:
                        end = min(end, until)
                    events = [e for e in batch.events if (e.position or 0) <= end]
                    types = [e.event_type for e in events]  # a property: computed once per event
                    idle, work = [], []
                    for p in group:
                        wanted = frozenset(p.topics)
                        mine = events if not wanted else [
                            e for e, kind in zip(events, types, strict=True) if kind in wanted]
                        if mine:
                            work.append((p, mine))
                        else:
                            idle.append(p.name)
                    self._apply_all(appliers if parallel else None, work, lowest, end)
                    if idle:  # nothing to handle: only their positions move, in one statement
                        self._advance(idle, lowest, end)
                    read += len(events)
                    if progress:
                        progress(end - lowest)
                    del batch, events, types, work, mine  # garbage before collection resumes

    def _apply_all(self, appliers: ThreadPoolExecutor | None,
                   work: Sequence[tuple[Projection, list[CanonicalEvent]]], expected: int,
                   end: int) -> None:
        """Apply a batch to each projection, each in its own transaction. On PostgreSQL they run
        in threads: while one waits on the server (psycopg releases the GIL), another runs its
        handlers. The first failure is raised after every projection has finished the batch."""
        if appliers is None or len(work) < 2:
            for p, mine in work:
                self._apply(p, expected, end, mine)
            return
        futures = [appliers.submit(self._apply, p, expected, end, mine) for p, mine in work]
        for f in futures:
            f.exception()  # wait for all
        for f in futures:
            f.result()

    def _read(self, after: int, topics: frozenset[str]) -> _Batch:
        """The next rows after ``after``; only those of ``topics`` are decrypted and decoded.

        Rows are read unfiltered by the global-position index (a topic filter in SQL makes
        PostgreSQL scan every later row for each batch) and filtered on their clear topic."""
        head = self.store.max_position()  # everything up to here is committed and readable
        rows = self.store.recorder.rows_after(after, self.batch_size)
        events = [self.store.from_row(r) for r in rows if not topics or r.topic in topics]
        last = rows[-1].position if rows else after
        return _Batch(events, last, len(rows) >= self.batch_size, head)

    def _advance(self, names: Sequence[str], expected: int, end: int) -> None:
        """Move projections that had no events in ``(expected, end]`` to ``end`` (those another
        runner moved already are left alone)."""
        with self._write() as conn, conn.begin():
            moved = conn.execute(positions.update().where(positions.c.name.in_(names),
                                                          positions.c.position == expected)
                                 .values(position=end, updated_at=self.clock())
                                 .returning(positions.c.name)).scalars().all()
        for name in names:
            if name in moved and name in self._fresh:
                self._fresh[name] = (end, self._fresh[name][1])
            else:
                self._fresh.pop(name, None)

    def _apply(self, p: Projection, expected: int, end: int,
               mine: Sequence[CanonicalEvent]) -> None:
        """Handle a projection's events of ``(expected, end]`` and move its position to ``end``,
        in one transaction."""
        seen = self._fresh_scope(p.name, expected)
        self._fresh.pop(p.name, None)  # back only once this batch is committed
        with self._write() as conn, conn.begin():
            current = conn.execute(sa.select(positions.c.position)
                                   .where(positions.c.name == p.name).with_for_update()).scalar()
            if current != expected:  # another runner got there first: nothing to do
                log.info("projection moved by another runner", projection=p.name)
                return
            try:
                with fresh_tables(seen):
                    p.handle(mine, conn)
            except Exception as exc:
                log.error("projection batch failed", projection=p.name, after=expected,
                          until=end, error=type(exc).__name__)
                raise ProjectionError(f"{p.name}: batch after position {expected} failed: "
                                      f"{type(exc).__name__}: {exc}") from exc
            conn.execute(positions.update().where(positions.c.name == p.name)
                         .values(position=end, updated_at=self.clock()))
        if seen is not None:
            self._fresh[p.name] = (end, seen)

    def _fresh_scope(self, name: str, expected: int) -> dict[str, SeenKeys] | None:
        """The keys written to the projection's tables, if this runner emptied them and then
        moved the projection through every batch itself: rows it never wrote are certainly
        absent, so they are neither queried nor merged but inserted (a rebuild's tables grow
        from empty). Anything else (another runner moved it, a failed batch, a later run)
        leaves None: every row is looked up as usual."""
        state = self._fresh.get(name)
        if state is None or state[0] != expected:
            return None
        return state[1]

    def rebuild(self, names: Sequence[str] | None = None, *,
                progress: Progress | None = None) -> int:
        """Drop, recreate and refill the projections from the first event."""
        self.reset(names)
        if self.engine.dialect.name == "postgresql":  # see _fresh_scope
            self._fresh.update({p.name: (0, {}) for p in self.select(names)})
        started = time.perf_counter()
        try:
            n = self.run(names, progress=progress)
        finally:
            for p in self.select(names):
                self._fresh.pop(p.name, None)
        self.analyze(names)
        log.info("projections rebuilt", projections=[p.name for p in self.select(names)],
                 events=n, seconds=round(time.perf_counter() - started, 3))
        return n

    def analyze(self, names: Sequence[str] | None = None) -> None:
        """Refresh the query planner's statistics of the projections' tables (after a bulk
        load the planner would otherwise guess, and pick scans over index lookups)."""
        tables = [t.name for p in self.select(names) for t in p.metadata.sorted_tables]
        if self.engine.dialect.name != "postgresql" or len(tables) < 2:
            self._analyze(tables)
            return
        # two connections: the server analyzes two tables at a time (on two cores)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="projection-analyze") as pool:
            for f in [pool.submit(self._analyze, tables[i::2]) for i in range(2)]:
                f.result()

    def _analyze(self, tables: Sequence[str]) -> None:
        with self.engine.connect() as conn, conn.begin():
            for name in tables:
                conn.exec_driver_sql(f'ANALYZE "{name}"')

    def follow(self, names: Sequence[str] | None = None, *, stop: threading.Event | None = None,
               interval: float = 0.5, wait: Callable[[float], None] | None = None,
               gather: float = 0.1) -> None:
        """Keep the projections up to date until ``stop`` is set. ``wait(timeout)`` returns
        early when the store signals new events (PostgreSQL LISTEN); else it polls.

        After a wake-up the follower waits ``gather`` seconds more so that a burst of appends
        (a dashboard records an access event for every page view) is projected in one run
        rather than one run per append: the read models trail by at most ``gather`` plus one
        run, and the server process that shares this thread keeps its time for requests."""
        stop = stop or threading.Event()
        self.prepare(names)
        sleep = wait or stop.wait
        while not stop.is_set():
            if self.run(names) == 0:
                sleep(interval)
                stop.wait(gather)
