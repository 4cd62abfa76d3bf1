"""The synthetic municipality: determinism, realism, valid events, evolution, the demo command."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from typer.testing import CliRunner

from hub import schemas as schemas_mod
from hub.domain import cpr as cprmod
from hub.domain import events as ev
from hub.domain.rules import add_months
from hub.ingest.formats import event_to_avro, read_file, write_avro
from hub.ingest.validate import Validator
from hub.synthetic.cases import TZ
from hub.synthetic.evolve import KINDS, advance
from hub.synthetic.generate import generate
from hub.synthetic.pathways import CLOSE_REASONS, YOUTH_MEETINGS
from hub.synthetic.rates import BARNETS_LOV_FROM
from hub.synthetic.stats import double_grants, figures, is_active, multi_department_persons
from hub.synthetic.to_events import municipality_events
from tests.conftest import make_store


@pytest.fixture(scope="module")
def big():
    """20,000 citizens: large enough for rates to be measurable (about 2 s)."""
    return generate(20_000, 11)


@pytest.fixture(scope="module")
def small():
    return generate(3_000, 7)


@pytest.fixture(scope="module")
def schemas():
    return schemas_mod.default()


def _digest(events) -> str:
    h = hashlib.sha256()
    for e in events:
        h.update(f"{e.event_id}|{e.occurred_at.isoformat()}|{e.payload!r}\n".encode())
    return h.hexdigest()


# --- determinism ------------------------------------------------------------------------------

def test_same_seed_same_events_and_another_seed_differs():
    a = list(municipality_events(generate(600, 7)))
    b = list(municipality_events(generate(600, 7)))
    c = list(municipality_events(generate(600, 8)))
    assert a == b
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_determinism_does_not_depend_on_hash_seed():
    code = ("import hashlib; from hub.synthetic.generate import generate; "
            "from hub.synthetic.to_events import municipality_events; h = hashlib.sha256(); "
            "[h.update(f'{e.event_id}{e.payload!r}'.encode()) "
            "for e in municipality_events(generate(400, 3))]; print(h.hexdigest())")
    out = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True, timeout=120)
        out.add(res.stdout.strip())
    assert len(out) == 1


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError):
        generate(0, 1)
    with pytest.raises(ValueError):
        generate(10, 1, as_of=datetime(2021, 1, 5, tzinfo=TZ))


def test_exact_number_of_citizens(small):
    assert len(small.persons) == 3_000
    assert len({p.household_id for p in small.persons}) == len(small.households)


# --- identities and data quality --------------------------------------------------------------

def test_cpr_numbers_are_synthetic_and_unique(big):
    numbers = [p.cpr for p in big.persons]
    assert len(set(numbers)) == len(numbers)
    assert all(cprmod.is_synthetic(n) and not cprmod.is_substitute(n) for n in numbers)
    subs = [p.substitute_number for p in big.persons if p.substitute_number]
    assert subs and all(cprmod.is_substitute(s) and cprmod.is_synthetic(s) for s in subs)
    assert not set(subs) & set(numbers)
    assert all(cprmod.birth_date(p.cpr) == p.birth_date for p in big.persons)


def test_data_quality_as_in_real_life(big):
    subs = {p.substitute_number for p in big.persons if p.substitute_number}
    assert any(c.person in subs for c in big.cases), "no case known by a substitute number"
    assert any(p.alternate_last_name for p in big.persons)
    assert any(c.work_ended_on and c.closed_at is None for c in big.cases)  # left open
    protected = sum(p.protected_address for p in big.persons) / len(big.persons)
    assert 0.001 < protected < 0.015
    ids = {}
    for h in big.households:  # one dwelling, one stable address id
        assert ids.setdefault(h.address.address_id, h.household_id) == h.household_id
    assert all(9990 <= int(h.address.postcode) <= 9999 for h in big.households)


# --- rates (tolerances around population.md) -------------------------------------------------

def test_population_shape(big):
    f = figures(big)
    assert 0.18 <= f.children / f.persons <= 0.21          # 19.5 %
    assert 1.95 <= f.persons_per_household <= 2.2           # ~2.1
    assert 0.19 <= f.households_with_children / f.households <= 0.30
    singles = sum(1 for h in big.households if len(h.adults) + len(h.children) == 1)
    assert 0.3 <= singles / f.households <= 0.45            # ~40 % one person
    assert any(len(h.adults) == 1 and h.children for h in big.households)  # single parents


def _active_per_100k(m, case_type: str) -> float:
    n = sum(1 for c in m.cases if c.case_type == case_type and is_active(c)
            and c.system != "sbsys")
    return n / len(m.persons) * 100_000


@pytest.mark.parametrize("case_type,per_100k", [
    ("anbringelse", 233), ("forebyggende", 756), ("sygedagpenge", 1290),
    ("ressourceforloeb", 450), ("hjemmehjaelp", 2620), ("laengerevarende_botilbud", 92),
])
def test_case_rates(big, case_type, per_100k):
    measured = _active_per_100k(big, case_type)
    assert 0.6 * per_100k <= measured <= 1.45 * per_100k, measured


def test_cash_benefit_and_sel85(big):
    cash = [c for c in big.cases if c.case_type == "kontanthjaelp" and is_active(c)]
    assert 0.7 * 1510 <= len(cash) / len(big.persons) * 100_000 <= 1.3 * 1510
    grants = [g for c in cash for g in c.grants]
    assert all(g.kind == "benefit" and g.law == "LAS" and g.paragraph == "11"
               and g.monthly_rate for g in grants)
    activity_ready = [c for c in cash if "aktivitetsparat" in c.title]
    assert len(activity_ready) > 3 * (len(cash) - len(activity_ready))
    sel85_units = {c.unit_id for c in big.cases if c.law == "SEL" and c.paragraph == "85"}
    assert {"VOK-STOTTE", "BUF-UNGE", "BSF-RAAD"} <= sel85_units


def test_multi_department_share_and_double_grants(big):
    share = len(multi_department_persons(big)) / len(big.persons)
    assert 0.035 <= share <= 0.07, share                     # ~5 % (Implement 2018)
    doubles = double_grants(big, "SEL", "85")
    assert doubles, "the same paragraph granted by two units must occur"
    assert len({p for p, _, _ in doubles}) < 0.2 * 780 * len(big.persons) / 100_000


def test_families_with_a_child_case_and_a_parent_on_benefits(big):
    cases_of: dict[str, set[str]] = {}
    for c in big.cases:
        if is_active(c):
            cases_of.setdefault(c.person, set()).add(c.department)
    families = sum(1 for h in big.households
                   if any("BUF" in cases_of.get(k, ()) for k in h.children)
                   and any(cases_of.get(a, set()) & {"JOBCENTER", "BSF"} for a in h.adults))
    per_100k = families / len(big.persons) * 100_000
    assert 100 <= per_100k <= 600, per_100k                   # ~250 (estimate)


def test_caseloads(big):
    workers = Counter(cw.unit_id for cw in big.caseworkers)
    children = [c for c in big.cases if is_active(c) and c.unit_id.startswith("BUF-MYN")
                and c.system == "dubu"]
    per_worker = len(children) / (workers["BUF-MYN-N"] + workers["BUF-MYN-S"])
    assert 15 <= per_worker <= 35, per_worker                # ~25-31 (DS 2023)
    ids = {cw.caseworker_id for cw in big.caseworkers}
    assert all(c.caseworker_id in ids for c in big.cases)


def test_children_cases_move_to_barnets_lov(big):
    spanning = [c for c in big.cases if c.system == "dubu" and c.case_type == "anbringelse"
                and c.opened_at.date() < BARNETS_LOV_FROM and is_active(c)]
    assert spanning
    for c in spanning:
        assert [(b.law, b.valid_from) for b in c.legal_bases] == [
            ("SEL", c.opened_at.date()), ("BL", BARNETS_LOV_FROM)]
        assert (c.law, c.paragraph) == ("BL", "46")
    for c in big.cases:
        for g in c.grants:
            if c.system == "dubu" and c.case_type == "anbringelse":
                assert g.law == ("SEL" if g.valid_from < BARNETS_LOV_FROM else "BL")


def test_follow_up_cadence_with_misses(big):
    placements = [c for c in big.cases if c.case_type == "anbringelse" and c.system == "dubu"
                  and is_active(c) and c.opened_at.date() > date(2022, 1, 1)]
    assert placements
    follow = [sum(a.action_type == "follow_up" for a in c.actions) for c in placements]
    assert max(follow) >= 8                # after 2 weeks then every 6 weeks in year 1
    due_first = [c for c in placements
                 if (big.as_of.date() - c.opened_at.date()).days > 120]
    missed_first = sum(1 for c in due_first if not any(
        a.action_type == "follow_up" and a.occurred_at - c.opened_at < timedelta(days=30)
        for a in c.actions))
    assert 0 < missed_first < len(due_first)  # some missed or late, most on time


def test_consents_and_markings(big):
    assert big.consents and big.markings
    units = {u.unit_id for u in big.units}
    for c in big.consents:
        assert c.purpose == "coordinated_pathway" and 2 <= len(c.unit_ids) <= 3
        assert set(c.unit_ids) <= units
    assert any(c.withdrawn_on for c in big.consents)
    assert any(not c.withdrawn_on for c in big.consents)
    assert all(mk.system == "fasit" for mk in big.markings)


# --- coordinated pathways and spellings across systems --------------------------------------

def test_pathways_have_tovholder_meetings_plans_and_closings(big):
    consents = {c.consent_id: c for c in big.consents}
    workers = {w.caseworker_id: w for w in big.caseworkers}
    assert len(big.pathways) > 50
    for pw in big.pathways:
        c = consents[pw.consent_id]
        assert pw.system == "sbsys" and pw.person == c.person and pw.person in pw.members
        assert pw.anchor_unit_id in c.unit_ids and pw.started_at.date() > c.valid_from
        if pw.tovholder_id:
            assert workers[pw.tovholder_id].unit_id == pw.anchor_unit_id
        times = [x.held_at for x in pw.meetings]
        assert times == sorted(times) and all(t > pw.started_at for t in times)
        assert all(1 <= u.progression <= 10 for u in pw.plan_updates)
        if pw.closed_at:
            assert pw.close_reason in CLOSE_REASONS and pw.closed_at > pw.started_at
            assert all(t < pw.closed_at for t in times)
        else:
            assert pw.close_reason is None
        assert (pw.closed_at or pw.started_at) <= big.as_of
    assert sum(1 for pw in big.pathways if pw.tovholder_id) > 0.8 * len(big.pathways)
    assert sum(len(pw.meetings) for pw in big.pathways) > 3 * len(big.pathways)
    reasons = Counter(pw.close_reason for pw in big.pathways if pw.closed_at)
    assert set(reasons) == set(CLOSE_REASONS), reasons
    assert any(len({u.progression for u in pw.plan_updates}) > 1 for pw in big.pathways)


def test_youth_meetings_around_16_and_17_5_some_missed():
    m = generate(50_000, 7)
    born = {p.cpr: p.birth_date for p in m.persons}
    held = due = 0
    for pw in m.pathways:
        end = (pw.closed_at or m.as_of).date()
        types = Counter(x.meeting_type for x in pw.meetings)
        for months, mtype in YOUTH_MEETINGS:
            for x in pw.members:
                if x in born and pw.started_at.date() <= add_months(born[x], months) <= end:
                    due += 1
            held += types[mtype]
            for mt in pw.meetings:
                if mt.meeting_type == mtype:  # near a member's birthday
                    assert any(abs((mt.held_at.date() - add_months(born[x], months)).days) <= 45
                               for x in pw.members if x in born), pw.pathway_id
    assert held > 5 and due > held  # some were missed


def test_pathway_events_validate_and_close(small, schemas):
    v = Validator(schemas)
    evs = [e for e in municipality_events(small) if e.event_type.startswith("Pathway")]
    types = Counter(e.event_type for e in evs)
    for name in ("PathwayStarted", "PathwayTovholderAssigned", "PathwayMeetingHeld",
                 "PathwayPlanUpdated", "PathwayClosed"):
        assert types[name] > 0, name
    assert types["PathwayStarted"] == len(small.pathways)
    assert {e.source_system for e in evs} == {"sbsys"}
    for e in evs:
        assert v.from_avro(event_to_avro(e, schemas)) == e
    again = [e for e in municipality_events(generate(3_000, 7))
             if e.event_type.startswith("Pathway")]
    assert [e.event_id for e in again] == [e.event_id for e in evs]


def test_a_fagsystem_registers_the_alternate_spelling(small):
    evs = [e for e in municipality_events(small) if e.event_type == "PersonRegistered"]
    names: dict[str, dict[str, str]] = {}
    for e in evs:
        names.setdefault(e.person, {})[e.source_system] = e.payload.last_name
    conflicts = {k: v for k, v in names.items() if len(set(v.values())) > 1}
    assert conflicts
    people = {p.cpr: p for p in small.persons}
    case_systems: dict[str, set[str]] = {}
    for c in small.cases:
        case_systems.setdefault(c.person, set()).add(c.system)
    for cpr, by_system in conflicts.items():
        p = people[cpr]
        assert by_system == {"cpr": p.last_name, p.alternate_name_system: p.alternate_last_name}
        assert p.alternate_name_system in case_systems[cpr] - {"sbsys"}
    other = [e for e in evs if e.source_system != "cpr"]
    cpr_of = {e.person: e for e in evs if e.source_system == "cpr"}
    for e in other:  # the same person otherwise: birth date and current address
        p = people[e.person]
        assert e.payload.birth_date == cpr_of[e.person].payload.birth_date
        assert e.payload.address == p.address and e.payload.first_name == p.first_name


def test_name_conflict_found_by_the_identity_check(small, sqlite_url):
    from hub.targets.feed import catch_up
    from hub.targets.identity import find_identity_overlaps
    from projections.db import readmodel_engine
    from projections.target_groups import TargetGroupsProjection

    evs = list(municipality_events(small))
    store = make_store(sqlite_url)
    try:
        store.append(evs)
        engine = readmodel_engine(sqlite_url)
        p = TargetGroupsProjection(store.person_key)
        catch_up(store, engine, p)
        with engine.connect() as conn:
            found = find_identity_overlaps(conn, p)
        expected = sum(1 for x in small.persons if x.alternate_name_system)
        names = [o for o in found if o.kind == "conflicting_names"]
        assert len(names) == expected > 0
        assert all(len(o.evidence) == 2 and "source:cpr" in o.evidence for o in names)
        assert not [o for o in found if o.kind == "conflicting_addresses"]
    finally:
        store.close()


# --- events -----------------------------------------------------------------------------------

def test_every_event_validates_and_survives_an_avro_file(small, schemas, tmp_path):
    events = list(municipality_events(small))
    validator = Validator(schemas)
    for e in events:
        back = validator.from_avro(event_to_avro(e, schemas))
        assert back.dedupe_key == e.dedupe_key and back.payload == e.payload
    path = tmp_path / "demo.avro"
    assert write_avro(path, events, schemas) == len(events)
    read = [validator.from_avro(r.record) for r in read_file(path, schemas)]
    assert [e.event_id for e in read] == [e.event_id for e in events]
    assert len({e.dedupe_key for e in events}) == len(events)
    assert len({e.event_id for e in events}) == len(events)
    types = Counter(e.event_type for e in events)
    for name in ("PersonRegistered", "PersonRelationChanged", "PersonAddressChanged",
                 "PersonIdentifierReplaced", "CaseOpened", "CaseworkerAssigned",
                 "CaseStatusChanged", "CaseActionRecorded", "GrantAwarded", "GrantEnded",
                 "CaseClosed", "ConsentGiven", "MarkingSet"):
        assert types[name] > 0, name


def test_events_are_in_business_time_order_per_stream(small):
    streams: dict[str, list[ev.CanonicalEvent]] = {}
    for e in municipality_events(small):
        key = e.case_key if e.case_key else f"person:{e.person}"
        if e.event_type.startswith("Pathway"):  # a pathway's own stream (hub.domain.streams)
            key = f"pathway:{e.payload.pathway_id}"
        streams.setdefault(key, []).append(e)
    for key, events in streams.items():
        times = [e.occurred_at for e in events]
        assert times == sorted(times), key
        if key.startswith(("dubu:", "fasit:", "cura:", "sbsys:")):
            assert events[0].event_type == "CaseOpened"
            assert all(e.source_system == key.split(":")[0] for e in events)
        else:
            assert events[0].event_type in ("PersonRegistered", "ConsentGiven", "MarkingSet",
                                              "PathwayStarted")
    other = {(p.cpr, p.alternate_name_system) for p in small.persons if p.alternate_name_system}
    assert all(e.source_system == "cpr" or (e.event_type == "PersonRegistered"
                                            and (e.person, e.source_system) in other)
               for e in municipality_events(small) if e.event_type.startswith("Person"))


def test_time_ordered_is_a_permutation(small):
    a = list(municipality_events(small))
    b = list(municipality_events(small, time_ordered=True))
    assert sorted(e.event_id.hex for e in a) == sorted(e.event_id.hex for e in b)
    assert [e.occurred_at for e in b] == sorted(e.occurred_at for e in b)


# --- evolution --------------------------------------------------------------------------------

def test_advance_produces_every_kind_and_keeps_old_events():
    m = generate(3_000, 5)
    before = {e.dedupe_key: e for e in municipality_events(m)}
    until = m.as_of + timedelta(days=365)
    changes = advance(m, until, random.Random(1))
    kinds = Counter(c.kind for c in changes)
    assert set(KINDS) <= set(kinds), kinds
    assert [c.at for c in changes] == sorted(c.at for c in changes)
    assert all(m.as_of - timedelta(days=365) <= c.at <= until for c in changes)
    assert m.as_of == until
    after = {e.dedupe_key: e for e in municipality_events(m)}
    assert all(after[k] == e for k, e in before.items())   # history is never rewritten
    assert len(after) > len(before)
    assert any(k[1].startswith("person/P") for k in after if k not in before)  # births
    validator, schemas = Validator(schemas_mod.default()), schemas_mod.default()
    for e in after.values():
        validator.from_avro(event_to_avro(e, schemas))
    changed = {c.case_key for c in changes if c.case_key}
    for c in m.cases:
        if c.case_key in changed:
            assert c.updated_at is not None and c.updated_at > until - timedelta(days=366)
    assert all(cprmod.is_synthetic(p.cpr) for p in m.persons)
    assert len({p.cpr for p in m.persons}) == len(m.persons)


def test_advance_is_deterministic_and_idle_when_time_does_not_move():
    def run():
        m = generate(1_000, 9)
        out = advance(m, m.as_of + timedelta(days=30), random.Random(4))
        out += advance(m, m.as_of + timedelta(minutes=5), random.Random(5))
        return out, _digest(municipality_events(m))
    assert run() == run()
    m = generate(300, 9)
    assert advance(m, m.as_of, random.Random(1)) == []
    assert advance(m, m.as_of - timedelta(days=1), random.Random(1)) == []


# --- the demo command -------------------------------------------------------------------------

def test_demo_command_prints_summary_and_rerun_stores_nothing(tmp_path, sqlite_url):
    """The direct path (the real path is tested in tests/integration/test_demo.py)."""
    from hub.cli.main import app
    runner = CliRunner()
    args = ["demo", "--direct", "--citizens", "400", "--seed", "3", "--store", sqlite_url,
            "--out", str(tmp_path / "data")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    for word in ("persons", "households", "cases", "per system", "events", "elapsed",
                 "events/s", "BUF", "dubu"):
        assert word in first.output
    files = list((tmp_path / "data").glob("*.avro"))
    assert len(files) == 1
    store = make_store(sqlite_url)
    try:
        stored = sum(n for _, _, n in store.counts())
    finally:
        store.close()
    expected = len(list(municipality_events(generate(400, 3))))
    assert stored == expected
    assert f"stored      {expected:,} new" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "stored      0 new" in second.output
    assert f"{expected:,} duplicate" in second.output


def test_demo_command_rejects_a_bad_store_url(tmp_path):
    from hub.cli.main import app
    res = CliRunner().invoke(app, ["demo", "--citizens", "50", "--store", "mysql://x",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 1


def test_source_keys_hold_no_cpr_number(small):
    """Record ids are kept in clear (dead letters, cursors): never a CPR or substitute number."""
    numbers = {p.cpr for p in small.persons} | {
        p.substitute_number for p in small.persons if p.substitute_number}
    for e in municipality_events(small):
        for text in (e.source_record_id, e.source_version, e.case_key or "", e.actor or ""):
            for part in text.replace("/", " ").replace(":", " ").split():
                assert part not in numbers, (e.event_type, text)
