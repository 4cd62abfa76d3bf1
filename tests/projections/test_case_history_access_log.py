"""Case history (timeline in words) and the access log (per person, per user)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from hub.domain import events as ev
from projections import access_log as al
from projections import queries as q
from projections.case_history import summarize
from tests.projections import scenario as sc
from tests.projections.factory import T0, cpr, event


def test_case_timeline_in_business_time_order(store, engine, runner):
    late_learned = event(ev.CaseActionRecorded("a-0", "meeting", "netværksmøde", "Møde"),
                         person=sc.CHILD, case="dubu:S-1", source="dubu", actor="cw-2",
                         at=T0 + timedelta(days=2))
    store.append(sc.family())
    store.append([late_learned])  # recorded after, happened before later events
    runner.run()
    with engine.connect() as conn:
        timeline = q.case_history(conn, "dubu:S-1")
        assert q.case_history(conn, "dubu:S-1", limit=2) == timeline[:2]
        assert q.case_history(conn, "nope:1") == []
    assert [e.event_type for e in timeline] == [
        "CaseOpened", "CaseworkerAssigned", "CaseActionRecorded", "CaseworkerAssigned",
        "CaseStatusChanged", "GrantAwarded", "GrantChanged"]
    meeting = timeline[2]
    assert (meeting.source_system, meeting.actor) == ("dubu", "cw-2")
    assert meeting.summary == "Handling registreret (meeting/netværksmøde): Møde"
    assert meeting.recorded_at is not None and meeting.recorded_at >= timeline[-1].recorded_at
    assert meeting.position > timeline[-1].position
    assert timeline[4].summary == "Status ændret fra 'open' til 'in_progress'"
    assert timeline[6].details["valid_to"] == "2026-06-30"
    assert all(e.occurred_at.tzinfo is not None for e in timeline)


def test_summaries_say_what_changed():
    assert summarize(ev.CaseLegalBasisChanged("BL", "32", date(2024, 1, 1))) == \
        "Lovgrundlag ændret til BL § 32 fra 2024-01-01"
    assert summarize(ev.CaseClosed()) == "Sag lukket"
    assert summarize(ev.CaseworkerUnassigned("cw-1", "tovholder")) == \
        "Sagsbehandler cw-1 fjernet som tovholder"
    assert summarize(ev.GrantChanged("g", extent="5 timer", monthly_rate=1234.5)) == \
        "Bevilling g ændret: omfang 5 timer, 1,234.50 kr./md."
    assert summarize(ev.GrantEnded("g", date(2025, 2, 1), "flyttet")) == \
        "Bevilling g ophørt 2025-02-01: flyttet"
    assert summarize(ev.CaseStatusChanged("closed")) == "Status ændret fra ukendt til 'closed'"


def test_access_log_per_person_and_per_user(store, engine, runner):
    other = cpr(80)
    t = datetime(2025, 3, 1, 8, tzinfo=UTC)
    store.append([
        event(ev.PersonRecordAccessed("ulla", "coordinated_pathway", "overview"),
              person=sc.MOTHER, actor="ulla", at=t, source="glasplade"),
        event(ev.PersonRecordAccessed("ulla", "case_work", "household", "existence_only"),
              person=other, actor="ulla", at=t + timedelta(hours=1), source="glasplade"),
        event(ev.PersonRecordAccessed("otto", "audit", "case_history"),
              person=sc.MOTHER, actor="otto", at=t + timedelta(hours=2), source="glasplade"),
    ])
    runner.run()
    with engine.connect() as conn:
        mother = q.accesses_to_person(conn, store.person_key(sc.MOTHER))
        ulla = q.accesses_by_user(conn, "ulla")
        older = q.accesses_by_user(conn, "ulla", before=t + timedelta(minutes=30))
        assert q.accesses_by_user(conn, "ulla", limit=1) == ulla[:1]
        assert q.accesses_by_user(conn, "nobody") == []
    assert [(a.user_id, a.view) for a in mother] == [("otto", "case_history"),
                                                     ("ulla", "overview")]
    assert [(a.person_key, a.access) for a in ulla] == [
        (store.person_key(other), "existence_only"), (store.person_key(sc.MOTHER), "full")]
    assert [a.purpose for a in older] == ["coordinated_pathway"]
    assert mother[0].occurred_at == t + timedelta(hours=2)


def test_accesses_follow_a_chain_of_replaced_identifiers_in_one_batch(store, engine):
    """A, replaced by B, replaced by C: accesses recorded under any of them, before or after
    the replacements, end under C, whether the replacements come in one batch or one by one."""
    from tests.projections.conftest import make_runner

    a, b, c = cpr(81), cpr(82), cpr(83)
    t = datetime(2025, 3, 1, 8, tzinfo=UTC)

    def seen(user: str, person: str, hours: int) -> ev.CanonicalEvent:
        return event(ev.PersonRecordAccessed(user, "case_work", "overview"), person=person,
                     actor=user, at=t + timedelta(hours=hours), source="glasplade")

    store.append([seen("u1", a, 0), seen("u2", b, 1)])
    store.append([
        seen("u3", a, 2),
        event(ev.PersonIdentifierReplaced(a, b), person=b, source="cpr"),
        seen("u4", a, 3),
        event(ev.PersonIdentifierReplaced(b, c), person=c, source="cpr"),
        seen("u5", a, 4), seen("u6", b, 5),
    ])
    for batch_size in (2, 1, 1000):  # the second append in one batch, and one by one
        make_runner(store, engine, batch_size=batch_size).rebuild()
        with engine.connect() as conn:
            assert [x.user_id for x in q.accesses_to_person(conn, store.person_key(c))] == [
                "u6", "u5", "u4", "u3", "u2", "u1"], batch_size
            stored = conn.execute(sa.select(al.entries.c.person_key).distinct()).scalars()
            assert list(stored) == [store.person_key(c)], batch_size
