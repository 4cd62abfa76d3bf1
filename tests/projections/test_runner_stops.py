"""The projection runner when it must stop: ``until`` past the head, interrupts and failures
while the reader and the lanes wait on each other (threaded catch-up on PostgreSQL)."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

import projections.runner as runner_module
from hub.domain import events as ev
from hub.store.contract import StoreError
from hub.store.prefetch import RowPrefetcher, fields
from hub.store.testing import action
from projections.base import Projection
from projections.db import readmodel_engine
from projections.registry import build_projections
from projections.rows import upsert
from projections.runner import ProjectionError, ProjectionRunner, positions
from tests.conftest import make_store
from tests.projections import scenario as sc
from tests.projections.conftest import MODULES, dump


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
    # (rows fetched in this process: a child process's failure is the next test's)
    runner = ProjectionRunner(store, engine, [a, b], batch_size=5, prefetch=False)
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


@pytest.fixture
def prefetchers(monkeypatch) -> list[RowPrefetcher]:
    """Every RowPrefetcher made meanwhile (the real class: only its making is noted)."""
    made: list[RowPrefetcher] = []
    real_init = RowPrefetcher.__init__

    def noting_init(self, url, limit):  # noqa: ANN001, ANN202
        made.append(self)
        real_init(self, url, limit)

    monkeypatch.setattr(RowPrefetcher, "__init__", noting_init)
    return made


class KillsPrefetch(Count):
    """A count that kills the row prefetch process in its third batch."""

    def __init__(self, name: str, prefetchers: list[RowPrefetcher]) -> None:
        super().__init__(name)
        self.batches = 0
        self.prefetchers = prefetchers

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        self.batches += 1
        if self.batches == 3:
            (p,) = self.prefetchers
            p.process.kill()
            p.process.wait(10)
        super().handle(events, conn)


def test_rows_fetched_by_a_child_process_project_as_rows_fetched_here(pg, prefetchers):
    """A catch-up of many batches on PostgreSQL reads through the prefetch process (one is
    started, and it has ended when the run returns): the read models equal those of an
    in-process read."""
    store, engine = pg
    store.append(sc.family() + _events(40))
    projections = build_projections(store.person_key, MODULES)
    ProjectionRunner(store, engine, projections, batch_size=4, prefetch=False).rebuild()
    assert prefetchers == []
    here = dump(engine, projections)
    ProjectionRunner(store, engine, projections, batch_size=4).rebuild()
    (p,) = prefetchers
    assert p.answered == 15  # every batch after the first (63 events, 4 a batch) came from it
    assert p.process.returncode == 0  # asked to stop, not killed
    assert dump(engine, projections) == here


def test_a_prefetch_process_that_dies_leaves_the_reading_to_this_process(pg, prefetchers):
    """The child process killed mid-run: the reader goes on from where it was, in this
    process; every event is applied once."""
    store, engine = pg
    store.append(_events(60))
    a, b = KillsPrefetch("a", prefetchers), Count("b")
    runner = ProjectionRunner(store, engine, [a, b], batch_size=5)
    runner.prepare()
    assert runner.run() == 60
    assert a.batches == 12 and prefetchers[0].process.returncode == -signal.SIGKILL
    assert stored_positions(engine) == {"a": 60, "b": 60}
    assert a.total(engine) == b.total(engine) == 60


def test_a_prefetch_process_that_cannot_open_the_store_leaves_the_reading_to_this_process(
        pg, prefetchers):
    """A child that cannot open the store (here: a URL it cannot use) fails its first fetch:
    the catch-up reads here instead and completes."""
    store, engine = pg
    store.append(_events(60))
    a, b = Count("a"), Count("b")
    runner = ProjectionRunner(store, engine, [a, b], batch_size=5)
    runner.prepare()
    real = store.recorder.url
    store.recorder.url = "mysql://127.0.0.1/glasplade"
    try:
        assert runner.run() == 60
    finally:
        store.recorder.url = real
    assert a.total(engine) == b.total(engine) == 60
    (p,) = prefetchers
    assert p.answered == 0 and p.process.returncode is not None  # it served nothing, ended


def test_a_prefetch_process_that_cannot_be_started_leaves_the_reading_to_this_process(
        pg, prefetchers, monkeypatch):
    """No interpreter to start: the catch-up reads here and completes."""
    store, engine = pg
    store.append(_events(60))
    a, b = Count("a"), Count("b")
    runner = ProjectionRunner(store, engine, [a, b], batch_size=5)
    runner.prepare()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    assert runner.run() == 60
    assert len(prefetchers) == 1 and a.total(engine) == b.total(engine) == 60


def test_no_prefetch_process_when_until_is_near(pg, prefetchers):
    """A catch-up that stops a few batches in (``until``: where it merges with another
    projection) is not worth a child process, however far the head is."""
    store, engine = pg
    store.append(_events(60))
    a, b = Count("a"), Count("b")
    runner = ProjectionRunner(store, engine, [a, b], batch_size=5)
    runner.prepare()
    assert runner.run(until=15) == 15
    assert prefetchers == []
    assert runner.run() == 45 and len(prefetchers) == 1


def test_the_prefetch_child_gets_no_hub_settings_from_the_environment(pg, monkeypatch):
    """Keys and URLs in the hub's environment stay in this process."""
    store, _ = pg
    monkeypatch.setenv("GLASPLADE_DATA_KEY", "c2VjcmV0LWRhdGEta2V5")
    monkeypatch.setenv("GLASPLADE_STORE_URL", "postgresql://hub:secret@db/glasplade")
    p = RowPrefetcher(store.recorder.url, 5)
    try:
        p.take(0)  # (answered: the child is up)
        environ = Path(f"/proc/{p.process.pid}/environ").read_bytes().split(b"\0")
    finally:
        p.close()
    names = {e.split(b"=", 1)[0] for e in environ if e}
    assert b"PATH" in names and b"PYTHONPATH" in names
    assert not [n for n in names if n.startswith(b"GLASPLADE_")]


def test_the_prefetch_child_reports_its_failure_as_a_store_error():
    """What the reader falls back on: the child's failure reaches the parent as a StoreError
    with the cause, and the child ends."""
    p = RowPrefetcher("mysql://127.0.0.1/glasplade", 5)
    try:
        with pytest.raises(StoreError, match="prefetch process failed: StoreError: not a "
                           "PostgreSQL URL"):
            p.take(0)
    finally:
        p.close()
    assert p.process.returncode == 0


def test_a_script_without_a_main_guard_runs_once_with_a_prefetch_process(pg, tmp_path):
    """The child is a fresh interpreter (not a ``multiprocessing`` one, which would import
    the script again): a script's top level runs once, and the child answers."""
    store, _ = pg
    store.append(_events(7))
    mark = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from hub.store.prefetch import RowPrefetcher\n"
        f"open({str(mark)!r}, 'a').write('ran\\n')\n"
        f"p = RowPrefetcher({store.recorder.url!r}, 5)\n"
        "head, rows = p.take(0)\n"
        "p.close()\n"
        "print(head, [r[0] for r in rows])\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, check=True)
    assert mark.read_text() == "ran\n"
    assert done.stdout.split("[")[1] == "1, 2, 3, 4, 5]\n"


def test_fields_are_the_rows_values_with_repeats_as_one_object(pg):
    """What the child sends: each row's position, stream id, topic, sealed payload and recorded
    time, a recorded time and a topic repeated in the batch as one object (pickled once)."""
    store, _ = pg
    store.append(_events(6))
    store.append([action("dubu:S-2", sc.CHILD, 9, record_id="R-other")])
    rows = store.recorder.rows_after(0, 100)
    got = fields(rows)
    assert got == [(r.position, r.originator_id.bytes, r.topic, r.state, r.recorded_at)
                   for r in rows] and len(got) == 7
    assert len({id(r[4]) for r in got}) == len({r.recorded_at for r in rows}) == 2
    assert len({id(r[2]) for r in got}) == len({r.topic for r in rows})


def test_rows_received_are_kept_when_asking_for_the_next_batch_fails(pg, monkeypatch):
    """``take`` returns the rows it received even if requesting the next batch fails (they
    are not fetched again); the failure shows at the next ``take``."""
    store, _ = pg
    store.append(_events(12))
    p = RowPrefetcher(store.recorder.url, 5)
    try:
        real_request = p.request
        calls: list[int] = []

        def request(after: int) -> None:
            calls.append(after)
            if len(calls) > 1:
                p.process.kill()
                p.process.wait(10)
            real_request(after)

        monkeypatch.setattr(p, "request", request)
        head, rows = p.take(0)
        assert (head, [r[0] for r in rows], calls) == (12, [1, 2, 3, 4, 5], [0, 5])
        with pytest.raises(StoreError, match="prefetch process ended"):
            p.take(5)
    finally:
        p.close()
