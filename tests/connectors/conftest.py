"""Fixtures for connector tests: a small hand-built municipality with cases in every system.

``make_municipality`` is deterministic for its arguments and independent of
``hub.synthetic.generate`` (so the connector tests do not move when the generator's rates do).
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from hub.domain.cpr import synthetic_cpr
from hub.domain.events import Address
from hub.synthetic.model import (
    Case,
    CaseAction,
    Caseworker,
    Grant,
    Household,
    Municipality,
    Person,
    StatusChange,
    Unit,
)

AS_OF = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)

UNITS = [
    Unit("VOK-STOTTE", "Voksenstøtte", "VOKSEN"),
    Unit("VOK-VISIT", "Visitation, hjemmepleje", "VOKSEN"),
    Unit("BUF-MYN-N", "Myndighed Børn og Familie, team Nord", "BUF"),
    Unit("BSF-MISBRUG", "Rusmiddelcenter", "BSF"),
    Unit("JC-KONT", "Jobcenter, kontanthjælp", "JOBCENTER"),
]
SYSTEM_UNITS = {"cura": ["VOK-STOTTE", "VOK-VISIT"], "sbsys": ["BUF-MYN-N"],
                "dubu": ["BUF-MYN-N"], "fasit": ["BSF-MISBRUG", "JC-KONT"]}
GRANTS = {"cura": [("SEL", "§ 85", "Socialpædagogisk støtte"), ("SEL", "§ 83", "Hjemmehjælp"),
                   ("SEL", "§ 107", "Midlertidigt botilbud")]}


def make_municipality(persons: int = 30, cases_per_system: int = 12, seed: int = 1,
                      systems: tuple[str, ...] = ("cura", "sbsys", "dubu", "fasit")
                      ) -> Municipality:
    rng = random.Random(seed)
    m = Municipality(code="999", name="Glasby", seed=seed, as_of=AS_OF, units=list(UNITS))
    for u in UNITS:
        for i in range(2):
            m.caseworkers.append(Caseworker(f"{u.unit_id}-CW{i}", f"Sagsbehandler {u.unit_id} {i}",
                                            u.unit_id, f"cw{i}@{u.unit_id.lower()}.glasby.dk"))
    for i in range(persons):
        born = date(1950 + rng.randrange(60), rng.randrange(1, 13), rng.randrange(1, 29))
        addr = Address("Glasvej", str(i + 1), "9990", "Glasby")
        p = Person(cpr=synthetic_cpr(born, i * 7), first_name="Test", last_name=f"Person{i}",
                   birth_date=born, sex="KM"[i % 2], address=addr, household_id=f"H{i}")
        m.persons.append(p)
        m.households.append(Household(f"H{i}", addr, adults=[p.cpr]))
    n = 0
    for system in systems:
        for i in range(cases_per_system):
            n += 1
            person = m.persons[(n * 3) % len(m.persons)]
            unit_id = SYSTEM_UNITS[system][i % len(SYSTEM_UNITS[system])]
            unit = next(u for u in UNITS if u.unit_id == unit_id)
            opened = AS_OF - timedelta(days=400 - i * 7, hours=i)
            case = Case(case_id=f"{system.upper()}-{i + 1:05d}", system=system,
                        department=unit.department, unit_id=unit_id, case_type="standard",
                        title=f"Sag {i + 1}", person=person.cpr, opened_at=opened,
                        caseworker_id=f"{unit_id}-CW{i % 2}",
                        status_history=[StatusChange("open", opened)], updated_at=opened)
            if i % 4 == 1:  # decided: active
                at = opened + timedelta(days=10)
                case.status = "active"
                case.status_history.append(StatusChange("active", at))
                case.updated_at = at
            if i % 4 == 3:  # some cases are closed later
                at = opened + timedelta(days=90)
                case.status = "closed"
                case.closed_at = at
                case.status_history.append(StatusChange("closed", at))
                case.updated_at = at
            for a in range(i % 3):
                at = opened + timedelta(days=5 + a * 10)
                case.actions.append(CaseAction(
                    f"{case.case_id}-A{a}", "journal_note" if a % 2 == 0 else "follow_up", at,
                    f"Notat {a}", text=f"Opfølgning {a}", caseworker_id=case.caseworker_id))
                case.updated_at = max(case.updated_at, at)
            for g, (law, para, title) in enumerate(GRANTS.get(system, [])[: 1 + i % 2]):
                start = opened.date() + timedelta(days=14)
                case.grants.append(Grant(
                    f"{case.case_id}-G{g}", "service", law, para, title, unit_id,
                    valid_from=start, valid_to=start + timedelta(days=365) if g else None,
                    hours_per_week=3.0 + g, decided_on=start))
            m.cases.append(case)
    return m


@pytest.fixture
def municipality() -> Municipality:
    return make_municipality()


def case_event_counts(m, system: str) -> Counter[str]:
    """The canonical events a full read of ``system``'s cases in ``m`` must store, per type
    (shared by the snapshot-diffed systems' suites)."""
    from connectors.snapshot import INACTIVE

    n: Counter[str] = Counter()
    for c in m.cases:
        if c.system != system:
            continue
        n["CaseOpened"] += 1
        n["CaseworkerAssigned"] += bool(c.caseworker_id)
        n["CaseClosed"] += c.status in INACTIVE
        n["CasePassivated"] += c.status == "passive"
        n["CaseActionRecorded"] += len(c.actions)
    return n
