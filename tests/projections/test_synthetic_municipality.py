"""The read models against a small synthetic municipality: what the generator put in comes out."""

from __future__ import annotations

from collections import Counter

import pytest

from hub.synthetic.generate import generate
from hub.synthetic.to_events import municipality_events
from projections import queries as q


@pytest.fixture(scope="module")
def municipality():
    m = generate(250, seed=5)
    return m, list(municipality_events(m, time_ordered=True))


def test_every_person_case_grant_consent_and_marking_is_shown(store, engine, runner,
                                                             municipality):
    m, events = municipality
    store.append(events)
    runner.batch_size = 200
    runner.run()
    owner = {}
    for p in m.persons:
        owner[p.cpr] = p.cpr
        if p.substitute_number:
            owner[p.substitute_number] = p.cpr
    cases = Counter(owner[c.person] for c in m.cases)
    grants = Counter(owner[c.person] for c in m.cases for _ in c.grants)
    consents = Counter(owner[c.person] for c in m.consents)
    markings = Counter(owner[mk.person] for mk in m.markings)
    households = {h.household_id: h for h in m.households}
    checked_household = 0
    with engine.connect() as conn:
        for p in m.persons:
            o = q.citizen_overview(conn, store.person_key(p.cpr), today=m.as_of.date(),
                                   reveal_protected=True)
            assert o is not None, "every registered person has an overview"
            assert (o.person.cpr, o.person.first_name, o.person.birth_date) == (
                p.cpr, p.first_name, p.birth_date)
            assert o.person.address is not None
            assert o.person.address.address_id == p.address.address_id
            assert len(o.cases) == cases[p.cpr]
            assert len(o.grants) == grants[p.cpr]
            assert len(o.consents) == consents[p.cpr]
            assert len(o.markings) == markings[p.cpr]
            for c in o.cases:
                assert c.department and c.unit_name and c.status
            h = households.get(p.household_id)
            if h and p.cpr in h.adults and h.children:
                at_home = {m_.person.cpr for m_ in o.household if m_.same_address}
                assert set(h.children) - {p.cpr} <= at_home | {
                    m_.person.cpr for m_ in o.children}
                checked_household += 1
            if p.substitute_number:  # the old number finds the same person
                old = q.person_summary(conn, store.person_key(p.substitute_number))
                assert old is not None and old.cpr == p.cpr
    assert checked_household > 5
    assert sum(cases.values()) == len(m.cases)
