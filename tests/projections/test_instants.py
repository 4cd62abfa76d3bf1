"""Read models keep an event's time as the instant it was, whatever its offset, on both backends
(``projections.db.Instant``: SQLite keeps no offset, so it is written as UTC there)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa

from hub.domain import events as ev
from projections.db import Instant
from projections.registry import build_projections
from tests.projections.conftest import make_runner
from tests.projections.factory import cpr, event

#: 23:30 on a summer evening in Denmark (UTC+2): 21:30 UTC. Written as its wall time, SQLite
#: would hold 23:30 and read it back as 23:30 UTC, two hours late.
SUMMER_EVENING = datetime(2025, 6, 3, 23, 30, tzinfo=timezone(timedelta(hours=2)))
ALL = ("projections.citizen_overview", "projections.case_history", "projections.management",
       "projections.target_groups")


def test_event_times_are_stored_as_instants(store, engine):
    person = cpr(1)
    store.append([event(ev.CaseOpened("VOKSEN", "u-v", "Voksenstøtte", "sel85", "open"),
                        person=person, case="demo:c1", at=SUMMER_EVENING)])
    runner = make_runner(store, engine, projections=build_projections(store.person_key, ALL))
    runner.run()
    expected = datetime(2025, 6, 3, 21, 30, tzinfo=UTC)
    with engine.connect() as conn:
        found = {
            "mi_cases.opened_at": conn.execute(sa.text("SELECT opened_at FROM mi_cases")),
            "citizen_overview_cases.opened_at": conn.execute(
                sa.text("SELECT opened_at FROM citizen_overview_cases")),
            "case_history_entries.occurred_at": conn.execute(
                sa.text("SELECT occurred_at FROM case_history_entries")),
        }
        found = {k: r.scalar_one() for k, r in found.items()}
    for name, value in found.items():
        if isinstance(value, str):  # SQLite: the stored text, no offset
            value = datetime.fromisoformat(value).replace(tzinfo=UTC)
        assert value == expected, name


def test_a_naive_time_is_utc_whatever_the_sessions_zone(engine):
    md = sa.MetaData()
    t = sa.Table("instant_probe", md, sa.Column("at", Instant()))
    md.create_all(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # a server set to Danish time
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'Europe/Copenhagen'")
        conn.execute(t.insert(), [{"at": datetime(2025, 6, 3, 10, 0)}])
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.c.at)).scalar_one() == datetime(2025, 6, 3, 10, 0,
                                                                        tzinfo=UTC)
