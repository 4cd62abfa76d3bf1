"""``advance()``: keep the synthetic municipality alive over simulated time.

The fagsystem simulators call ``advance(m, until, rng)`` now and then; it opens cases, decides
them (grant awarded, status active), records actions, closes cases (grants ended), moves
households, registers births and gives or withdraws consents, bumping ``updated_at`` on what
changed. Counts are drawn from yearly rates scaled to the municipality and the time step
(stochastic rounding, so short steps are right on average). Deterministic for the ``rng``'s seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.synthetic.cases import TZ, CaseBuilder, Episode, legal_bases, rounded
from hub.synthetic.model import (
    AddressChange,
    Case,
    CaseAction,
    Consent,
    Municipality,
    Person,
    Relation,
    StatusChange,
)
from hub.synthetic.names import FEMALE, MALE, dwelling_address
from hub.synthetic.population import Population
from hub.synthetic.rates import SERVICE_BY_KEY, UNIT_BY_ID, Rates
from hub.synthetic.stats import is_active

KINDS = ("case_opened", "status_changed", "grant_awarded", "action_recorded", "case_closed",
         "moved", "born", "consent_given", "consent_withdrawn")
#: Per person per year (Danmarks Statistik: ~10.5 births per 1,000; ~10 % move each year).
BIRTHS_PER_PERSON_YEAR = 0.0105
MOVES_PER_HOUSEHOLD_YEAR = 0.10
CONSENTS_PER_100K_YEAR = 150
CONSENT_WITHDRAWALS_PER_YEAR = 0.3


@dataclass(frozen=True, slots=True)
class Change:
    """One thing that changed in the municipality at ``at``."""

    kind: str                     # one of KINDS
    at: datetime
    case_key: str | None = None
    person: str | None = None
    ref: str | None = None        # grant, action, consent or household id


def advance(m: Municipality, until: datetime, rng: random.Random,
            rates: Rates | None = None) -> list[Change]:
    """Mutate ``m`` from ``m.as_of`` to ``until``; returns what changed, in time order."""
    if until.tzinfo is None:
        until = until.replace(tzinfo=TZ)
    start = m.as_of
    if until <= start:
        return []
    rates = rates or Rates()
    sim = _Sim(m, rng, rates, start, until)
    for step in (sim.open_cases, sim.decide, sim.record_actions, sim.close_cases, sim.move,
                 sim.births, sim.consents):
        step()
    m.as_of = until
    sim.changes.sort(key=lambda c: c.at)
    return sim.changes


class _Sim:
    def __init__(self, m: Municipality, rng: random.Random, rates: Rates, start: datetime,
                 until: datetime):
        self.m, self.rng, self.rates, self.start, self.until = m, rng, rates, start, until
        self.years = (until - start).total_seconds() / (365.25 * 86400)
        self.scale = len(m.persons) / 100_000
        self.builder = CaseBuilder(m, rng, rates)
        self.active = [c for c in m.cases if is_active(c)]
        self.people = {p.cpr: p for p in m.persons}
        self.changes: list[Change] = []

    def when(self, after: datetime | None = None) -> datetime:
        lo = max(self.start, after) if after else self.start
        span = (self.until - lo).total_seconds()
        return lo + timedelta(seconds=self.rng.random() * span) if span > 0 else self.until

    def count(self, per_year: float) -> int:
        return rounded(per_year * self.years, self.rng)

    # --- cases -------------------------------------------------------------------------------

    def open_cases(self) -> None:
        services = [s for s in self.rates.services if s.per_100k > 0]
        weights = [s.per_100k / s.mean_years for s in services]
        n = self.count(sum(weights) * self.scale)
        if not n or not self.m.persons:
            return
        for s in self.rng.choices(services, weights=weights, k=n):
            when = self.when()
            today = when.date()
            person = self._eligible(s.age, today)
            if person is None:
                continue
            unit = UNIT_BY_ID[self.builder.unit_for(s, person, today)]
            case = Case(case_id=self.builder.case_id(unit.system), system=unit.system,
                        department=unit.department, unit_id=unit.unit_id, case_type=s.case_type,
                        title=s.title, person=person.cpr, opened_at=when)
            case.legal_bases = legal_bases(s, today, today)
            case.law, case.paragraph = case.legal_bases[-1].law, case.legal_bases[-1].paragraph
            case.status_history = [StatusChange("open", when)]
            self.builder.assign_caseworkers(case, Episode(person, s, today, None), today)
            case.actions.append(CaseAction(self.builder.action_id(case), "application", when,
                                           "Ansøgning modtaget", s.case_type, None,
                                           case.caseworker_id))
            case.updated_at = when
            self.m.cases.append(case)
            self.active.append(case)
            self.changes.append(Change("case_opened", when, case.case_key, case.person))

    def _eligible(self, age: tuple[int, int], today, sex: str | None = None) -> Person | None:
        for _ in range(60):
            p = self.rng.choice(self.m.persons)
            years = (today - p.birth_date).days // 365
            if age[0] <= years <= age[1] and p.died_on is None and sex in (None, p.sex):
                return p
        return None

    def decide(self) -> None:
        """Pending cases (status open, no grant yet) are decided: grant awarded, status active."""
        pending = [c for c in self.active if c.status == "open" and not c.grants
                   and c.case_type in _SERVICE_OF_TYPE]
        rng = self.rng
        for c in pending:
            s = _SERVICE_OF_TYPE[c.case_type]
            due = c.opened_at + timedelta(days=rng.randint(*s.decision_days))
            if due > self.until:
                continue
            when = max(due, self.start)
            if s.grant_kind != "none":
                self.builder.add_grants(c, s, c.opened_at.date(), when.date(), None, when.date(),
                                     None)
                self.changes.append(Change("grant_awarded", when, c.case_key, c.person,
                                           c.grants[-1].grant_id))
            self._act(c, "decision", when, "Afgørelse: bevilget", "bevilling")
            c.status_history.append(StatusChange("active", when))
            c.status = "active"
            c.updated_at = max(c.updated_at or when, when)
            self.changes.append(Change("status_changed", when, c.case_key, c.person, "active"))

    def record_actions(self) -> None:
        if not self.active:
            return
        per_year = sum(_SERVICE_OF_TYPE[c.case_type].notes_per_year
                       if c.case_type in _SERVICE_OF_TYPE else 2.0 for c in self.active)
        for _ in range(self.count(per_year)):
            c = self.rng.choice(self.active)
            when = self.when(c.opened_at)
            self._act(c, "journal_note", when, "Journalnotat", "notat")

    def _act(self, c: Case, kind: str, when: datetime, title: str, subtype: str) -> None:
        a = CaseAction(self.builder.action_id(c), kind, when, title, subtype, None,
                       self.builder.worker_at(c, when))
        c.actions.append(a)
        c.updated_at = max(c.updated_at or when, when)
        self.changes.append(Change("action_recorded", when, c.case_key, c.person, a.action_id))

    def close_cases(self) -> None:
        """Each active case ends with the probability its service's mean length gives."""
        for c in [c for c in self.active if c.status == "active"]:
            s = _SERVICE_OF_TYPE.get(c.case_type)
            if self.rng.random() >= 1 - math.exp(-self.years / (s.mean_years if s else 2.0)):
                continue
            when = self.when(max(c.status_history[-1].at, c.actions[-1].occurred_at
                                 if c.actions else c.opened_at))
            for g in c.grants:
                if g.valid_to is None or g.valid_to > when.date():
                    g.valid_to, g.ended_reason = when.date(), "ophørt"
            c.status_history.append(StatusChange("closed", when))
            c.status, c.closed_at = "closed", when
            c.updated_at = when
            self.changes.append(Change("case_closed", when, c.case_key, c.person))

    # --- persons -----------------------------------------------------------------------------

    def move(self) -> None:
        households = self.m.households
        n = min(len(households), self.count(len(households) * MOVES_PER_HOUSEHOLD_YEAR))
        for hh in self.rng.sample(households, n):
            when = self.when()
            new = dwelling_address(self.m.next_id("dwelling", 0), self.m.code)
            for cpr in hh.adults + hh.children:
                p = self.people.get(cpr)
                if p is None:
                    continue
                if p.first_address is None:
                    p.first_address = p.address
                p.address_changes.append(AddressChange(new, when.date(), hh.household_id))
                p.address, p.updated_at = new, when
            hh.address = new
            self.changes.append(Change("moved", when, None, (hh.adults or [None])[0],
                                       hh.household_id))

    def births(self) -> None:
        n = self.count(len(self.m.persons) * BIRTHS_PER_PERSON_YEAR)
        pop = Population(self.m, self.rng, self.rates, self.until.date())
        pop.used = set(self.people)
        for _ in range(n):
            when = self.when()
            mother = self._eligible((20, 45), when.date(), sex="K")
            if mother is None:
                continue
            hh = next(h for h in self.m.households if h.household_id == mother.household_id)
            sex = self.rng.choice("KM")
            born = when.date()
            child = Person(cpr=pop.cpr(born), first_name=self.rng.choice(
                FEMALE if sex == "K" else MALE), last_name=mother.last_name, birth_date=born,
                sex=sex, address=mother.address, household_id=hh.household_id,
                protected_address=mother.protected_address, registered_on=born, updated_at=when,
                person_id=f"P{self.m.next_id('person'):08d}")
            self.m.persons.append(child)
            self.people[child.cpr] = child
            hh.children.append(child.cpr)
            for parent in hh.adults:
                if parent in self.people and (parent == mother.cpr or len(hh.adults) == 2):
                    self.m.relations.append(Relation(child.cpr, parent, "parent", born))
                    self.m.relations.append(Relation(parent, child.cpr, "child", born))
            self.changes.append(Change("born", when, None, child.cpr, hh.household_id))

    def consents(self) -> None:
        rng = self.rng
        live = [c for c in self.m.consents if c.withdrawn_on is None
                and (c.valid_until is None or c.valid_until > self.until.date())]
        for _ in range(min(len(live), self.count(len(live) * CONSENT_WITHDRAWALS_PER_YEAR))):
            c = rng.choice(live)
            if c.withdrawn_on is not None:
                continue
            when = self.when(datetime.combine(c.valid_from, datetime.min.time(), TZ)
                             + timedelta(days=1))
            c.withdrawn_on, c.updated_at = when.date(), when
            self.changes.append(Change("consent_withdrawn", when, None, c.person, c.consent_id))
        have = {c.person for c in self.m.consents}
        adults = [c for c in self.active if c.person in self.people and c.person not in have
                  and c.department != "BUF"]
        for _ in range(self.count(CONSENTS_PER_100K_YEAR * self.scale)):
            if not adults:
                break
            case = rng.choice(adults)
            others = sorted({c.unit_id for c in self.active if c.person == case.person}
                            | {case.unit_id, rng.choice(("BUF-MYN-N", "JC-KONT", "VOK-STOTTE"))})
            when = self.when(case.opened_at)
            consent = Consent(f"SAM-{self.m.next_id('consent'):06d}", case.person,
                              "coordinated_pathway", others[:3], when.date(),
                              when.date() + timedelta(days=730), updated_at=when)
            self.m.consents.append(consent)
            have.add(case.person)
            adults = [c for c in adults if c.person != case.person]
            self.changes.append(Change("consent_given", when, None, case.person,
                                       consent.consent_id))


_SERVICE_OF_TYPE = {}
for _s in SERVICE_BY_KEY.values():
    _SERVICE_OF_TYPE.setdefault(_s.case_type, _s)
