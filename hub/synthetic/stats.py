"""Figures about a synthetic municipality: the demo's summary and the rate tests use these."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from hub.synthetic.model import Case, Municipality


def is_active(c: Case) -> bool:
    """Open in its fagsystem and still worked on (a case left open after the work ended is not)."""
    return c.closed_at is None and c.work_ended_on is None


@dataclass(frozen=True, slots=True)
class Figures:
    persons: int
    households: int
    children: int                 # 0-17 at as_of
    households_with_children: int
    cases: int
    active_cases: int
    cases_per_department: dict[str, int]
    cases_per_system: dict[str, int]
    grants: int
    actions: int
    consents: int
    markings: int
    caseworkers: int
    multi_department_persons: int
    sel85_double_grants: int

    @property
    def persons_per_household(self) -> float:
        return self.persons / self.households if self.households else 0.0


def figures(m: Municipality) -> Figures:
    today = m.as_of.date()
    children = sum(1 for p in m.persons if _age(p.birth_date, today) < 18)
    return Figures(
        persons=len(m.persons), households=len(m.households), children=children,
        households_with_children=sum(1 for h in m.households if h.children),
        cases=len(m.cases), active_cases=sum(1 for c in m.cases if is_active(c)),
        cases_per_department=dict(sorted(Counter(c.department for c in m.cases).items())),
        cases_per_system=dict(sorted(Counter(c.system for c in m.cases).items())),
        grants=sum(len(c.grants) for c in m.cases),
        actions=sum(len(c.actions) for c in m.cases),
        consents=len(m.consents), markings=len(m.markings), caseworkers=len(m.caseworkers),
        multi_department_persons=len(multi_department_persons(m)),
        sel85_double_grants=len(double_grants(m, "SEL", "85")),
    )


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def multi_department_persons(m: Municipality, within_days: int = 365) -> set[str]:
    """Citizens whose family (household) had cases in two or more departments during the last
    ``within_days`` (Implement 2018: about 5 % of citizens)."""
    since = m.as_of - timedelta(days=within_days)
    household_of = {p.cpr: p.household_id for p in m.persons}
    household_of.update({p.substitute_number: p.household_id for p in m.persons
                         if p.substitute_number})
    departments: dict[str, set[str]] = {}
    for c in m.cases:
        ended = c.closed_at or None
        if ended is not None and ended < since:
            continue
        departments.setdefault(household_of[c.person], set()).add(c.department)
    multi = {hid for hid, deps in departments.items() if len(deps) >= 2}
    return {p.cpr for p in m.persons if p.household_id in multi}


def double_grants(m: Municipality, law: str, paragraph: str) -> list[tuple[str, str, str]]:
    """(person, case key, case key) where two units grant the same paragraph at the same time."""
    today = m.as_of.date()
    current: dict[str, list[tuple[str, str]]] = {}
    for c in m.cases:
        for g in c.grants:
            if g.law == law and g.paragraph == paragraph and g.valid_from <= today and (
                    g.valid_to is None or g.valid_to > today):
                current.setdefault(c.person, []).append((g.granting_unit_id, c.case_key))
    out = []
    for person, grants in sorted(current.items()):
        units = sorted(set(grants))
        for i, (u1, k1) in enumerate(units):
            for u2, k2 in units[i + 1:]:
                if u1 != u2:
                    out.append((person, k1, k2))
    return out
