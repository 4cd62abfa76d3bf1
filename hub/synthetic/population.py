"""Households, persons and relations of the synthetic municipality (the CPR side)."""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate

from hub.domain.cpr import synthetic_cpr
from hub.synthetic import names
from hub.synthetic.model import AddressChange, Household, Municipality, Person, Relation
from hub.synthetic.rates import HISTORY_FROM, Rates

#: Inhabitants per five-year age band 0-4 ... 100-104 (Danmarks Statistik 1.1.2023, thousands).
_BANDS = (310, 305, 340, 345, 370, 400, 375, 340, 340, 375, 410, 400, 355, 330, 320, 280, 170,
          90, 40, 10, 2)


def _band_sampler(lo: int, hi: int, boost: dict[int, float] | None = None):
    """A function rng -> age in [lo, hi], following the age pyramid (bands may be boosted)."""
    ages = list(range(lo, hi + 1))
    weights = [_BANDS[min(a // 5, len(_BANDS) - 1)] / 5 * (boost or {}).get(a // 10, 1.0)
               for a in ages]
    cum = list(accumulate(weights))
    total = cum[-1]

    def sample(rng: random.Random) -> int:
        return ages[bisect_right(cum, rng.random() * total)]
    return sample


_single_age = _band_sampler(18, 104, {1: 1.6, 2: 1.4, 7: 1.3, 8: 2.2, 9: 2.5})
_couple_age = _band_sampler(22, 100, {2: 0.5, 3: 0.5, 4: 0.6, 5: 1.0, 6: 1.3, 7: 1.3})
_child_age = _band_sampler(0, 17)


@dataclass
class Population:
    """Working state while persons are made: serials per birth date, numbers used, dwellings."""

    m: Municipality
    rng: random.Random
    rates: Rates
    today: date
    used: set[str] = field(default_factory=set)
    serials: dict[date, int] = field(default_factory=dict)
    vulnerable: set[str] = field(default_factory=set)  # household ids

    def cpr(self, born: date, substitute: bool = False) -> str:
        s = self.serials.get(born)
        if s is None:
            s = self.rng.randrange(4000)
        number = synthetic_cpr(born, s, substitute=substitute)
        while number in self.used:
            s += 1
            number = synthetic_cpr(born, s, substitute=substitute)
        self.serials[born] = s + 1
        self.used.add(number)
        return number

    def born(self, age: int) -> date:
        return self.today - timedelta(days=int(age * 365.25) + self.rng.randrange(365))

    def dwelling(self):
        return names.dwelling_address(self.m.next_id("dwelling", 0), self.m.code)


def build_population(m: Municipality, citizens: int, rng: random.Random, rates: Rates,
                     today: date) -> Population:
    """Fill ``m.households``, ``m.persons`` and ``m.relations``: exactly ``citizens`` persons."""
    pop = Population(m, rng, rates, today)
    kinds = ("single", "couple", "family", "single_parent", "other")
    cum = list(accumulate((rates.single, rates.couple, rates.couple_with_children,
                           rates.single_parent)))
    kids_cum = list(accumulate(rates.children_per_family))
    while len(m.persons) < citizens:
        r = rng.random()
        kind = kinds[bisect_right(cum, r)] if r < cum[-1] else "other"
        left = citizens - len(m.persons)
        _household(pop, kind, left, kids_cum)
    return pop


def _household(pop: Population, kind: str, left: int, kids_cum: list[float]) -> None:
    rng, m = pop.rng, pop.m
    hid = f"H{pop.m.next_id('household'):07d}"
    address = pop.dwelling()
    protected = rng.random() < pop.rates.protected_address
    hh = Household(hid, address)
    if rng.random() < pop.rates.vulnerable_households:
        pop.vulnerable.add(hid)
    adults: list[tuple[int, str]] = []  # (age, sex)
    children: list[int] = []
    if kind == "single":
        adults = [(_single_age(rng), rng.choice("KM"))]
    elif kind == "couple":
        a = _couple_age(rng)
        adults = [(a, "K"), (max(22, a + rng.randint(-4, 6)), "M")]
    elif kind in ("family", "single_parent"):
        k = bisect_right(kids_cum, rng.random() * kids_cum[-1]) + 1
        children = sorted((_child_age(rng) for _ in range(k)), reverse=True)
        if rng.random() < pop.rates.adult_child_at_home:
            children.insert(0, rng.randint(18, 24))
        a = min(70, max(18, children[0] + rng.randint(22, 38)))
        adults = [(a, "K"), (max(18, a + rng.randint(-3, 6)), "M")]
        if kind == "single_parent":
            adults = [adults[0] if rng.random() < 0.8 else adults[1]]
    else:  # other: a parent with an adult child at home, or a shared flat
        if rng.random() < 0.6:
            a = rng.randint(42, 66)
            adults = [(a, rng.choice("KM")), (rng.randint(18, min(30, a - 20)), rng.choice("KM"))]
        else:
            adults = [(rng.randint(19, 35), rng.choice("KM")) for _ in range(rng.randint(2, 3))]
    if rng.random() < 0.05 and len(adults) == 2 and kind != "other":
        adults[1] = (adults[1][0], adults[0][1])  # same-sex couple
    members = adults + [(c, rng.choice("KM")) for c in children]
    members = members[:left]
    family_name = rng.choice(names.LAST)
    persons: list[Person] = []
    for i, (age, sex) in enumerate(members):
        is_child = i >= len(adults)  # a son or daughter (adult children at home too)
        last = family_name if (is_child or i == 0 or rng.random() < 0.6) else rng.choice(names.LAST)
        if is_child and len(adults) == 2 and rng.random() < 0.3 and persons[1:]:
            last = persons[1].last_name
        born = pop.born(age)
        p = Person(
            cpr=pop.cpr(born), first_name=rng.choice(names.FEMALE if sex == "K" else names.MALE),
            last_name=last, birth_date=born, sex=sex, address=address, household_id=hid,
            protected_address=protected, registered_on=born,
            person_id=f"P{m.next_id('person'):08d}")
        if not is_child:
            p.civil_status = _civil_status(rng, age, kind, i)
            if rng.random() < pop.rates.substitute_number and born.year >= 1930:
                _substitute(pop, p)
        if last in names.ALTERNATE and rng.random() < pop.rates.alternate_spelling * 10 / 3:
            p.alternate_last_name = names.ALTERNATE[last]
        persons.append(p)
    n_adults = min(len(adults), len(persons))
    hh.adults = [p.cpr for i, p in enumerate(persons) if i < n_adults or members[i][0] >= 18]
    hh.children = [p.cpr for i, p in enumerate(persons) if i >= n_adults and members[i][0] < 18]
    _relations(pop, kind, persons, n_adults)
    if rng.random() < pop.rates.moved_in_history:
        _moved(pop, hh, persons)
    m.households.append(hh)
    m.persons.extend(persons)


def _civil_status(rng: random.Random, age: int, kind: str, i: int) -> str:
    if kind in ("couple", "family"):
        return "G" if rng.random() < 0.7 else "U"
    if age > 75 and rng.random() < 0.5:
        return "E"  # enke/enkemand
    if age > 35 and rng.random() < 0.3:
        return "F"  # fraskilt
    return "U"


def _substitute(pop: Population, p: Person) -> None:
    """Known first by an erstatningspersonnummer; the CPR number came later (an arrival)."""
    span = (pop.today - HISTORY_FROM).days - 60
    assigned = HISTORY_FROM + timedelta(days=pop.rng.randrange(max(1, span)))
    p.substitute_number = pop.cpr(p.birth_date, substitute=True)
    p.cpr_assigned_on = assigned
    p.registered_on = assigned


def _relations(pop: Population, kind: str, persons: list[Person], n_adults: int) -> None:
    rel = pop.m.relations
    adults, children = persons[:n_adults], persons[n_adults:]
    if kind in ("couple", "family") and len(adults) == 2:
        a, b = adults
        since = max(a.birth_date, b.birth_date) + timedelta(days=365 * 20 + pop.rng.randrange(3650))
        since = min(since, pop.today - timedelta(days=30))
        if children:
            since = min(since, children[0].birth_date)
        kind_rel = "spouse" if a.civil_status == "G" else "co_resident"
        rel.append(Relation(a.cpr, b.cpr, kind_rel, since))
        rel.append(Relation(b.cpr, a.cpr, kind_rel, since))
    if kind == "other" and len(persons) >= 2 and persons[0].birth_date.year + 18 < \
            persons[1].birth_date.year:
        children, adults = persons[1:2], persons[:1]
    for c in children:
        for a in adults:
            rel.append(Relation(c.cpr, a.cpr, "parent", c.birth_date))
            rel.append(Relation(a.cpr, c.cpr, "child", c.birth_date))
            if kind == "single_parent" and pop.today - c.birth_date < timedelta(days=18 * 365):
                rel.append(Relation(c.cpr, a.cpr, "custody_holder", c.birth_date))


def _moved(pop: Population, hh: Household, persons: list[Person]) -> None:
    """The household moved here (a new dwelling) at a date since HISTORY_FROM."""
    youngest = max(p.registered_on or p.birth_date for p in persons)
    start = max(HISTORY_FROM, youngest + timedelta(days=1))
    span = (pop.today - start).days - 1
    if span < 30:
        return
    since = start + timedelta(days=pop.rng.randrange(span))
    new = pop.dwelling()
    for p in persons:
        if p.first_address is None:
            p.first_address = p.address
        p.address_changes.append(AddressChange(new, since, hh.household_id))
        p.address = new
    hh.address = new



def first_address(p: Person):
    """Where the person lived when registered (before any move in ``address_changes``)."""
    return p.first_address or p.address
