"""The projection runner: feeds projections the store's events in global order, exactly once.

For each batch and projection, ONE read-model transaction holds the projection's new rows and
its new tracking position (``projection_positions``); a crash anywhere leaves both as they were,
and the next run repeats the batch. Projections at the same position share one read of the
store (events are decrypted and decoded once however many projections consume them).

A projection whose ``version`` differs from the stored one is rebuilt from zero before it runs
again (tables dropped and created, position 0), so a schema change never needs a hand edit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import compress

import sqlalchemy as sa

from hub.domain.events import CanonicalEvent
from hub.logging import get_logger
from hub.sql import create_all, schema_lock
from hub.store.contract import StoreError
from hub.store.eventstore import EventStore, gc_paused
from hub.store.prefetch import Fields, RowPrefetcher, fields
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

#: A projection's position, locked for its batch's transaction.
_CLAIM = sa.select(positions.c.position).where(
    positions.c.name == sa.bindparam("claim_name")).with_for_update()
_MOVE = positions.update().where(positions.c.name == sa.bindparam("move_name")).values(
    position=sa.bindparam("move_to"), updated_at=sa.bindparam("move_at"))

Progress = Callable[[int], None]
"""Called with the number of store positions a batch advanced (for a progress bar)."""


@dataclass(frozen=True, slots=True)
class _Batch:
    events: list[CanonicalEvent]
    types: list[str]
    """Each event's type (its row's topic: no property call per event)."""
    last: int
    """Position of the last row read (whatever its type)."""
    full: bool
    head: int
    """The store's head just before the read."""


@dataclass(frozen=True, slots=True)
class _Work:
    """One batch for the projections that catch up together: positions ``(after, end]``."""

    after: int
    end: int
    events: list[CanonicalEvent]
    types: list[str]
    """Each event's type (read once, not per projection)."""
    present: frozenset[str]
    """The types in the batch: a projection with none of them only moves its position."""


_AHEAD = 2
"""Batches read ahead of the slowest projection of a group (bounds the memory held)."""


def _take(q: queue.Queue[_Work | None], closed: threading.Event) -> _Work | None:
    """The queue's next batch; None at its end: the reader's end marker, or, once the reader
    has closed the queues (``closed``: every put done before), the queue empty. The reader's
    closing never blocks on a full queue, so a second interrupt cannot leave a lane waiting."""
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if closed.is_set():  # one last look: a put may have come before ``closed``
                try:
                    return q.get_nowait()
                except queue.Empty:
                    return None


class _Reader:
    """The batches of one catch-up, in order. Rows are fetched here, or, once ``prefetch`` is
    called (a long catch-up on PostgreSQL), by a child process one batch ahead
    (``hub.store.prefetch``). If that process fails (it could not start, or it died), the
    reading goes on here from the same position: a warning, not a failed rebuild.

    Rows are read unfiltered by the global-position index (a topic filter in SQL makes
    PostgreSQL scan every later row for each batch) and filtered on their clear topic: only
    those of ``topics`` (all if empty) are decrypted and decoded."""

    def __init__(self, store: EventStore, batch_size: int, topics: frozenset[str]):
        self.store = store
        self.batch_size = batch_size
        self.topics = topics
        self.ahead: RowPrefetcher | None = None

    def prefetch(self, url: str, after: int) -> None:
        """Have a child process fetch from ``after`` on (if one cannot be started: a warning,
        and the reading stays here)."""
        try:
            self.ahead = RowPrefetcher(url, self.batch_size)
            self.ahead.request(after)
        except (OSError, StoreError) as exc:
            log.warning("row prefetch not started; reading in this process", after=after,
                        error=f"{type(exc).__name__}: {exc}")
            self.close()

    def read(self, after: int) -> _Batch:
        rows: list[Fields] | None = None
        if self.ahead is not None:
            try:  # (the next batch is fetched there while this one is decoded)
                head, rows = self.ahead.take(after)
            except StoreError as exc:
                log.warning("row prefetch stopped; reading in this process", after=after,
                            error=str(exc))
                self.close()
        if rows is None:
            head = self.store.max_position()  # everything up to here is committed and readable
            rows = fields(self.store.recorder.rows_after(after, self.batch_size))
        topics = self.topics
        mine = [r for r in rows if r[2] in topics] if topics else rows
        decode = self.store.decode
        return _Batch([decode(*r) for r in mine], [r[2] for r in mine],
                      rows[-1][0] if rows else after, len(rows) >= self.batch_size, head)

    def close(self) -> None:
        if self.ahead is not None:
            ahead, self.ahead = self.ahead, None
            ahead.close()


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


def _no_commit_wait(conn: sa.Connection) -> None:
    """PostgreSQL: this transaction's commit does not wait for its WAL flush. A server crash
    may lose the last few committed batches, rows and position together: the runner then
    applies them again (exactly once still holds); the read models are derived data."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")


#: Events per batch (and per read-model transaction) when none is given. PostgreSQL: 20,000,
#: a quarter of the round trips per event of 5,000 (each waits for the interpreter lock behind
#: the other threads): a rebuild of a million events took 49.3-50.4 s against 53.0-54.6 s, with
#: peak memory 376-407 MB against 272 MB. SQLite: 5,000, since the read models share the store's
#: one writer lock and a batch holds it for its transaction.
BATCH_SIZE = {"postgresql": 20_000, "sqlite": 5_000}

#: The statistics target of the runner's ANALYZE (``rebuild``, ``analyze``; PostgreSQL's
#: default is 100: a sample of 30,000 rows per table). What the planner lacks after a bulk load
#: is the tables' sizes, which ANALYZE counts whatever the target, and the spread of a few
#: values per column; 30 (9,000 rows, 30 most common values per column) gives both. The four
#: projections that catch up last end together, so their 30 tables' ANALYZE is the rebuild's
#: tail: at a million events 0.99 s of statements at 100 against 0.21 s at 25 (the six largest
#: tables). The next automatic ANALYZE of a table uses the server's own target.
ANALYZE_TARGET = 30


#: The batches a catch-up must have left after its first for its rows to be fetched by a child
#: process (``hub.store.prefetch``, PostgreSQL): starting one takes about half a second, a batch
#: of 20,000 rows about a third of a second to fetch here. At a million events the rebuild took
#: 42.0 s with it against 48.1 s without (the reading thread's fetching, two fifths of its
#: work, moves to another core).
PREFETCH_MIN_BATCHES = 4


class ProjectionRunner:
    def __init__(self, store: EventStore, engine: sa.Engine, projections: Sequence[Projection],
                 *, batch_size: int | None = None, clock: Callable[[], datetime] = _now,
                 prefetch: bool = True):
        """``prefetch``: a catch-up of many batches on PostgreSQL has its rows fetched by a
        child process (``hub.store.prefetch``; when the store was opened from a URL)."""
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ProjectionError(f"duplicate projection names: {names}")
        self.store = store
        self.engine = engine
        self.projections = list(projections)
        if batch_size is not None and batch_size < 1:
            raise ProjectionError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = batch_size or BATCH_SIZE[engine.dialect.name]
        self.clock = clock
        self._pg = engine.dialect.name == "postgresql"
        self.prefetch = prefetch
        self._positions_exist = False
        """``projection_positions`` was seen or created (it is never dropped)."""
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
            # (the table is looked for in the catalog only until it has been seen: the
            # follower and the API ask for positions on every run and request)
            if not self._positions_exist:
                if not sa.inspect(conn).has_table(positions.name):
                    return {}
                self._positions_exist = True
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
            create_all(conn, positions_metadata)
        for p in self.select(names):
            with self._write() as conn, conn.begin():
                schema_lock(conn)  # (another process may be making the same tables)
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
            create_all(conn, positions_metadata)
        selected = self.select(names)
        # PostgreSQL: the projections' tables are dropped and made at once, on connections of
        # their own (the server works on the catalog while this process waits)
        with ThreadPoolExecutor(len(selected) if self._pg else 1, "projection-reset") as pool:
            for f in [pool.submit(self._reset_alone, p) for p in selected]:
                f.result()

    def _reset_alone(self, p: Projection) -> None:
        with self._write() as conn, conn.begin():
            row = conn.execute(sa.select(positions.c.name).where(positions.c.name == p.name)
                               .with_for_update()).first()
            if row is None:  # nothing locked: another process may be making the same tables
                schema_lock(conn)  # (no row lock held: the order of ``prepare`` is kept)
            self._reset(conn, p)

    # --- catching up ------------------------------------------------------------------------

    def run(self, names: Sequence[str] | None = None, *, until: int | None = None,
            progress: Progress | None = None,
            caught_up: Callable[[Projection], None] | None = None) -> int:
        """Bring the projections up to the store's head (or ``until``); returns the number of
        events read. Call ``prepare`` first (``follow`` and the CLI do).

        The projections at the lowest position catch up together (``_catch_up``) until they
        reach the next projection's position, where they merge with it, or the head.
        ``caught_up(projection)`` is called (in the thread that applied its batches) when a
        projection has reached the head or ``until``."""
        selected = self.select(names)
        read = 0
        while True:
            stored = self.positions()
            missing = [p.name for p in selected if p.name not in stored]
            if missing:
                raise ProjectionError(f"projection not prepared: {missing}")
            pos = {p.name: stored[p.name][1] for p in selected}
            head = self.store.max_position()
            if until is not None:  # (an ``until`` past the head stops at the head)
                head = min(head, until)
            lowest = min(pos.values())
            if lowest >= head:
                return read
            group = [p for p in selected if pos[p.name] == lowest]
            ahead = min((v for v in pos.values() if v > lowest), default=None)
            if ahead is not None and (until is None or ahead < until):  # merge there
                read += self._catch_up(group, lowest, ahead, progress, None)
            else:
                read += self._catch_up(group, lowest, until, progress, caught_up)

    def _catch_up(self, group: Sequence[Projection], start: int, until: int | None,
                  progress: Progress | None,
                  caught_up: Callable[[Projection], None] | None) -> int:
        """Feed ``group`` (all at ``start``) batch after batch up to ``until`` or the head;
        returns the number of events read.

        This thread reads (decrypts, decodes) batches; each projection applies them in order
        in its own thread, in a transaction per batch, up to ``_AHEAD`` batches behind the
        reader: while one projection waits on the server (psycopg releases the GIL) the others
        and the reader run, and none waits for the slowest at the end of a batch. (SQLite: one
        thread applies the batch to each projection in turn; the database has one writer.)
        A projection that fails, or that another runner moved, stops the reading; the others
        finish the batches already read. The first failure is raised.

        When the first batch is also the last (a follower's usual run: a few new events), one
        thread applies it to each projection in turn, and those with no events of their types
        move in one statement: threads per projection pay only when there are batches to
        overlap."""
        topics = frozenset() if not all(p.topics for p in group) else frozenset(
            t for p in group for t in p.topics)
        reader = _Reader(self.store, self.batch_size, topics)
        batch: _Batch | None = reader.read(start)
        parallel = len(group) > 1 and self._pg and batch.full
        url = self.store.recorder.url
        left_to_read = (batch.head if until is None else min(batch.head, until)) - batch.last
        fetch_there = (parallel and self.prefetch and url is not None
                       and left_to_read >= PREFETCH_MIN_BATCHES * self.batch_size)
        lanes = [[p] for p in group] if parallel else [list(group)]
        queues: list[queue.Queue[_Work | None]] = [queue.Queue(_AHEAD) for _ in lanes]
        halt = threading.Event()
        closed = threading.Event()  # no more batches: a lane ends once its queue is empty
        errors: list[BaseException] = []
        left: dict[int, int] = {}  # batch end -> lanes yet to apply it (for ``progress``)
        lock = threading.Lock()

        def apply_lane(projections: list[Projection], q: queue.Queue[_Work | None]) -> None:
            live = projections
            wanted = {p.name: frozenset(p.topics) for p in projections}
            ended = False  # the reader's end of the queue taken
            try:
                with self._write() as conn:  # one connection, a transaction per batch
                    while (work := _take(q, closed)) is not None:
                        if live:
                            live = self._apply_batch(conn, live, wanted, work)
                            if len(live) < len(projections):
                                halt.set()
                        with lock:
                            left[work.end] -= 1
                            if left[work.end] == 0:
                                del left[work.end]
                                if progress:
                                    progress(work.end - work.after)
                    ended = True
            except BaseException as exc:  # raised by the reading thread, after the others
                errors.append(exc)
                halt.set()
                while not ended:  # the reader never waits on this lane
                    ended = _take(q, closed) is None
                return
            if caught_up and not halt.is_set():
                for p in live:
                    caught_up(p)

        read = 0
        # No cyclic garbage collection meanwhile: every batch allocates hundreds of thousands
        # of short-lived objects (freed by reference counting, in no cycles), and collections
        # triggered by them would traverse the live rows and events again and again.
        with gc_paused(), ThreadPoolExecutor(len(lanes), "projection-apply") as pool:
            lane_done = [pool.submit(apply_lane, ps, q)
                         for ps, q in zip(lanes, queues, strict=True)]
            try:
                if fetch_there:  # (in the ``try``: whatever happens, ``close`` ends the child)
                    reader.prefetch(url, batch.last)  # type: ignore[arg-type]
                after = start
                while not halt.is_set():
                    if batch is None:
                        batch = reader.read(after)
                    end = batch.last if batch.full else max(batch.head, batch.last)
                    if until is not None:
                        end = min(end, until)
                    if end <= after:  # nothing after the last batch
                        break
                    events, types = batch.events, batch.types
                    if end < batch.last:  # (``until`` cuts the batch)
                        kept = [(e.position or 0) <= end for e in events]
                        events = list(compress(events, kept))
                        types = list(compress(types, kept))
                    work = _Work(after, end, events, types, frozenset(types))
                    with lock:
                        left[end] = len(lanes)
                    for q in queues:
                        q.put(work)
                    read += len(events)
                    after = end
                    if not batch.full or (until is not None and end >= until):
                        break
                    batch = None
                    del events, types, work
            finally:
                closed.set()  # first: nothing below may block (a second Ctrl-C lands anywhere)
                for q in queues:  # wake the lanes now (a full queue's sees ``closed`` when empty)
                    with suppress(queue.Full):
                        q.put_nowait(None)
                reader.close()
                for f in lane_done:
                    f.result()
        if errors:
            raise errors[0]
        return read

    def _apply_batch(self, conn: sa.Connection, projections: list[Projection],
                     wanted: dict[str, frozenset[str]], work: _Work) -> list[Projection]:
        """Apply one batch to each projection (its events of its topics); those without any
        only move their position, in one statement. Returns the projections still at the
        batch's end (not moved by another runner meanwhile)."""
        moved: list[Projection] = []
        idle: list[Projection] = []
        for p in projections:
            topics = wanted[p.name]
            if not topics:
                mine = work.events
            elif topics.isdisjoint(work.present):
                mine = []
            else:
                mine = list(compress(work.events, map(topics.__contains__, work.types)))
            if not mine:
                idle.append(p)
            elif self._apply(conn, p, work.after, work.end, mine):
                moved.append(p)
        if idle:
            advanced = self._advance(conn, [p.name for p in idle], work.after, work.end)
            moved += [p for p in idle if p.name in advanced]
        return [p for p in projections if p in moved]

    def _advance(self, conn: sa.Connection, names: Sequence[str], expected: int,
                 end: int) -> list[str]:
        """Move projections that had no events in ``(expected, end]`` to ``end`` (those another
        runner moved already are left alone); returns the names moved."""
        with conn.begin():
            _no_commit_wait(conn)
            moved = conn.execute(positions.update().where(positions.c.name.in_(names),
                                                          positions.c.position == expected)
                                 .values(position=end, updated_at=self.clock())
                                 .returning(positions.c.name)).scalars().all()
        for name in names:
            if name in moved and name in self._fresh:
                self._fresh[name] = (end, self._fresh[name][1])
            else:
                self._fresh.pop(name, None)
        return list(moved)

    def _apply(self, conn: sa.Connection, p: Projection, expected: int, end: int,
               mine: Sequence[CanonicalEvent]) -> bool:
        """Handle a projection's events of ``(expected, end]`` and move its position to ``end``,
        in one transaction. False if another runner had moved it from ``expected``."""
        seen = self._fresh_scope(p.name, expected)
        self._fresh.pop(p.name, None)  # back only once this batch is committed
        with conn.begin():
            _no_commit_wait(conn)
            current = conn.execute(_CLAIM, {"claim_name": p.name}).scalar()
            if current != expected:  # another runner got there first: nothing to do
                log.info("projection moved by another runner", projection=p.name)
                return False
            try:
                with fresh_tables(seen):
                    p.handle(mine, conn)
            except Exception as exc:
                log.error("projection batch failed", projection=p.name, after=expected,
                          until=end, error=type(exc).__name__)
                raise ProjectionError(f"{p.name}: batch after position {expected} failed: "
                                      f"{type(exc).__name__}: {exc}") from exc
            conn.execute(_MOVE, {"move_name": p.name, "move_to": end, "move_at": self.clock()})
        if seen is not None:
            self._fresh[p.name] = (end, seen)
        return True

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
        """Drop, recreate and refill the projections from the first event. The planner's
        statistics of a projection's tables are refreshed as soon as it is done (while the
        others still work)."""
        self.reset(names)
        selected = self.select(names)
        if self._pg:  # see _fresh_scope
            self._fresh.update({p.name: (0, {}) for p in selected})
        started = time.perf_counter()
        with self._analyzer() as analyze:
            try:
                n = self.run(names, progress=progress, caught_up=analyze)
            finally:
                for p in selected:
                    self._fresh.pop(p.name, None)
            for p in selected:  # those that had nothing to catch up
                analyze(p)
        log.info("projections rebuilt", projections=[p.name for p in selected],
                 events=n, seconds=round(time.perf_counter() - started, 3))
        return n

    def analyze(self, names: Sequence[str] | None = None) -> None:
        """Refresh the query planner's statistics of the projections' tables (after a bulk
        load the planner would otherwise guess, and pick scans over index lookups)."""
        with self._analyzer() as analyze:
            for p in self.select(names):
                analyze(p)

    @contextmanager
    def _analyzer(self) -> Iterator[Callable[[Projection], None]]:
        """A function that has a projection's tables analyzed (once; in the background on
        PostgreSQL: two tables at a time, on connections of their own); all are done when the
        block ends."""
        done: set[str] = set()
        pending: list[Future[None]] = []
        with ThreadPoolExecutor(2 if self._pg else 1, "projection-analyze") as pool:

            def analyze(p: Projection) -> None:
                if p.name not in done:
                    done.add(p.name)
                    pending.extend(pool.submit(self._analyze, t.name)
                                   for t in p.metadata.sorted_tables)

            yield analyze
            for f in pending:
                f.result()

    def _analyze(self, table: str) -> None:
        with self.engine.connect() as conn, conn.begin():
            if self._pg:
                conn.exec_driver_sql(f"SET LOCAL default_statistics_target = {ANALYZE_TARGET}")
            conn.exec_driver_sql(f'ANALYZE "{table}"')

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
