"""The projection runner when it must stop: ``until`` past the head, interrupts and failures
while the reader and the lanes wait on each other (threaded catch-up on PostgreSQL)."""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

import projections.runner as runner_module
from hub.domain import events as ev
from hub.store.testing import action
from projections.base import Projection
from projections.db import readmodel_engine
from projections.rows import upsert
from projections.runner import ProjectionError, ProjectionRunner, positions
from tests.conftest import make_store
from tests.projections import scenario as sc


class Count(Projection):
    """Counts events per type (doubles or losses show up as wrong counts)."""

    version = 1
    topics = ()

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__()

    def define_tables(self, metadata: sa.MetaData) -> None:
        self.table = sa.Table(f"{self.name}_counts", metadata,
                              sa.Column("event_type", sa.String(64), primary_key=True),
                              sa.Column("n", sa.Integer, nullable=False))

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        have = dict(conn.execute(sa.select(self.table.c.event_type, self.table.c.n)).all())
        counts: dict[str, int] = {}
        for e in events:
            counts[e.event_type] = counts.get(e.event_type, 0) + 1
        upsert(conn, self.table, [{"event_type": k, "n": have.get(k, 0) + v}
                                  for k, v in counts.items()])

    def total(self, engine: sa.Engine) -> int:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.coalesce(sa.func.sum(self.table.c.n), 0))
                                ).scalar()


class Gate(Count):
    """A count that waits in its first batch until released (then maybe fails)."""

    def __init__(self, name: str, *, fail: bool = False) -> None:
        super().__init__(name)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail = fail

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        first = not self.entered.is_set()
        self.entered.set()
        if first:
            self.release.wait(60)
            if self.fail:
                raise RuntimeError("gate failed")
        super().handle(events, conn)


def stored_positions(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(positions.c.name, positions.c.position)).all())


def _events(n: int) -> list[ev.CanonicalEvent]:
    return [action("dubu:S-1", sc.CHILD, i, record_id=f"R-{i}") for i in range(n)]


def _blocked_in(thread_id: int, function: str, callee: str) -> bool:
    """The thread's innermost frames: ``callee`` (or deeper) called from ``function``."""
    frame = sys._current_frames().get(thread_id)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return function in names and callee in names[:names.index(function)]


def _wait_for(cond, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def pg(pg_url):
    store = make_store(pg_url)
    engine = readmodel_engine(pg_url)
    yield store, engine
    engine.dispose()
    store.close()


def test_run_until_past_the_head_stops_at_the_head(store, engine):
    """``run(until=...)`` brings the projections to ``until`` or the head, whichever is first.
    Past the head it looped for ever: each loop caught up nothing (the head was reached), and
    ``lowest >= head`` compared with ``until`` instead of the head."""
    store.append(sc.family())
    head = store.max_position()
    count = Count("count")
    runner = ProjectionRunner(store, engine, [count], batch_size=5)
    runner.prepare()
    calls = 0
    positions_of = runner.positions

    def counted():  # a bound on the loop, so that the bug fails rather than hangs
        nonlocal calls
        calls += 1
        if calls > 50:
            raise RuntimeError("run() keeps looping at the head")
        return positions_of()

    runner.positions = counted  # type: ignore[method-assign]
    assert runner.run(until=head + 100) == head
    assert stored_positions(engine)["count"] == head
    assert count.total(engine) == head


def test_a_second_interrupt_while_the_reader_closes_the_lanes_does_not_hang(pg, monkeypatch):
    """Ctrl-C during a threaded catch-up: the reader stops and closes the lanes' queues (the
    lanes finish the batches already read). The closing put blocks while a slow lane's queue is
    full; a second Ctrl-C there left the other lanes without their end of queue: they waited
    on it for ever, and so did the executor's shutdown (the command could not be stopped).

    The watchdog below ends the lanes itself when they hang (and fails the test)."""
    store, engine = pg
    store.append(_events(60))
    made: list[queue.Queue] = []

    class Recorded(queue.Queue):
        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(maxsize)
            made.append(self)

    monkeypatch.setattr(runner_module, "queue", SimpleNamespace(Queue=Recorded, Empty=queue.Empty,
                                                               Full=queue.Full))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    gate, other = Gate("gate"), Count("other")
    runner = ProjectionRunner(store, engine, [gate, other], batch_size=5)
    runner.prepare()
    main = threading.main_thread().ident
    rescued: list[bool] = []
    watch_errors: list[BaseException] = []

    def lanes_alive() -> bool:
        return any(t.name.startswith("projection-apply") and t.is_alive()
                   for t in threading.enumerate())

    def watchdog() -> None:
        try:
            gate.entered.wait(20)
            # the reader waits to put a batch into the slow lane's full queue
            _wait_for(lambda: _blocked_in(main, "_catch_up", "put"))
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(0.5)  # the reader is now closing the queues (or waiting for the lanes)
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(0.3)
            gate.release.set()
            try:
                _wait_for(lambda: not lanes_alive(), timeout=15)
            except AssertionError:  # the lanes hang: end them, so that the test can fail
                rescued.append(True)
                for q in made:
                    q.put_nowait(None)
        except BaseException as exc:
            watch_errors.append(exc)
            gate.release.set()

    helper = threading.Thread(target=watchdog, daemon=True)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        gate.release.set()
        helper.join(60)
    assert not watch_errors
    assert not rescued, "the lanes waited for ever for the end of their queue"
    # the batches read were applied whole, each once
    at = stored_positions(engine)
    assert gate.total(engine) == at["gate"] and other.total(engine) == at["other"]



def _run_in_thread(runner: ProjectionRunner
                   ) -> tuple[threading.Thread, list[BaseException | int]]:
    """``runner.run()`` in a thread of its own; its outcome (events read, or the exception) is
    appended to the list when it ends."""
    outcome: list[BaseException | int] = []

    def go() -> None:
        try:
            outcome.append(runner.run())
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, outcome


def test_a_lane_failing_while_the_reader_waits_on_its_full_queue(pg):
    """The failing lane drains its queue (the reader never blocks on it), the other lane
    finishes the batches already read, and the failure is raised."""
    store, engine = pg
    store.append(_events(60))
    gate, other = Gate("gate", fail=True), Count("other")
    runner = ProjectionRunner(store, engine, [gate, other], batch_size=5)
    runner.prepare()
    t, outcome = _run_in_thread(runner)
    gate.entered.wait(20)
    time.sleep(0.3)  # the reader fills the gate's queue and waits on it
    gate.release.set()
    t.join(30)
    assert not t.is_alive(), "the reader or a lane hangs"
    (result,) = outcome
    assert isinstance(result, ProjectionError) and "gate failed" in str(result)
    at = stored_positions(engine)
    assert at["gate"] == 0 and gate.total(engine) == 0
    assert at["other"] > 0 and at["other"] % 5 == 0 and other.total(engine) == at["other"]
    assert at["other"] < store.max_position()  # the reading stopped


def test_a_reader_failure_ends_the_lanes_and_is_raised(pg, monkeypatch):
    """The store failing under the reader: the lanes apply what was read, end, and the error
    is raised (no thread left waiting)."""
    store, engine = pg
    store.append(_events(60))
    a, b = Count("a"), Count("b")
    runner = ProjectionRunner(store, engine, [a, b], batch_size=5)
    runner.prepare()
    rows_after = store.recorder.rows_after
    reads = 0

    def failing(after: int, limit: int, topics=()):  # noqa: ANN001, ANN202
        nonlocal reads
        reads += 1
        if reads == 4:
            raise OSError("store went away")
        return rows_after(after, limit, topics)

    monkeypatch.setattr(store.recorder, "rows_after", failing)
    t, outcome = _run_in_thread(runner)
    t.join(30)
    assert not t.is_alive(), "the reader or a lane hangs"
    (result,) = outcome
    assert isinstance(result, OSError)
    assert stored_positions(engine) == {"a": 15, "b": 15}
    assert a.total(engine) == b.total(engine) == 15
    monkeypatch.setattr(store.recorder, "rows_after", rows_after)
    assert runner.run() == 45
    assert a.total(engine) == b.total(engine) == 60
