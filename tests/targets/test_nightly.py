"""The nightly overlap run against a real store (SQLite and PostgreSQL) and read-model DB."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from hub.domain import events as ev
from hub.targets.loader import load_rules
from hub.targets.nightly import run_overlap
from projections.db import readmodel_engine
from projections.target_groups import TargetGroupsProjection
from tests.targets import builders as b

MOTHER = b.cpr(date(1990, 3, 4), 1)
CHILD = b.cpr(date(2012, 6, 7), 2)
LONER = b.cpr(date(1980, 1, 1), 3)


@pytest.fixture
def hub_parts(store, store_url):
    engine = readmodel_engine(store_url)
    projection = TargetGroupsProjection(store.person_key)
    yield store, engine, projection
    engine.dispose()


def _family(store):
    home = b.address(address_id="adr-1")
    store.append([
        b.person(MOTHER, date(1990, 3, 4), home), b.person(CHILD, date(2012, 6, 7), home),
        b.person(LONER, date(1980, 1, 1), b.address("Andenvej")),
        b.relation(CHILD, MOTHER, "parent"), b.relation(MOTHER, CHILD, "child"),
        b.open_case(CHILD, "dubu:S-1", "BUF", "BUF-MYN-N"),
        b.open_case(MOTHER, "fasit:F-1", "BSF", "BSF-RAAD"),
        b.open_case(LONER, "fasit:F-2", "BSF", "BSF-RAAD"),
    ])


def _match_events(store):
    return [e for e in store.read(limit=10_000)
            if e.event_type in ("TargetGroupMatchStarted", "TargetGroupMatchEnded")]


def test_first_run_records_matches_with_explanations_second_run_nothing(hub_parts, tmp_path):
    store, engine, projection = hub_parts
    _family(store)
    rules = load_rules("odense")
    result = run_overlap(store, engine, rules, b.AS_OF, projection, tmp_path)
    by_rule = {(m.rule_id, m.subject) for m in result.started}
    child, mother = store.person_key(CHILD), store.person_key(MOTHER)
    assert by_rule == {("odense-buf-bsf-family", child),
                       ("odense-buf-bsf-household", child),
                       ("odense-buf-bsf-household", mother)}
    family = next(m for m in result.started if m.rule_id == "odense-buf-bsf-family")
    assert family.evidence == ("case:dubu:S-1", "case:fasit:F-1", f"relation:parent:{mother}")
    started = [e for e in _match_events(store) if e.event_type == "TargetGroupMatchStarted"]
    assert len(started) == 3 and result.events_stored == 3
    assert all(e.person_key in (child, mother) and e.source_version == "1:started"
               for e in started)
    assert "BUF og BSF" in started[0].payload.explanation
    html, csv_file = result.report_files
    assert "Natlig overlapskørsel" in html.read_text() and "Nye match (3)" in html.read_text()
    assert csv_file.read_text().count("\n") == 4  # header + 3 matches

    again = run_overlap(store, engine, rules, b.AS_OF + timedelta(days=1), projection, tmp_path)
    assert not again.changed and again.events_stored == 0
    assert len(again.current) == 3 and len(_match_events(store)) == 3


def test_case_closed_ends_the_match_and_a_reopen_starts_a_new_episode(hub_parts):
    store, engine, projection = hub_parts
    _family(store)
    rules = load_rules("odense")
    run_overlap(store, engine, rules, b.AS_OF, projection)
    store.append([b.close_case(MOTHER, "fasit:F-1")])
    day2 = run_overlap(store, engine, rules, b.AS_OF + timedelta(days=1), projection)
    assert {m.rule_id for m in day2.ended} == {"odense-buf-bsf-family",
                                                "odense-buf-bsf-household"}
    assert not day2.started and day2.events_stored == 3
    store.append([b.event(ev.CaseReopened("ny henvendelse"), person=MOTHER, case="fasit:F-1",
                          source="fasit")])
    day3 = run_overlap(store, engine, rules, b.AS_OF + timedelta(days=2), projection)
    assert len(day3.started) == 3
    versions = sorted(e.source_version for e in _match_events(store)
                      if e.payload.rule_id == "odense-buf-bsf-family")
    assert versions == ["1:ended", "1:started", "2:started"]
    with engine.connect() as conn:
        h = projection.match_history
        episodes = conn.execute(sa.select(h.c.episode, h.c.ended_at).where(
            h.c.rule_id == "odense-buf-bsf-family").order_by(h.c.episode)).all()
    assert [e for e, _ in episodes] == [1, 2] and episodes[0][1] is not None
    assert episodes[1][1] is None


def test_a_repeated_run_after_a_crash_before_catch_up_doubles_nothing(hub_parts):
    """The events are stored but the projection never saw them (crash): the re-run's events
    have the same source keys, so the store keeps one of each."""
    store, engine, projection = hub_parts
    _family(store)
    rules = load_rules("odense")
    first = run_overlap(store, engine, rules, b.AS_OF, projection)
    fresh_engine_state = TargetGroupsProjection(store.person_key)
    with engine.begin() as conn:  # forget the match tables (as if the catch-up never ran)
        for t in (projection.matches, projection.match_history, projection.match_units):
            conn.execute(t.delete())
    again = run_overlap(store, engine, rules, b.AS_OF, fresh_engine_state)
    assert len(again.started) == len(first.started) and again.events_stored == 0
    assert len(_match_events(store)) == 3


def test_identity_overlaps_substitute_number_and_conflicting_names(hub_parts):
    store, engine, projection = hub_parts
    born = date(1985, 5, 5)
    sub, real = b.cpr(born, 7, substitute=True), b.cpr(born, 8)
    store.append([
        b.person(real, born, b.address(address_id="a1"), source="cpr", last="Jensen"),
        b.person(real, born, b.address(address_id="a2"), source="fasit", last="Jenssen"),
        b.open_case(sub, "fasit:F-9", "JOBCENTER"),
        b.event(ev.PersonIdentifierReplaced(sub, real), person=real, source="cpr"),
        b.person(b.cpr(date(1970, 1, 1), 1), date(1970, 1, 1), source="cpr", last="Hansen"),
        b.person(b.cpr(date(1970, 1, 1), 2), date(1970, 1, 1), source="cpr", last="Hansen"),
    ])
    result = run_overlap(store, engine, load_rules("odense"), b.AS_OF, projection)
    kinds = sorted(o.kind for o in result.overlaps_detected)
    assert kinds == ["conflicting_addresses", "conflicting_names", "same_name_birth_date",
                     "substitute_and_cpr"]
    subst = next(o for o in result.overlaps if o.kind == "substitute_and_cpr")
    assert subst.subject == store.person_key(real) and "case:fasit:F-9" in subst.evidence
    # the fagsystem moves the case to the CPR number: the overlap is resolved next night
    store.append([b.event(ev.CaseClosed(), person=sub, case="fasit:F-9", source="fasit")])
    with engine.begin() as conn:  # (re-registration under the new number, as the connector would)
        conn.execute(projection.facts["cases"].update().values(person_key=store.person_key(real)))
    again = run_overlap(store, engine, load_rules("odense"), b.AS_OF + timedelta(days=1),
                        projection)
    assert again.overlaps_resolved == [subst.overlap_id]
    assert not again.overlaps_detected


def test_removed_rule_ends_its_matches(hub_parts):
    store, engine, projection = hub_parts
    _family(store)
    rules = load_rules("odense")
    run_overlap(store, engine, rules, b.AS_OF, projection)
    only_family = type(rules)(rules.municipality, "v2", rules.rules[:1])
    result = run_overlap(store, engine, only_family, b.AS_OF, projection)
    assert {x.rule_id for x in result.ended} == {"odense-buf-bsf-household"}
    assert {x.reason for x in result.ended} == {"Reglen er fjernet fra regelsættet"}


def test_start_end_start_in_one_batch_and_counts_over_time(hub_parts):
    """The bulk match-event path gives what one-by-one application would."""
    import uuid
    from datetime import UTC, datetime

    from hub.targets.feed import catch_up
    from hub.targets.queries import counts_over_time, match_list

    store, engine, projection = hub_parts
    t = [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3)]

    def e(version, payload, at):
        return ev.CanonicalEvent(uuid.uuid4(), "glasplade", "match:r:k1", version, at, payload,
                                 person_key="k1")
    store.append([
        e("1:started", ev.TargetGroupMatchStarted("r", "1", "multi_department", "x",
                                                  ("group:k1", "case:dubu:1")), t[0]),
        e("1:ended", ev.TargetGroupMatchEnded("r", "1", "gone"), t[1]),
        e("2:started", ev.TargetGroupMatchStarted("r", "1", "multi_department", "y",
                                                  ("group:k1", "case:dubu:2")), t[2]),
    ])
    catch_up(store, engine, projection)
    with engine.connect() as conn:
        (row,) = match_list(conn, projection, "r")
        assert (row.explanation, row.evidence) == ("y", ("case:dubu:2",))
        counts = counts_over_time(conn, projection, "r", [
            t[0], t[1] + timedelta(hours=1), t[2] + timedelta(hours=1)])
    assert [n for _, n in counts] == [1, 0, 1]


def test_age_milestone_without_departments_has_no_case_evidence():
    """Found by the property test: the reference used to add every case as evidence."""
    from hub.domain import rules as r
    rule = r.Rule("m", "1", "age_milestone", "t", milestones=(r.Milestone(192, "m16"),))
    f = r.Facts(persons=(r.PersonFact("p", date(2010, 1, 1)),),
                cases=(r.CaseFact("c", "p", "BUF", "U"),))
    (m,) = r.evaluate(rule, f, date(2026, 11, 29))
    assert m.evidence == ("milestone:m16",)
    held = r.Facts(f.persons, f.cases, meetings=(r.MeetingFact("p", "m16", date(2026, 1, 1)),))
    assert r.evaluate(rule, held, date(2026, 11, 29)) == set()


def test_identity_digests_keep_their_values_and_only_households_stay_in_the_cache(hub_parts):
    """Name and identity digests are made once per registration, so they are not kept in the
    pseudonym cache (it is for what recurs: person identifiers, households); their values are
    those of the pseudonym function all the same (a household's digest is a match subject, a
    duplicate identity's is in an overlap id: a changed value would end and restart them)."""
    store, engine, projection = hub_parts
    born = date(1990, 3, 4)
    with engine.begin() as conn:
        projection.metadata.create_all(conn)
        projection.handle([b.person(MOTHER, born, b.address(address_id="adr-9"), last="Holm")],
                          conn)
        row = conn.execute(sa.select(projection.identity)).one()
        household = conn.execute(sa.select(projection.facts["persons"].c.household_key)
                                 ).scalar_one()
    texts = {"name": "identity|test|holm", "identity": f"identity|test|holm|{born}",
             "household": "identity|household|adr-9"}
    cached = set(store.pseudonymizer._cache)  # (what the cache holds: no public view)
    assert texts["household"] in cached
    assert not cached & {texts["name"], texts["identity"]}
    assert (row.name_digest, row.identity_digest, row.address_digest, household) == (
        store.person_key(texts["name"]), store.person_key(texts["identity"]),
        store.person_key(texts["household"]), store.person_key(texts["household"]))
