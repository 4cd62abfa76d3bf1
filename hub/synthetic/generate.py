"""``generate()``: a realistic synthetic municipality, deterministic for a seed.

Only ``random.Random(seed)`` is used (never the global generator), and nothing depends on the
iteration order of sets or of hashed keys, so the same seed gives the same municipality (and the
same canonical events) in every process. Rates and their sources: docs/synthetic.md.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from hub.synthetic.cases import TZ, CaseBuilder, Episode, at, make_units_and_caseworkers, rounded
from hub.synthetic.model import Case, Consent, Marking, Municipality, Person, StatusChange
from hub.synthetic.pathways import add_fagsystem_spellings, add_pathways, add_youth_consents
from hub.synthetic.population import Population, build_population
from hub.synthetic.rates import HISTORY_FROM, SERVICE_BY_KEY, Rates, Service

#: The default "now" of a generated municipality. Fixed (not the wall clock) so that running the
#: demo again, on any day, produces the very same events and stores nothing new.
DEFAULT_AS_OF = datetime(2026, 11, 1, 6, 0, tzinfo=TZ)
_DAY = timedelta(days=1)


def generate(citizens: int, seed: int, as_of: datetime | None = None,
             municipality_code: str = "0999", name: str = "Glasby",
             rates: Rates | None = None) -> Municipality:
    """A municipality of exactly ``citizens`` persons with households, cases, grants, actions,
    consents, markings and coordinated pathways up to ``as_of`` (default ``DEFAULT_AS_OF``)."""
    if citizens < 1:
        raise ValueError("citizens must be at least 1")
    as_of = as_of or DEFAULT_AS_OF
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=TZ)
    if as_of.date() <= HISTORY_FROM + timedelta(days=90):
        raise ValueError(f"as_of must be after {HISTORY_FROM + timedelta(days=90)}")
    rates = rates or Rates()
    rng = random.Random(seed)
    m = Municipality(code=municipality_code, name=name, seed=seed, as_of=as_of)
    today = as_of.date() - _DAY  # the last full business day before as_of
    pop = build_population(m, citizens, rng, rates, today)
    make_units_and_caseworkers(m, rng, citizens, rates)
    builder = CaseBuilder(m, rng, rates)
    _services(pop, builder, today)
    _notifications(pop, builder, today)
    _double_sel85(pop, builder, today)
    _mirrors(pop, builder, today)
    _consents_and_markings(pop, today)
    add_youth_consents(m, rng, rates, today)
    add_pathways(m, rng, rates, today)
    add_fagsystem_spellings(m, rng, rates, today)
    _nothing_after(m, as_of)
    return m


def _nothing_after(m: Municipality, as_of: datetime) -> None:
    """No fact may lie after ``as_of``: a source serving data from the future would make
    incremental cursors jump past changes made later in simulated time."""
    for c in m.cases:
        if any(a.occurred_at > as_of for a in c.actions):
            c.actions = [a for a in c.actions if a.occurred_at <= as_of]
        if c.updated_at is not None and c.updated_at > as_of:
            c.updated_at = max([c.opened_at] + [s.at for s in c.status_history]
                               + [a.occurred_at for a in c.actions[-1:]])
            c.updated_at = min(c.updated_at, as_of)
    for pw in m.pathways:
        pw.meetings = [x for x in pw.meetings if x.held_at <= as_of]
        pw.plan_updates = [x for x in pw.plan_updates if x.at <= as_of]
        if pw.tovholder_at is not None and pw.tovholder_at > as_of:
            pw.tovholder_id = pw.tovholder_at = None
    for x in (*m.consents, *m.markings, *m.pathways):
        if x.updated_at is not None and x.updated_at > as_of:
            x.updated_at = as_of


class _Pools:
    """Persons by age, split by vulnerable household, for sampling recipients of a service."""

    def __init__(self, pop: Population, today: date):
        self.by_age: dict[int, tuple[list[Person], list[Person]]] = {}
        for p in pop.m.persons:
            age = (today - p.birth_date).days // 365
            vul, other = self.by_age.setdefault(min(age, 110), ([], []))
            (vul if p.household_id in pop.vulnerable else other).append(p)

    def pool(self, lo: int, hi: int) -> tuple[list[Person], list[Person]]:
        vul: list[Person] = []
        other: list[Person] = []
        for age in range(lo, hi + 1):
            if age in self.by_age:
                vul.extend(self.by_age[age][0])
                other.extend(self.by_age[age][1])
        return vul, other


def _sample(rng: random.Random, s: Service, pools: _Pools, n: int, today: date
            ) -> list[Person]:
    if s.key == "home_help":  # mostly the old, more so the older
        old = [p for pair in pools.pool(67, 110) for p in pair]
        young = [p for pair in pools.pool(s.age[0], 66) for p in pair]
        n_young = min(len(young), rounded(0.15 * n, rng))
        picked = rng.sample(young, n_young)
        if old:
            ages = [((today - p.birth_date).days // 365 - 60) ** 2 for p in old]
            seen = {p.cpr for p in picked}
            for p in rng.choices(old, weights=ages, k=2 * (n - n_young)):
                if len(picked) >= n:
                    break
                if p.cpr not in seen:
                    seen.add(p.cpr)
                    picked.append(p)
        return picked
    vul, other = pools.pool(*s.age)
    n_vul = min(len(vul), rounded(n * s.vulnerable_share, rng))
    picked = rng.sample(vul, n_vul)
    picked += rng.sample(other, min(len(other), n - n_vul))
    return picked


def _services(pop: Population, b: CaseBuilder, today: date) -> None:
    rng, m = pop.rng, pop.m
    pools = _Pools(pop, today)
    n_people = len(m.persons)
    for s in pop.rates.services:
        if s.per_100k <= 0:
            continue
        n_active = rounded(s.per_100k * n_people / 100_000, rng)
        mean_days = s.mean_years * 365.25
        active_from: dict[str, date] = {}
        for p in _sample(rng, s, pools, n_active, today):
            eligible = p.birth_date + timedelta(days=int(s.age[0] * 365.25))
            longest = max(1, (today - max(eligible, p.birth_date)).days)
            start = today - timedelta(days=min(longest, 1 + int(rng.expovariate(1 / mean_days))))
            active_from[p.cpr] = start
            m.cases.append(b.build(Episode(p, s, start, None), today))
        n_closed = rounded(n_active * s.closed_factor, rng)
        window = HISTORY_FROM if s.history_years is None else max(
            HISTORY_FROM, today - timedelta(days=int(s.history_years * 365.25)))
        span = (today - window).days - 7
        for p in _sample(rng, s, pools, n_closed, today):
            end = window + timedelta(days=rng.randrange(span))
            start = end - timedelta(days=1 + int(rng.expovariate(1 / mean_days)))
            start = max(start, p.birth_date + timedelta(days=int(s.age[0] * 365.25) + 1))
            if start >= end or (p.cpr in active_from and end >= active_from[p.cpr]):
                continue
            m.cases.append(b.build(Episode(p, s, start, end), today))


def _notifications(pop: Population, b: CaseBuilder, today: date) -> None:
    rng, m, s = pop.rng, pop.m, SERVICE_BY_KEY["notification"]
    years = s.history_years or 1.0
    n = rounded(pop.rates.notifications_per_100k_year * len(m.persons) / 100_000 * years, rng)
    vul, other = _Pools(pop, today).pool(*s.age)
    if not vul and not other:
        return
    span = int(years * 365.25)
    for _ in range(n):
        src = vul if vul and rng.random() < s.vulnerable_share else (other or vul)
        p = rng.choice(src)
        start = today - timedelta(days=rng.randrange(span))
        end = start + timedelta(days=rng.randint(7, 42))
        m.cases.append(b.build(Episode(p, s, start, end if end <= today else None), today))


def _double_sel85(pop: Population, b: CaseBuilder, today: date) -> None:
    """The same paragraph granted by two units at once: § 85 from Voksenstøtte and from
    Ungekontakten (under 30) or Rådgivningshuset (over 30) (003:L90-110)."""
    rng, m, s = pop.rng, pop.m, SERVICE_BY_KEY["sel85"]
    people = {p.cpr: p for p in m.persons}
    voksen = [c for c in m.cases if c.unit_id == "VOK-STOTTE" and c.case_type == s.case_type
              and c.closed_at is None and c.work_ended_on is None and c.person in people]
    k = min(len(voksen), rounded(len(voksen) * pop.rates.sel85_double_share, rng))
    for c in rng.sample(voksen, k):
        p = people[c.person]
        lo = c.opened_at.date()
        start = lo + timedelta(days=rng.randrange(max(1, (today - lo).days - 30)))
        unit = "BUF-UNGE" if (today - p.birth_date).days // 365 < 30 else "BSF-RAAD"
        m.cases.append(b.build(Episode(p, s, start, None), today, unit_id=unit, hours=(1, 4.5)))


def _mirrors(pop: Population, b: CaseBuilder, today: date) -> None:
    """Some BUF cases are also kept as SBSYS ESDH cases (as in Odense), with their own life."""
    rng, m = pop.rng, pop.m
    for c in list(m.cases):
        s = SERVICE_BY_KEY.get(_service_key(c))
        if s is None or c.system != "dubu" or rng.random() >= s.mirror_share:
            continue
        opened = c.opened_at + timedelta(days=rng.randint(1, 10))
        if opened.date() > today:
            continue
        mc = Case(case_id=b.case_id("sbsys"), system="sbsys", department=c.department,
                  unit_id=c.unit_id, case_type="esdh", title=f"{c.title} (journalsag)",
                  person=c.person, opened_at=opened, law=c.law, paragraph=c.paragraph,
                  legal_bases=list(c.legal_bases), mirror_of=c.case_key)
        mc.status_history = [StatusChange("open", opened)]
        mc.caseworker_history = list(c.caseworker_history[:1])
        mc.caseworker_id = c.caseworker_id
        ended = c.closed_at or (at(c.work_ended_on, rng) if c.work_ended_on else None)
        last = ended or datetime.combine(today, opened.timetz())
        days = (last - opened).days
        for _ in range(min(20, rounded(max(0, days) / 182, rng))):
            when = opened + timedelta(days=rng.randrange(max(1, days)))
            b.add_action(mc, "journal_note", when, "Dokument journaliseret", subtype="dokument")
        if ended is not None and rng.random() >= 0.3:  # 30 % left open in SBSYS
            closed = ended + timedelta(days=rng.randint(7, 60))
            if closed.date() <= today:
                mc.status_history.append(StatusChange("closed", closed))
                mc.closed_at = closed
        elif ended is not None:
            mc.work_ended_on = ended.date()
        mc.actions.sort(key=lambda a: a.occurred_at)
        mc.status = mc.status_history[-1].status
        mc.updated_at = max([mc.status_history[-1].at] + [a.occurred_at for a in mc.actions[-1:]])
        m.cases.append(mc)


def _service_key(c: Case) -> str | None:
    for s in SERVICE_BY_KEY.values():
        if s.case_type == c.case_type:
            return s.key
    return None


def _consents_and_markings(pop: Population, today: date) -> None:
    """Consent to a coordinated pathway for part of the multi-department families (some
    withdrawn), and a Fasit person-group marking for part of those."""
    rng, m, rates = pop.rng, pop.m, pop.rates
    by_household: dict[str, list[Case]] = {}
    household_of = {p.cpr: p.household_id for p in m.persons}
    household_of.update({p.substitute_number: p.household_id for p in m.persons
                         if p.substitute_number})
    for c in m.cases:
        if c.closed_at is None and c.work_ended_on is None:
            by_household.setdefault(household_of[c.person], []).append(c)
    adults = {h.household_id: h.adults for h in m.households}
    for hid in sorted(by_household):
        cases = by_household[hid]
        units = sorted({c.unit_id for c in cases})
        if len({c.department for c in cases}) < 2 or not adults.get(hid):
            continue
        if rng.random() >= rates.consent_share:
            continue
        person = next((c.person for c in cases if c.person in adults[hid]), adults[hid][0])
        if len(units) > 3:
            units = sorted(rng.sample(units, 3))
        start = max(c.opened_at.date() for c in cases) + timedelta(days=rng.randint(7, 60))
        if start >= today:
            continue
        consent = Consent(f"SAM-{m.next_id('consent'):06d}", person, "coordinated_pathway",
                          units, start, start + timedelta(days=730))
        consent.updated_at = at(start, rng)
        if rng.random() < rates.consent_withdrawn and (today - start).days > 14:
            consent.withdrawn_on = start + timedelta(days=rng.randrange(7, (today - start).days))
            consent.updated_at = at(consent.withdrawn_on, rng)
        m.consents.append(consent)
        if rng.random() < rates.marking_share:
            frm = min(today, start + timedelta(days=rng.randint(1, 14)))
            mk = Marking(f"PGM-{m.next_id('marking'):06d}", person, "fasit",
                         "Sammenhængende borgerforløb", frm)
            end = consent.withdrawn_on or (consent.valid_until
                                           if consent.valid_until and consent.valid_until <= today
                                           else None)
            if end is not None and end > frm:
                mk.valid_to = end
            mk.updated_at = at(mk.valid_to or frm, rng)
            m.markings.append(mk)

