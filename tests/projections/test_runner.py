"""The runner: exactly once across crashes, rebuild equals live, version bumps, concurrency,
follow mode (polling and PostgreSQL LISTEN). Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence

import pytest
import sqlalchemy as sa

from hub.domain import events as ev
from hub.store.testing import action
from hub.synthetic.generate import generate
from hub.synthetic.to_events import municipality_events
from projections.base import Projection
from projections.citizen_overview import CitizenOverviewProjection
from projections.db import readmodel_engine
from projections.registry import build_projections
from projections.rows import upsert
from projections.runner import ProjectionError, ProjectionRunner, positions
from tests import pg
from tests.projections import scenario as sc
from tests.projections.conftest import MODULES, dump, make_runner


class Counter(Projection):
    """Counts events per type: doubles or losses show up as wrong counts."""

    name = "counter"
    version = 1
    topics = ()
    extra_column = False

    def define_tables(self, metadata: sa.MetaData) -> None:
        cols = [sa.Column("event_type", sa.String(64), primary_key=True),
                sa.Column("n", sa.Integer, nullable=False)]
        if self.extra_column:
            cols.append(sa.Column("last_position", sa.BigInteger))
        self.table = sa.Table("counter_counts", metadata, *cols)

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        counts: dict[str, int] = {}
        for e in events:
            counts[e.event_type] = counts.get(e.event_type, 0) + 1
        have = dict(conn.execute(sa.select(self.table.c.event_type, self.table.c.n)).all())
        rows = []
        for k, v in counts.items():
            row = {"event_type": k, "n": have.get(k, 0) + v}
            if self.extra_column:
                row["last_position"] = max(e.position for e in events if e.event_type == k)
            rows.append(row)
        upsert(conn, self.table, rows)


class CounterV2(Counter):
    version = 2
    extra_column = True


class Explodes(CitizenOverviewProjection):
    """Writes its rows, then fails in the middle of the batch holding ``position``."""

    def __init__(self, person_key_of, position: int):
        super().__init__(person_key_of)
        self.position = position

    def handle(self, events, conn) -> None:
        before = [e for e in events if e.position < self.position]
        super().handle(before, conn)
        if any(e.position == self.position for e in events):
            raise RuntimeError("power cut")
        super().handle([e for e in events if e.position >= self.position], conn)


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT event_type, n FROM counter_counts")).all())


def stored_positions(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(positions.c.name, positions.c.position)).all())


def test_a_crash_mid_batch_leaves_no_rows_and_no_position(store, engine):
    events = sc.family()
    store.append(events)
    good = build_projections(store.person_key, MODULES)
    runner = make_runner(store, engine, batch_size=10, projections=good)
    runner.run(until=10)
    before = dump(engine, good)
    assert stored_positions(engine)["citizen_overview"] == 10
    # the next batch (11-20) crashes at 15, after writing rows for 11-14
    boom = Explodes(store.person_key, 15)
    crashing = ProjectionRunner(store, engine, [boom], batch_size=10)
    with pytest.raises(ProjectionError, match="batch after position 10 failed: RuntimeError"):
        crashing.run()
    assert stored_positions(engine)["citizen_overview"] == 10
    assert dump(engine, [boom]) == {k: v for k, v in before.items()
                                    if k.startswith("citizen_overview")}
    # a re-run (the crash is gone) applies the batch once
    runner.run()
    live = dump(engine, good)
    assert stored_positions(engine) == {p.name: store.max_position() for p in good}
    runner.rebuild()
    assert dump(engine, good) == live


def test_rebuild_equals_live_while_appending(store, engine):
    """Follow live while events are appended in increments, then rebuild and compare every row."""
    m = generate(150, seed=11)
    events = list(municipality_events(m, time_ordered=True)) + sc.family()
    projections = build_projections(store.person_key, MODULES)
    runner = make_runner(store, engine, batch_size=37, projections=projections)
    stop = threading.Event()
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            runner.follow(stop=stop, interval=0.01)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        step = len(events) // 6 + 1
        for i in range(0, len(events), step):
            store.append(events[i:i + step])
            time.sleep(0.05)
    finally:
        stop.set()
        follower.join(30)
    assert not errors
    runner.run()
    live = dump(engine, projections)
    assert sum(len(rows) for rows in live.values()) > 500
    assert stored_positions(engine) == {p.name: store.max_position() for p in projections}
    runner.rebuild()
    assert dump(engine, projections) == live
    # a fresh runner with a different batch size rebuilds the same rows too
    make_runner(store, engine, batch_size=1000, projections=projections).rebuild()
    assert dump(engine, projections) == live


def test_version_bump_rebuilds_with_the_new_schema(store, engine):
    store.append(sc.family())
    make_runner(store, engine, projections=[Counter()]).run()
    n = len(sc.family())
    assert sum(counts(engine).values()) == n
    v2 = ProjectionRunner(store, engine, [CounterV2()])
    (status,) = v2.status()
    assert status.needs_rebuild and status.stored_version == 1 and status.version == 2
    assert v2.prepare() == ["counter"]
    assert counts(engine) == {} and stored_positions(engine)["counter"] == 0
    v2.run()
    assert sum(counts(engine).values()) == n
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT max(last_position) FROM counter_counts")).scalar() \
            == store.max_position()
    assert v2.prepare() == []  # same version again: nothing to do
    (status,) = v2.status()
    assert not status.needs_rebuild and status.lag == 0


def test_missing_tables_are_rebuilt_not_left_half(store, engine):
    store.append(sc.family())
    runner = make_runner(store, engine, projections=[Counter()])
    runner.run()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE counter_counts"))
    assert runner.prepare() == ["counter"]
    runner.run()
    assert sum(counts(engine).values()) == len(sc.family())


def test_two_runners_at_once_apply_each_event_once(store, store_url):
    for i in range(5):
        store.append(sc.family()[i * 4:(i + 1) * 4] if i < 4 else sc.family()[16:])
    engines = [readmodel_engine(store_url) for _ in range(2)]
    try:
        runners = [make_runner(store, e, batch_size=2, projections=[Counter()]) for e in engines]
        errors: list[BaseException] = []

        def go(r: ProjectionRunner) -> None:
            try:
                r.run()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=go, args=(r,)) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        assert sum(counts(engines[0]).values()) == len(sc.family())
    finally:
        for e in engines:
            e.dispose()


def test_a_rebuild_while_another_runner_catches_up_gives_the_same_rows(store, store_url):
    """A rebuild on PostgreSQL skips look-ups of rows it has not written itself, which holds
    only while no other runner moves the projection: when one does (here a second runner with
    another batch size, as a server's follower would), the rebuild must notice and look rows
    up again, so the tables end as a clean rebuild leaves them."""
    store.append(list(municipality_events(generate(120, seed=5), time_ordered=True)))
    projections = build_projections(store.person_key, MODULES)
    engines = [readmodel_engine(store_url) for _ in range(2)]
    try:
        clean = make_runner(store, engines[0], batch_size=50, projections=projections)
        clean.rebuild()
        expected = dump(engines[0], projections)
        errors: list[BaseException] = []
        rebuilder = make_runner(store, engines[0], batch_size=50, projections=projections)
        other = make_runner(store, engines[1], batch_size=13,
                            projections=build_projections(store.person_key, MODULES))

        def catch_up() -> None:
            try:
                for _ in range(40):
                    other.run()
                    time.sleep(0.005)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        helper = threading.Thread(target=catch_up)
        helper.start()
        rebuilder.rebuild()
        helper.join(60)
        assert not errors
        rebuilder.run()
        assert dump(engines[0], projections) == expected
    finally:
        for e in engines:
            e.dispose()


def test_status_selection_and_errors(store, engine):
    store.append(sc.family())
    runner = make_runner(store, engine, projections=[Counter()])
    (s,) = runner.status()
    assert (s.position, s.head, s.lag) == (0, store.max_position(), store.max_position())
    runner.run(until=5)
    assert runner.status()[0].position == 5
    with pytest.raises(ProjectionError, match="unknown projection"):
        runner.run(["nope"])
    with pytest.raises(ProjectionError, match="duplicate"):
        ProjectionRunner(store, engine, [Counter(), Counter()])
    with pytest.raises(ProjectionError, match="not prepared"):
        ProjectionRunner(store, engine, [CitizenOverviewProjection(store.person_key)]).run()


class PersonCounter(Counter):
    """A Counter of two event types only (a topic filter on the runner's side)."""

    name = "person_counter"
    topics = ("PersonRegistered", "PersonRelationChanged")

    def define_tables(self, metadata: sa.MetaData) -> None:
        self.table = sa.Table("person_counter_counts", metadata,
                              sa.Column("event_type", sa.String(64), primary_key=True),
                              sa.Column("n", sa.Integer, nullable=False))


def test_a_batch_cut_by_until_gives_each_projection_its_events_up_to_there(store, engine):
    """``run(until=k)`` inside one batch: the batch is cut at ``k`` (events and their types
    alike), every projection gets exactly its events of positions ``1..k``, and the next run
    the rest."""
    store.append(sc.family())
    events = store.read(0, 1000)
    until = next(e.position for e in events if e.event_type == "PersonRelationChanged")
    every, persons = Counter(), PersonCounter()
    runner = make_runner(store, engine, batch_size=1000, projections=[every, persons])

    def expected(upto: int, topics: tuple[str, ...]) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in events:
            if e.position <= upto and (not topics or e.event_type in topics):
                out[e.event_type] = out.get(e.event_type, 0) + 1
        return out

    def table_counts(table: sa.Table) -> dict[str, int]:
        with engine.connect() as conn:
            return dict(conn.execute(sa.select(table.c.event_type, table.c.n)).all())

    runner.run(until=until)
    assert table_counts(every.table) == expected(until, ())
    assert table_counts(persons.table) == expected(until, persons.topics)
    assert len(expected(until, persons.topics)) == 2  # both types on each side of the cut
    assert expected(until, persons.topics) != expected(events[-1].position, persons.topics)
    runner.run()
    assert table_counts(every.table) == expected(events[-1].position, ())
    assert table_counts(persons.table) == expected(events[-1].position, persons.topics)


def test_topic_filtered_projection_reaches_the_head(store, engine):
    """A projection that reads few event types still tracks the store's head (status lag 0)."""
    store.append(sc.family())
    (access,) = build_projections(store.person_key, ["projections.access_log"])
    runner = make_runner(store, engine, batch_size=3, projections=[access])
    assert runner.run() == 1  # one PersonRecordAccessed among the family's events
    assert runner.status()[0].lag == 0


class Watching(Counter):
    """A counter of one event type that records every call of ``handle``."""

    name = "watching"
    topics = ("PersonRecordAccessed",)

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def define_tables(self, metadata: sa.MetaData) -> None:
        self.table = sa.Table("watching_counts", metadata,
                              sa.Column("event_type", sa.String(64), primary_key=True),
                              sa.Column("n", sa.Integer, nullable=False))

    def handle(self, events: Sequence[ev.CanonicalEvent], conn: sa.Connection) -> None:
        self.calls.append(len(events))
        super().handle(events, conn)


def test_a_projection_without_events_in_a_batch_only_moves_its_position(store, engine):
    """The follower wakes on every append; a projection none of whose event types arrived is
    not called, its position moves with the others'."""
    store.append(sc.family())
    watching = Watching()
    runner = make_runner(store, engine, batch_size=1000, projections=[watching, Counter()])
    runner.prepare()
    runner.run()
    assert watching.calls == [1]  # the family holds one access record
    store.append([action("dubu:S-77", sc.CHILD, 1, record_id="N-1")])
    assert runner.run() == 1
    head = store.max_position()
    assert watching.calls == [1]
    assert stored_positions(engine) == {"watching": head, "counter": head}
    assert counts(engine)["CaseActionRecorded"] >= 1
    assert runner.status()[0].lag == 0


def test_a_failing_projection_stops_the_others_at_a_batch_end(store, engine):
    """The projections of a run apply batches side by side; when one fails the reading stops,
    the others finish the batches already read (each committed whole), and the failure is
    raised. A re-run brings them all to the head."""
    store.append(sc.family())
    boom = Explodes(store.person_key, 5)
    others = build_projections(store.person_key, ["projections.case_history",
                                                  "projections.access_log"])
    runner = make_runner(store, engine, batch_size=2, projections=[boom, *others])
    with pytest.raises(ProjectionError, match="batch after position 4 failed"):
        runner.run()
    at = stored_positions(engine)
    assert at["citizen_overview"] == 4
    assert all(4 <= at[p.name] < store.max_position() for p in others)
    assert all(at[p.name] % 2 == 0 for p in others)  # at a batch's end
    good = [CitizenOverviewProjection(store.person_key), *others]
    assert make_runner(store, engine, batch_size=2, projections=good).run() > 0
    assert stored_positions(engine) == {p.name: store.max_position() for p in good}


def test_runners_starting_at_once_make_the_tables_in_turn(store, store_url):
    """A server's follower and `glasplade projections run` started together on a new database
    both prepare every projection (on PostgreSQL the later ones failed on the catalog)."""
    engines = [readmodel_engine(store_url) for _ in range(3)]
    runners = [ProjectionRunner(store, e, build_projections(store.person_key)) for e in engines]
    try:
        assert pg.at_once([r.prepare for r in runners]) == []
        store.append(sc.family())
        assert runners[0].run() == len(sc.family())
        assert {s.name: s.lag for s in runners[1].status()} == {
            p.name: 0 for p in runners[1].projections}
    finally:
        for e in engines:
            e.dispose()


def test_a_rebuild_and_a_starting_server_make_the_tables_in_turn(pg_url):
    """`glasplade projections rebuild` on a new database while the API server starts (its
    follower prepares, its target pages make the target-group tables): no catalog failure."""
    from hub.sql import create_all
    from projections.target_groups import TargetGroupsProjection
    from tests.conftest import make_store

    store = make_store(pg_url)
    engines = [readmodel_engine(pg_url) for _ in range(3)]
    names = ["target_groups", "management", "citizen_overview"]
    try:
        for attempt in range(4):
            with engines[0].begin() as conn:  # a new database again
                conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            store.recorder.create_tables()
            rebuild = ProjectionRunner(store, engines[0], build_projections(store.person_key))
            follower = ProjectionRunner(store, engines[1], build_projections(store.person_key))
            tg = TargetGroupsProjection(store.person_key)
            errors = pg.at_once([functools.partial(rebuild.reset, names), follower.prepare,
                                 functools.partial(create_all, engines[2], tg.metadata)])
            assert errors == [], (attempt, errors)
    finally:
        for e in engines:
            e.dispose()
        store.close()


@pytest.mark.parametrize("size", [0, -5])
def test_a_batch_size_below_one_is_refused(store, engine, size):
    with pytest.raises(ProjectionError, match="at least 1"):
        ProjectionRunner(store, engine, [], batch_size=size)


def test_a_rebuild_leaves_planner_statistics_of_the_runners_target(pg_url):
    """After a rebuild on PostgreSQL every table of the projection has been analyzed (the
    planner knows the bulk-loaded tables' sizes), with the runner's statistics target (a
    column of unique keys gets ANALYZE_TARGET + 1 histogram bounds, not one per value)."""
    from projections.runner import ANALYZE_TARGET
    from tests.conftest import make_store

    store = make_store(pg_url)
    engine = readmodel_engine(pg_url)
    try:
        store.append(list(municipality_events(generate(80, seed=3))))
        projection = CitizenOverviewProjection(store.person_key)
        ProjectionRunner(store, engine, [projection]).rebuild()
        with engine.connect() as conn:
            persons = conn.execute(sa.text(
                "SELECT count(*) FROM citizen_overview_persons")).scalar()
            bounds = conn.execute(sa.text(
                "SELECT array_length(histogram_bounds::text::text[], 1) FROM pg_stats"
                " WHERE tablename = 'citizen_overview_persons'"
                " AND attname = 'person_key'")).scalar()
            unanalyzed = conn.execute(sa.text(
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NULL"
                " AND relname = ANY(:names)"), {"names": list(projection.metadata.tables)}
            ).scalars().all()
    finally:
        engine.dispose()
        store.close()
    assert persons > ANALYZE_TARGET + 1
    assert bounds == ANALYZE_TARGET + 1
    assert unanalyzed == []
