"""The target-group and management projections write per batch: a rebuild in one big batch gives
exactly the tables that applying the same events one at a time gives (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from hub.domain import events as ev
from hub.synthetic.generate import generate
from hub.synthetic.to_events import municipality_events
from projections.db import readmodel_engine
from projections.management import ManagementProjection
from projections.rows import upsert
from projections.runner import ProjectionRunner
from projections.target_groups import TargetGroupsProjection
from tests.targets import builders as b


@pytest.fixture(scope="module")
def municipality_with_extras() -> tuple[list[ev.CanonicalEvent], tuple[str, str]]:
    """A small synthetic municipality, then events it does not make (pathways, consents, the
    hub's match and overlap events, removals), many of them on rows made in the same batch."""
    m = generate(80, seed=7)
    events = list(municipality_events(m, time_ordered=True))
    opened = next(e for e in events if e.event_type == "CaseOpened")
    owner, ck = opened.person, opened.case_key
    a, other, third = (p.cpr for p in m.persons[:3])
    at = max(e.occurred_at for e in events) + timedelta(days=1)
    new_case = "sbsys:bulk-1"

    def e(payload, **kw):
        return b.event(payload, at=at, **kw)

    return events + [
        e(ev.PersonNameChanged("Ny", "Navn"), person=a, source="cpr"),
        e(ev.PersonAddressChanged(b.address("Nyvej", "2")), person=a, source="sbsys"),
        e(ev.PersonRelationChanged("child", other, "added"), person=a, source="cpr"),
        e(ev.PersonRelationChanged("child", other, "removed"), person=a, source="cpr"),
        e(ev.PersonRelationChanged("spouse", third, "added"), person=a, source="cpr"),
        e(ev.PersonDied(date(2026, 11, 1)), person=third, source="cpr"),
        e(ev.PersonIdentifierReplaced(b.cpr(date(1990, 1, 1), 7, substitute=True), a),
          person=a),
        e(ev.CaseworkerAssigned("cw1", "Sagsbehandler", "U9"), case=ck, person=owner),
        e(ev.CaseworkerUnassigned("cw-other"), case=ck),  # not the primary: nothing changes
        e(ev.CasePassivated(), case=ck),
        e(ev.CaseReopened(), case=ck),
        e(ev.CaseOpened("social", "U7", "Enhed 7", "sag", "open"), person=owner, case=new_case),
        e(ev.GrantAwarded("g-bulk", "service", "SEL", "85", "Støtte", "U8", "Enhed 8",
                          date(2026, 1, 1)), case=new_case),  # the person comes from the case
        e(ev.GrantChanged("g-bulk", valid_to=date(2026, 12, 31)), case=new_case),
        e(ev.CaseActionRecorded("m1", "meeting", "netværksmøde"), case=new_case),
        e(ev.CaseActionRecorded("f1", "follow_up"), case=new_case),
        e(ev.ConsentGiven("k1", "samarbejde", ("U1",), date(2026, 1, 1)), person=a),
        e(ev.ConsentWithdrawn("k1"), person=a),
        e(ev.PathwayStarted("pw1", "U1", "Enhed 1", "r1", members=(a, other)), person=owner),
        e(ev.PathwayTovholderAssigned("pw1", "cw1", "Tovholder", "U1")),
        e(ev.PathwayMeetingHeld("pw1", "opstart", True)),
        e(ev.PathwayPlanUpdated("pw1", progression=2)),
        e(ev.PathwayPlanUpdated("pw1", progression=4)),
        # match units are read from the facts: the new case and grant must be written first
        e(ev.TargetGroupMatchStarted("r1", "1", "person", "forklaring",
                                     (f"case:{new_case}", "grant:g-bulk", "group:h1")),
          person=owner),
        e(ev.TargetGroupMatchEnded("r1", "1", "ophørt"), person=owner),
        e(ev.TargetGroupMatchStarted("r1", "1", "person", "igen", (f"case:{new_case}",)),
          person=owner),
        e(ev.GrantEnded("g-bulk", date(2026, 6, 30)), case=new_case),
        e(ev.PathwayClosed("pw1", "afsluttet")),
        e(ev.OverlapDetected("o1", "identity", "forklaring", ("x", "y")), person=a),
        e(ev.OverlapResolved("o1", "identity", "løst"), person=a),
        e(ev.OverlapDetected("o1", "identity", "igen", ("x",)), person=a),
    ], (a, other)


def _dump(engine: sa.Engine, projections) -> dict[str, list[tuple]]:
    out = {}
    with engine.connect() as conn:
        for p in projections:
            for name, table in p.metadata.tables.items():
                out[name] = sorted(tuple(repr(v) for v in r)
                                   for r in conn.execute(sa.select(table)))
    return out


def test_one_big_batch_equals_one_event_at_a_time(store, store_url, municipality_with_extras):
    events, (a, other) = municipality_with_extras
    store.append(events)
    engine = readmodel_engine(store_url)
    try:
        projections = [TargetGroupsProjection(store.person_key),
                       ManagementProjection(store.person_key)]
        runner = ProjectionRunner(store, engine, projections, batch_size=100_000)
        runner.prepare()
        runner.rebuild()
        bulk = _dump(engine, projections)
        runner.batch_size = 1
        runner.rebuild()
        single = _dump(engine, projections)
    finally:
        engine.dispose()
    assert bulk == single
    # and the batch did what the events say (so equality is not two empty tables)
    assert all(bulk[name] for name in (
        "tg_persons", "tg_identity", "tg_relations", "tg_identifier_links", "tg_cases",
        "tg_grants", "tg_meetings", "tg_pathway_members", "tg_matches", "tg_match_units",
        "tg_overlaps", "mi_persons", "mi_cases", "mi_grants", "mi_followups", "mi_pathways",
        "mi_pathway_members", "mi_pathway_meetings"))
    assert [r[2] for r in bulk["tg_match_units"]] == ["'U7'"]  # the new case's unit
    assert len(bulk["tg_match_history"]) == 2 and bulk["tg_matches"][0][4] == "2"
    mine = [r[1:] for r in bulk["tg_relations"] if r[0] == repr(store.person_key(a))]
    assert (repr(store.person_key(other)), "'child'") not in mine  # added, then removed
    assert "'spouse'" in [r[1] for r in mine]
    assert [(r[3], r[4]) for r in bulk["tg_overlaps"]] == [("True", "2")]
    (pathway,) = [r for r in bulk["mi_pathways"] if r[0] == "'pw1'"]
    # closed, with its tovholder; the first progression is kept and the last one set
    assert (pathway[6], pathway[7], pathway[10], pathway[11]) == ("'afsluttet'", "'cw1'", "2", "4")
    assert any(r[11] == "'cw1'" for r in bulk["mi_cases"])  # unassigning another kept cw1
    sources = [r[1] for r in bulk["tg_identity"] if r[0] == repr(store.person_key(a))]
    assert sorted(sources) == ["'cpr'", "'sbsys'"]  # the move came from a second source


@pytest.mark.parametrize("n", [3, 30])  # executemany and (PostgreSQL) COPY + staged merge
def test_upsert_on_a_table_whose_every_column_is_the_key(store_url, n):
    """rows.upsert used to raise ValueError (nothing to update): now it inserts what is new."""
    md = sa.MetaData()
    t = sa.Table("bulk_pairs", md, sa.Column("a", sa.String(20), primary_key=True),
                 sa.Column("b", sa.String(20), primary_key=True))
    engine = readmodel_engine(store_url)
    try:
        md.create_all(engine)
        rows = [{"a": f"a{i}", "b": "x"} for i in range(n)]
        with engine.begin() as conn:
            upsert(conn, t, rows[: n // 2])
        with engine.begin() as conn:  # overlaps the stored rows and repeats a key
            upsert(conn, t, rows + rows[:1])
        with engine.connect() as conn:
            got = sorted((r.a, r.b) for r in conn.execute(sa.select(t)))
    finally:
        md.drop_all(engine)
        engine.dispose()
    assert got == sorted((r["a"], r["b"]) for r in rows)
