"""Hypothesis strategies: small random municipalities (facts) and random rules."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import strategies as st

from hub.domain import rules as r

AS_OF = date(2026, 11, 29)
PERSONS = [f"p{i}" for i in range(8)]
DEPARTMENTS = ["BUF", "BSF", "JOBCENTER", "VOKSEN"]
UNITS = ["U1", "U2", "U3"]
RELATIONS = ["parent", "child", "spouse"]
MEETINGS = ["m16", "m17.5"]
PURPOSES = ["forloeb", "andet"]

days = st.integers(min_value=-12 * 366, max_value=400).map(lambda d: AS_OF + timedelta(days=d))
maybe_day = st.none() | days
births = st.none() | st.integers(min_value=0, max_value=25 * 366).map(
    lambda d: AS_OF - timedelta(days=d))


@st.composite
def facts(draw) -> r.Facts:
    keys = draw(st.lists(st.sampled_from(PERSONS), unique=True, max_size=8))
    persons = tuple(r.PersonFact(k, draw(births), draw(st.sampled_from(["h0", "h1", "h2", None])))
                    for k in keys)
    n_cases = draw(st.integers(0, 14))
    cases = tuple(r.CaseFact(f"c{i}", draw(st.sampled_from(PERSONS)),
                             draw(st.sampled_from(DEPARTMENTS)), draw(st.sampled_from(UNITS)),
                             draw(st.booleans())) for i in range(n_cases))
    grants = tuple(r.GrantFact(f"g{i}", draw(st.sampled_from(PERSONS)),
                               draw(st.sampled_from(["SEL", "LAS"])),
                               draw(st.sampled_from(["85", "11", "107"])),
                               draw(st.sampled_from(["service", "benefit"])),
                               draw(st.sampled_from(UNITS)), draw(days), draw(maybe_day),
                               draw(maybe_day))
                   for i in range(draw(st.integers(0, 10))))
    relations = tuple(r.RelationFact(a, b, rel) for a, b, rel in draw(st.sets(st.tuples(
        st.sampled_from(PERSONS), st.sampled_from(PERSONS), st.sampled_from(RELATIONS)),
        max_size=8)))
    consents = tuple(r.ConsentFact(f"s{i}", draw(st.sampled_from(PERSONS)),
                                   draw(st.sampled_from(PURPOSES)), draw(days), draw(maybe_day),
                                   draw(maybe_day)) for i in range(draw(st.integers(0, 5))))
    meetings = tuple(r.MeetingFact(draw(st.sampled_from(PERSONS)), draw(st.sampled_from(MEETINGS)),
                                   draw(days)) for _ in range(draw(st.integers(0, 4))))
    return r.Facts(persons, cases, grants, relations, consents, meetings)


consent = st.none() | st.builds(r.ConsentCondition, st.sampled_from(r.CONSENT_MODES),
                                st.none() | st.sampled_from(PURPOSES))
departments = st.lists(st.sampled_from(DEPARTMENTS), unique=True, min_size=2, max_size=3)


@st.composite
def rules(draw) -> r.Rule:
    kind = draw(st.sampled_from(r.KINDS))
    base = {"rule_id": f"rule-{kind}", "version": "1", "kind": kind, "title": kind,
            "consent": draw(consent)}
    if kind in ("household_departments", "family_departments"):
        base["departments"] = tuple(draw(departments))
        base["relations"] = tuple(draw(st.lists(st.sampled_from(RELATIONS), unique=True)))
    elif kind == "multi_department":
        base["departments"] = tuple(draw(st.just([]) | departments))
        base["min_departments"] = draw(st.integers(2, len(base["departments"]) or 4))
    elif kind in ("same_paragraph_multi_unit", "long_benefit"):
        base["paragraphs"] = tuple(draw(st.lists(st.sampled_from(["85", "11"]), unique=True,
                                                 min_size=kind == "long_benefit")))
        base["law"] = draw(st.none() | st.sampled_from(["SEL", "LAS"]))
        base["grant_kind"] = draw(st.none() | st.sampled_from(["service", "benefit"]))
        base["min_units"] = draw(st.integers(2, 3))
        base["min_years"] = draw(st.integers(1, 10)) if kind == "long_benefit" else 0
    else:
        base["departments"] = tuple(draw(st.just([]) | st.lists(
            st.sampled_from(DEPARTMENTS), unique=True, min_size=1, max_size=2)))
        base["milestones"] = tuple(r.Milestone(m, t) for m, t in draw(st.lists(
            st.tuples(st.integers(150, 215), st.sampled_from(MEETINGS)), min_size=1,
            max_size=2, unique_by=lambda x: x[1])))
        base["lead_days"] = draw(st.integers(0, 60))
    return r.Rule(**base)


@st.composite
def one_way_relations(draw, people: list[str]) -> tuple[r.RelationFact, ...]:
    """Relations as incomplete sources register them: each pair of people in one direction only
    (``flip`` in the property tests turns them around)."""
    pairs = draw(st.sets(st.tuples(st.sampled_from(people), st.sampled_from(people)).filter(
        lambda p: p[0] < p[1]), max_size=6))
    return tuple(r.RelationFact(*((a, b) if draw(st.booleans()) else (b, a)),
                                draw(st.sampled_from(RELATIONS))) for a, b in sorted(pairs))


@st.composite
def family_facts(draw) -> r.Facts:
    """Small families for the family rule: active and ended cases, one-directional relations."""
    people = PERSONS[:5]
    cases = tuple(r.CaseFact(f"c{i}", draw(st.sampled_from(people)),
                             draw(st.sampled_from(DEPARTMENTS[:3])), "U1", draw(st.booleans()))
                  for i in range(draw(st.integers(0, 8))))
    return r.Facts(tuple(r.PersonFact(p) for p in people), cases,
                   relations=draw(one_way_relations(people)))


@st.composite
def family_rules(draw, consent_allowed: bool = True) -> r.Rule:
    """A family rule over two or three of the departments the families have, in any order."""
    deps = tuple(draw(st.lists(st.sampled_from(DEPARTMENTS[:3]), unique=True, min_size=2,
                               max_size=3)))
    rels = tuple(draw(st.lists(st.sampled_from(RELATIONS), unique=True)))
    return r.Rule("family", "1", "family_departments", "t", departments=deps, relations=rels,
                  consent=draw(consent) if consent_allowed else None)


def flip(f: r.Facts, which: list[bool]) -> r.Facts:
    """The same facts with some relations registered from the other side."""
    turns = (which + [False] * len(f.relations))[:len(f.relations)]
    rels = tuple(r.RelationFact(x.related_key, x.person_key, x.relation) if turn else x
                 for x, turn in zip(f.relations, turns, strict=True))
    return r.Facts(f.persons, f.cases, f.grants, rels, f.consents, f.meetings)
