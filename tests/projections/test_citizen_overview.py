"""The citizen overview and household view on a small hand-made family (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from psycopg.pq import TransactionStatus

from hub.domain import events as ev
from projections import citizen_tables as t
from projections import overview_sql
from projections import queries as q
from tests.projections import scenario as sc
from tests.projections.conftest import one_by_one_and_in_one_batch
from tests.projections.factory import address, cpr, event

TODAY = date(2025, 6, 1)


def test_overview_of_a_parent(store, engine, runner):
    store.append(sc.family())
    runner.run()
    with engine.connect() as conn:
        o = q.citizen_overview(conn, store.person_key(sc.MOTHER), today=TODAY)
    assert o is not None
    p = o.person
    assert (p.cpr, p.name, p.birth_date, p.civil_status) == (
        sc.MOTHER, "Anna Hansen", date(1984, 5, 2), "G")
    assert p.address is not None and p.address.address_id == "dar-home"
    assert "Vestergade 12" in p.address.text
    # household: the spouse (relation) and the child (relation and address)
    by_name = {m.person.first_name: m for m in o.household}
    assert set(by_name) == {"Bo", "Carl"}
    assert by_name["Bo"].relation == "spouse" and by_name["Bo"].same_address
    assert [c.person.first_name for c in o.children] == ["Carl"]
    # the mother's own case, with its primary caseworker and legal basis
    (case,) = o.cases
    assert (case.case_key, case.department, case.unit_name, case.status, case.law,
            case.paragraph) == ("fasit:C-1", "BSF", "Jobcenter Syd", "open", "LAS", "2")
    assert case.primary_caseworker is not None
    assert (case.primary_caseworker.name, case.primary_caseworker.contact) == (
        "Eva Jensen", "eva@example.dk")
    # consents: one active, one withdrawn
    assert [c.consent_id for c in o.active_consents] == ["c-1"]
    c1 = o.active_consents[0]
    assert c1.covers("u-buf", "coordinated_pathway") and not c1.covers("u-voksen")
    withdrawn = next(c for c in o.consents if c.consent_id == "c-2")
    assert not withdrawn.active and withdrawn.withdrawn_at is not None
    assert [(m.system, m.marking_type, m.active) for m in o.markings] == [
        ("fasit", "person_group", True)]
    assert o.pathway is not None
    assert o.pathway.tovholder is not None and o.pathway.tovholder.name == "Eva Jensen"
    assert o.pathway.meetings == 1
    assert set(o.pathway.member_keys) == {store.person_key(sc.MOTHER), store.person_key(sc.CHILD)}
    assert [(f.source_system, f.department, f.active_cases) for f in o.systems] == [
        ("fasit", "BSF", 1)]
    # consent validity follows the query's day
    with engine.connect() as conn:
        later = q.citizen_overview(conn, store.person_key(sc.MOTHER), today=date(2026, 2, 1))
    assert later is not None and later.active_consents == ()


def test_overview_of_a_child_with_grant_and_replaced_caseworker(store, engine, runner):
    store.append(sc.family())
    runner.run()
    with engine.connect() as conn:
        o = q.citizen_overview(conn, store.person_key(sc.CHILD), today=TODAY)
    assert o is not None
    (case,) = o.cases
    assert case.status == "in_progress"
    assert case.primary_caseworker is not None and case.primary_caseworker.name == "Gitte Lund"
    assert [w.caseworker_id for w in case.caseworkers] == ["cw-3"]  # Frank was replaced
    (grant,) = o.grants
    assert (grant.law, grant.paragraph, grant.granting_unit_name, grant.valid_from,
            grant.valid_to, grant.active) == (
        "BL", "32", "Familieafdelingen", date(2025, 1, 1), date(2026, 6, 30), True)
    # the mother by relation, the father by address
    assert {m.relation for m in o.household} == {"parent", None}
    assert o.children == ()
    assert o.pathway is not None and o.pathway.pathway_id == "p-1"  # a member, not the primary
    assert o.has_case_outside("fasit") and not o.has_case_outside("dubu")


def test_household_view_lists_the_family(store, engine, runner):
    store.append(sc.family())
    runner.run()
    with engine.connect() as conn:
        h = q.household_overview(conn, store.person_key(sc.FATHER), today=TODAY)
        assert q.household_overview(conn, "no-such-person") is None
    assert h is not None
    assert [m.person.first_name for m in h.members] == ["Bo", "Anna", "Carl"]
    assert [len(m.cases) for m in h.members] == [0, 1, 1]


def test_protected_address_is_hidden_unless_revealed(store, engine, runner):
    store.append(sc.family())
    runner.run()
    key = store.person_key(sc.NEIGHBOUR)
    with engine.connect() as conn:
        hidden = q.citizen_overview(conn, key, today=TODAY)
        shown = q.person_summary(conn, key, reveal_protected=True)
        found = q.search_by_name(conn, "dorte")
    assert hidden is not None and hidden.person.protected_address
    assert hidden.person.address is None and hidden.person.address_hidden
    assert shown is not None and shown.address is not None and shown.address.street == "Hemmeligvej"
    assert found[0].address is None


def test_search_by_cpr_and_name_prefix(store, engine, runner):
    store.append(sc.family())
    runner.run()
    with engine.connect() as conn:
        by_cpr = q.search_by_cpr(conn, store.person_key, sc.MOTHER[:6] + "-" + sc.MOTHER[6:])
        assert [p.first_name for p in by_cpr] == ["Anna"]
        assert q.search_by_cpr(conn, store.person_key, cpr(99)) == []
        assert q.search_by_cpr(conn, store.person_key, " ") == []
        assert [p.first_name for p in q.search_by_name(conn, "HANSEN")] == ["Anna", "Bo", "Carl"]
        assert [p.first_name for p in q.search_by_name(conn, "  anna   han")] == ["Anna"]
        assert [p.first_name for p in q.search_by_name(conn, "hansen c")] == ["Carl"]
        assert q.search_by_name(conn, "") == [] and q.search_by_name(conn, "zz") == []
        assert len(q.search_by_name(conn, "h", limit=2)) == 2


def test_unknown_person_and_fagsystem_only_person(store, engine, runner):
    """A person known only from a fagsystem case still gets an overview (not registered)."""
    someone = cpr(50)
    store.append([
        event(ev.CaseStatusChanged("open"), person=someone, case="cura:K-9", source="cura"),
        event(ev.CaseOpened("VOKSEN", "u-v", "Voksenstøtte", "sel85", "open", None, "SEL", "85"),
              person=someone, case="cura:K-9", source="cura"),
    ])
    runner.run()
    with engine.connect() as conn:
        assert q.citizen_overview(conn, "0" * 32) is None
        o = q.citizen_overview(conn, store.person_key(someone))
    assert o is not None and not o.person.registered and o.person.cpr == someone
    assert [(c.case_key, c.department, c.paragraph) for c in o.cases] == [
        ("cura:K-9", "VOKSEN", "85")]


def test_overview_on_a_pooled_connection_keeps_its_prepared_statements(store, engine, runner):
    """Outside a transaction the overview reads in one of its own and ends it: the connection
    goes back to the pool idle, and the rollback the pool sends at check-in does not make psycopg
    drop the prepared statements (PostgreSQL would plan every statement on every overview)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("psycopg's prepared statements: PostgreSQL only")
    store.append(sc.family())
    runner.run()
    engine.dispose()  # a connection of the overview's own (the runner prepares statements too)
    key = store.person_key(sc.MOTHER)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        for _ in range(6):  # psycopg prepares a statement on its fifth run
            assert q.citizen_overview(conn, key, today=TODAY) is not None
            assert raw.info.transaction_status == TransactionStatus.IDLE
            raw.rollback()  # what the pool does at check-in
        (prepared,) = raw.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert prepared == len(overview_sql.STATEMENTS)


def test_overview_inside_the_callers_transaction_leaves_it_open(store, engine, runner):
    """Inside the caller's transaction the overview reads in it (it sees the caller's writes)
    and neither commits nor ends it."""
    store.append(sc.family())
    runner.run()
    key = store.person_key(sc.MOTHER)
    with engine.connect() as conn:
        conn.execute(sa.insert(t.aliases).values(old_key="x" * 32, new_key=key))
        o = q.citizen_overview(conn, "x" * 32, today=TODAY)
        assert o is not None and o.person.person_key == key
        assert conn.in_transaction()
        conn.rollback()
    with engine.connect() as conn:
        assert q.citizen_overview(conn, "x" * 32, today=TODAY) is None


def test_lifecycle_changes(store, engine, runner):
    """Moves, name change, relation removed, case closed and reopened, grant ended, marking
    ended, pathway closed, protection set."""
    a, b = cpr(60), cpr(61)
    store.append(sc.family())
    store.append([
        event(ev.PersonRegistered("Ib", "Berg", date(1970, 1, 1), "M", address(address_id="x")),
              person=a, source="cpr"),
        event(ev.PersonRelationChanged("spouse", b, "added"), person=a, source="cpr"),
        event(ev.PersonRelationChanged("spouse", b, "removed"), person=a, source="cpr"),
        event(ev.PersonNameChanged("Ib", "Bjerg"), person=a, source="cpr"),
        event(ev.PersonAddressChanged(address("Nygade", "3", "y")), person=a, source="cpr"),
        event(ev.PersonCivilStatusChanged("F"), person=a, source="cpr"),
        event(ev.PersonProtectedAddressChanged(True), person=a, source="cpr"),
        event(ev.CaseOpened("BSF", "u", "U", "t", "open"), person=a, case="fasit:Z",
              source="fasit"),
        event(ev.CaseClosed("done"), person=a, case="fasit:Z", source="fasit"),
        event(ev.GrantAwarded("g", "benefit", "LAS", "1", "Ydelse", "u", "U", date(2024, 1, 1)),
              person=a, case="fasit:Z", source="fasit"),
        event(ev.GrantEnded("g", date(2024, 6, 1)), person=a, case="fasit:Z", source="fasit"),
        event(ev.MarkingSet("m", "fasit", "pg", date(2024, 1, 1)), person=a, source="fasit"),
        event(ev.MarkingEnded("m", "fasit", "pg", date(2024, 2, 1)), person=a, source="fasit"),
        event(ev.PathwayStarted("p", "u", "U"), person=a, source="glasplade"),
        event(ev.PathwayPlanUpdated("p", "plan", 4), person=a, source="glasplade"),
        event(ev.PathwayClosed("p", "job_or_education"), person=a, source="glasplade"),
    ])
    runner.run()
    with engine.connect() as conn:
        o = q.citizen_overview(conn, store.person_key(a), today=TODAY)
        closed = q.case_view(conn, "fasit:Z")
        assert q.search_by_name(conn, "ib berg") == []
        assert [p.last_name for p in q.search_by_name(conn, "ib bj")] == ["Bjerg"]
    assert o is not None
    assert o.person.name == "Ib Bjerg" and o.person.civil_status == "F"
    assert o.person.address is None and o.person.protected_address
    assert o.household == ()
    assert closed is not None and closed.status == "closed" and not closed.active
    assert not o.grants[0].active and o.grants[0].ended_on == date(2024, 6, 1)
    assert not o.markings[0].active
    assert o.pathway is None and o.pathways[0].close_reason == "job_or_education"
    assert (o.pathways[0].plan_summary, o.pathways[0].progression) == ("plan", 4)
    store.append([event(ev.CaseReopened("igen"), person=a, case="fasit:Z", source="fasit")])
    runner.run()
    with engine.connect() as conn:
        reopened = q.case_view(conn, "fasit:Z")
    assert reopened is not None and reopened.active and reopened.closed_at is None


def test_identifier_replaced_moves_everything_to_the_new_number(store, engine, runner):
    """A substitute number replaced by a CPR number: cases, consents, relations and accesses
    follow; the old key still finds the person."""
    old = cpr(70, date(2001, 2, 3))
    new = cpr(71, date(2001, 2, 3))
    parent = cpr(72)
    store.append([
        event(ev.CaseOpened("BUF", "u", "U", "t", "open"), person=old, case="dubu:R",
              source="dubu"),
        event(ev.ConsentGiven("k", "overview", ("u",), date(2024, 1, 1)), person=old,
              source="glasplade"),
        event(ev.PersonRelationChanged("child", old, "added"), person=parent, source="cpr"),
        event(ev.PersonRecordAccessed("u1", "p", "overview"), person=old, source="glasplade"),
        event(ev.PersonIdentifierReplaced(old, new), person=new, source="cpr"),
        event(ev.PersonRegistered("Ny", "Person", date(2001, 2, 3), "K"), person=new, source="cpr"),
        # a fagsystem still using the old number afterwards
        event(ev.CaseOpened("BSF", "u", "U", "t", "open"), person=old, case="fasit:L",
              source="fasit"),
        event(ev.PersonRecordAccessed("u2", "p", "overview"), person=old, source="glasplade"),
    ])
    runner.run()
    old_key, new_key = store.person_key(old), store.person_key(new)
    with engine.connect() as conn:
        o = q.citizen_overview(conn, old_key, today=TODAY)
        p = q.citizen_overview(conn, store.person_key(parent), today=TODAY)
        accesses = q.accesses_to_person(conn, old_key)
    assert o is not None and o.person.person_key == new_key and o.person.cpr == new
    assert o.person.name == "Ny Person"
    assert sorted(c.case_key for c in o.cases) == ["dubu:R", "fasit:L"]
    assert len(o.consents) == 1
    assert p is not None and [m.person.person_key for m in p.children] == [new_key]
    assert [a.person_key for a in accesses] == [new_key, new_key]


def test_a_chain_of_replaced_identifiers_leads_to_the_last_number(store, engine, runner):
    """A -> B in one batch, B -> C in the next: events naming A or B after that (in the same
    batch as B -> C, and later) are filed under C."""
    a, b, c = (cpr(n, date(2001, 2, 3)) for n in (73, 74, 75))

    def opened(person, case):
        return event(ev.CaseOpened("BUF", "u", "U", "t", "open"), person=person, case=case,
                     source="dubu")

    store.append([opened(a, "dubu:A1"), event(ev.PersonIdentifierReplaced(a, b), person=b,
                                              source="cpr")])
    runner.run()
    store.append([event(ev.PersonIdentifierReplaced(b, c), person=c, source="cpr"),
                  opened(a, "dubu:A2"), opened(b, "dubu:B1")])
    runner.run()
    store.append([opened(a, "dubu:A3")])
    runner.run()
    with engine.connect() as conn:
        o = q.citizen_overview(conn, store.person_key(a), today=TODAY)
    assert o is not None and o.person.person_key == store.person_key(c)
    assert sorted(x.case_key for x in o.cases) == ["dubu:A1", "dubu:A2", "dubu:A3", "dubu:B1"]


def test_replacements_in_one_batch_find_rows_made_and_changed_between_them(store, engine,
                                                                           runner):
    """Several replacements in one batch, with rows made, moved to another person and
    replaced again between them: every row ends under the person's last number, in one batch
    as in batches of one event (the rows of a replaced person are found through an index the
    batch keeps, not by a scan per replacement)."""
    a, b, c, d, e, f, g = (cpr(n, date(2001, 2, 3)) for n in range(80, 87))

    def opened(person, case, source="dubu"):
        return event(ev.CaseOpened("BUF", "u", "U", "t", "open"), person=person, case=case,
                     source=source)

    def replaced(old, new):
        return event(ev.PersonIdentifierReplaced(old, new), person=new, source="cpr")

    store.append([
        opened(a, "dubu:A1"),
        replaced(a, b),  # the batch's first replacement: the index is made here
        opened(c, "dubu:C1"),  # a row made after it
        opened(d, "dubu:K"),
        opened(e, "dubu:K"),  # the same case, now naming another person (changed in place)
        event(ev.GrantAwarded("g1", "ydelse", "SEL", "41", "t", "u", "U", date(2025, 1, 1)),
              person=c, case="dubu:C1", source="dubu"),
        event(ev.PersonRelationChanged("child", c, "added"), person=g, source="cpr"),
        replaced(c, d),  # C's case, grant and relation move to D
        replaced(e, f),  # the case K follows E (not D, whom it named before)
        replaced(b, g),  # A -> B -> G in one batch
        opened(a, "dubu:A2"),  # the oldest number, after the chain
    ])
    one_by_one, one_batch = one_by_one_and_in_one_batch(runner, engine)
    assert one_batch == one_by_one
    key = store.person_key
    with engine.connect() as conn:
        cases = {r.case_key: r.person_key for r in conn.execute(sa.select(t.cases))}
        grants = [r.person_key for r in conn.execute(sa.select(t.grants))]
        relations = [(r.person_key, r.related_key) for r in conn.execute(sa.select(t.relations))]
    assert cases == {"dubu:A1": key(g), "dubu:A2": key(g), "dubu:C1": key(d),
                     "dubu:K": key(f)}
    assert grants == [key(d)]
    assert relations == [(key(g), key(d))]


@pytest.mark.parametrize("old_sorts_first", [True, False])
@pytest.mark.parametrize("index_made_before", [False, True])
def test_two_relations_that_become_one_on_a_replacement_end_alike_in_any_batch(
        store, engine, runner, old_sorts_first, index_made_before):
    """(old, spouse, new) and (new, spouse, old) both become (new, spouse, new) when old is
    replaced by new: which one's details survive is the same in one batch as in batches of one
    event, whichever key sorts first, and whether or not an earlier replacement in the batch
    made the batch's index before the relations were put (and whatever the process's string
    hash seed)."""
    x, y = cpr(90, date(1980, 1, 1)), cpr(91, date(1981, 1, 1))
    old, new = sorted((x, y), key=store.person_key, reverse=not old_sorts_first)
    unrelated = event(ev.PersonIdentifierReplaced(cpr(92), cpr(93)), person=cpr(93),
                      source="cpr", at=datetime(2019, 1, 1, tzinfo=UTC))
    earlier = [unrelated] if index_made_before else []
    store.append([
        *earlier,
        event(ev.PersonRelationChanged("spouse", new, "added"), person=old, source="cpr",
              at=datetime(2020, 1, 1, tzinfo=UTC)),
        event(ev.PersonRelationChanged("spouse", old, "added"), person=new, source="cpr",
              at=datetime(2021, 1, 1, tzinfo=UTC)),
        event(ev.PersonIdentifierReplaced(old, new), person=new, source="cpr",
              at=datetime(2022, 1, 1, tzinfo=UTC)),
    ])
    one_by_one, one_batch = one_by_one_and_in_one_batch(runner, engine)
    assert one_batch == one_by_one
    with engine.connect() as conn:
        rows = [(r.person_key, r.related_key) for r in conn.execute(sa.select(t.relations))]
    assert rows == [(store.person_key(new), store.person_key(new))]


def test_the_cpr_registers_name_wins_over_a_fagsystems_spelling(store, engine, runner):
    """A fagsystem may spell a name differently; the overview shows the CPR register's, in
    whichever order the two registrations arrive."""
    first, second = cpr(71), cpr(72)

    def registered(person, last_name, source):
        return event(ev.PersonRegistered(first_name="Mia", last_name=last_name,
                                         birth_date=date(1990, 1, 1), sex="K", address=address()),
                     person=person, source=source)

    store.append([registered(first, "Glasmose", "cpr"), registered(first, "Glasmoose", "fasit"),
                  registered(second, "Glasmoose", "fasit"), registered(second, "Glasmose", "cpr")])
    runner.run()
    with engine.connect() as conn:
        names = [q.citizen_overview(conn, store.person_key(p), today=TODAY).person.name
                 for p in (first, second)]
    assert names == ["Mia Glasmose", "Mia Glasmose"]


def test_pathway_members_follow_members_changed_in_every_projection(store, engine):
    """A member added to the pathway later (a new party on the pathway case) gets the pathway
    in their overview, in the target groups' and the management facts; one who leaves loses
    it; the primary citizen stays a member; a rebuild gives the same rows."""
    from projections.registry import build_projections
    from tests.projections.conftest import dump, make_runner

    every = build_projections(store.person_key)  # all registered projections
    assert {"target_groups", "management"} <= {p.name for p in every}
    runner = make_runner(store, engine, projections=every, batch_size=1000)
    store.append(sc.family())
    runner.run()
    mother, father, child = (store.person_key(x) for x in (sc.MOTHER, sc.FATHER, sc.CHILD))
    tables = (t.pathway_members.name, "tg_pathway_members", "mi_pathway_members")

    def members() -> dict[str, set[str]]:
        with engine.connect() as conn:
            return {name: {r[0] for r in conn.execute(sa.text(
                f"SELECT person_key FROM {name} WHERE pathway_id = 'p-1'"))} for name in tables}

    def pathway_of(key: str) -> str | None:
        with engine.connect() as conn:
            o = q.citizen_overview(conn, key, today=TODAY)
        assert o is not None
        return o.pathway.pathway_id if o.pathway else None

    assert pathway_of(father) is None
    store.append([event(ev.PathwayMembersChanged("p-1", (sc.CHILD, sc.FATHER)),
                        person=sc.MOTHER, source="sbsys")])
    runner.run()
    assert all(m == {mother, child, father} for m in members().values()), members()
    assert pathway_of(father) == "p-1"
    store.append([event(ev.PathwayMembersChanged("p-1", (sc.FATHER,)), person=sc.MOTHER,
                        source="sbsys")])
    runner.run()
    assert all(m == {mother, father} for m in members().values()), members()
    assert pathway_of(child) is None and pathway_of(father) == pathway_of(mother) == "p-1"
    # started and changed in one batch, as the SBSYS connector reads a case the first time
    # after a party was added: the changed set wins
    store.append([event(ev.PathwayStarted("p-2", "u-buf", "Familieafdelingen", None,
                                          (sc.MOTHER,)), person=sc.FATHER, source="sbsys"),
                  event(ev.PathwayMembersChanged("p-2", (sc.CHILD,)), person=sc.FATHER,
                        source="sbsys")])
    runner.run()
    with engine.connect() as conn:
        for name in tables:
            assert {r[0] for r in conn.execute(sa.text(
                f"SELECT person_key FROM {name} WHERE pathway_id = 'p-2'"))} == {father, child}
    live = dump(engine, every)
    rebuilt = make_runner(store, engine, batch_size=3,
                          projections=build_projections(store.person_key))
    rebuilt.rebuild()
    assert dump(engine, rebuilt.projections) == live
