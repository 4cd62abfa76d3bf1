"""Cases (sager) with grants and actions for the synthetic municipality's services."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hub.synthetic.model import (
    Case,
    CaseAction,
    Caseworker,
    CaseworkerChange,
    Grant,
    LegalBasis,
    Municipality,
    Person,
    StatusChange,
    Unit,
)
from hub.synthetic.names import FEMALE, LAST, MALE
from hub.synthetic.rates import (
    BARNETS_LOV_FROM,
    HISTORY_FROM,
    UNIT_BY_ID,
    UNITS,
    Rates,
    Service,
)

TZ = ZoneInfo("Europe/Copenhagen")
_YEAR = 365.25


def at(d: date, rng: random.Random) -> datetime:
    """A business timestamp on ``d`` within office hours (local time)."""
    return datetime.combine(d, time(8 + rng.randrange(7), rng.randrange(60)), TZ)


def rounded(x: float, rng: random.Random) -> int:
    """Stochastic rounding: right on average, also for small municipalities."""
    n = int(x)
    return n + (rng.random() < x - n)


@dataclass
class Episode:
    person: Person
    service: Service
    start: date
    end: date | None  # None: still going at as_of


class CaseBuilder:
    """Builds cases into ``m``; shared by ``generate`` and ``evolve``."""

    def __init__(self, m: Municipality, rng: random.Random, rates: Rates):
        self.m, self.rng, self.rates = m, rng, rates
        self.by_unit: dict[str, list[str]] = {}
        for cw in m.caseworkers:
            self.by_unit.setdefault(cw.unit_id, []).append(cw.caseworker_id)

    # --- ids ---------------------------------------------------------------------------------

    def case_id(self, system: str) -> str:
        if system == "fasit":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        start = {"dubu": 600_000, "sbsys": 140_000, "cura": 1_000_000}[system]
        return str(self.m.next_id(f"case:{system}", start))

    def action_id(self, case: Case) -> str:
        return f"{case.system[0]}{self.m.next_id(f'action:{case.system}', 1):08d}"

    def grant_id(self, system: str) -> str:
        return f"{system[0].upper()}G{self.m.next_id(f'grant:{system}', 1):07d}"

    # --- cases -------------------------------------------------------------------------------

    def unit_for(self, service: Service, person: Person, today: date) -> str:
        if service.key == "sel85":
            r = self.rng.random()
            if r < 0.7:
                return "VOK-STOTTE"
            return "BUF-UNGE" if _age(person, today) < 30 else "BSF-RAAD"
        return self.rng.choice(service.units)

    def build(self, ep: Episode, today: date, unit_id: str | None = None,
              hours: tuple[float, float] | None = None) -> Case:
        """One case for an episode: legal bases, status history, grants, actions."""
        rng, s = self.rng, ep.service
        unit = UNIT_BY_ID[unit_id or self.unit_for(s, ep.person, today)]
        opened_at = at(ep.start, rng)
        end = ep.end
        left_open = end is not None and rng.random() < self.rates.left_open_share
        ident = ep.person.cpr
        if ep.person.substitute_number and ep.person.cpr_assigned_on and \
                ep.start < ep.person.cpr_assigned_on:
            ident = ep.person.substitute_number  # the system knew only the substitute number
        case = Case(
            case_id=self.case_id(unit.system), system=unit.system, department=unit.department,
            unit_id=unit.unit_id, case_type=s.case_type, title=s.title, person=ident,
            opened_at=opened_at)
        case.legal_bases = legal_bases(s, ep.start, end or today)
        case.law, case.paragraph = case.legal_bases[-1].law, case.legal_bases[-1].paragraph
        case.status_history = [StatusChange("open", opened_at)]
        self.assign_caseworkers(case, ep, today)
        stop = min(end or today, today)
        decided = None
        if s.grant_kind != "none":
            applied = ep.start
            decided = min(applied + timedelta(days=rng.randint(*s.decision_days)), stop)
            self.add_grants(case, s, applied, decided, end, today, hours)
            self.add_action(case, "application", at(applied, rng), "Ansøgning modtaget",
                         subtype=s.case_type)
            self.add_action(case, "decision", at(decided, rng), "Afgørelse: bevilget",
                         subtype="bevilling")
            if decided < stop:
                case.status_history.append(StatusChange("active", at(decided, rng)))
        self._routine(case, s, ep.start, stop, decided)
        if end is not None and end <= today:
            if left_open:
                case.work_ended_on = end
            else:
                closed = at(end, rng)
                case.status_history.append(StatusChange("closed", closed))
                case.closed_at = closed
                self.add_action(case, "journal_note", closed, "Sagen afsluttet",
                             subtype="afslutning")
        case.actions.sort(key=lambda a: a.occurred_at)
        case.status_history.sort(key=lambda c: c.at)
        case.status = case.status_history[-1].status
        case.updated_at = max([case.opened_at] + [a.occurred_at for a in case.actions[-1:]]
                              + [case.status_history[-1].at])
        return case

    def assign_caseworkers(self, case: Case, ep: Episode, today: date) -> None:
        pool = self.by_unit[case.unit_id]
        first = self.rng.choice(pool)
        case.caseworker_history = [CaseworkerChange(first, case.opened_at)]
        last = min(ep.end or today, today)
        if (last - ep.start).days > 365 and len(pool) > 1 and \
                self.rng.random() < self.rates.caseworker_change:
            when = ep.start + timedelta(days=self.rng.randrange(90, (last - ep.start).days))
            other = self.rng.choice([c for c in pool if c != first])
            case.caseworker_history.append(CaseworkerChange(other, at(when, self.rng)))
        case.caseworker_id = case.caseworker_history[-1].caseworker_id

    def worker_at(self, case: Case, when: datetime) -> str | None:
        current = case.caseworker_id
        for ch in case.caseworker_history:
            if ch.at <= when:
                current = ch.caseworker_id
        return current

    def add_grants(self, case: Case, s: Service, applied: date, decided: date, end: date | None,
                today: date, hours: tuple[float, float] | None) -> None:
        rng = self.rng
        periods = [(decided, end)]
        last = min(end or today, today)
        if (last - decided).days > 400 and rng.random() < 0.25:
            cut = decided + timedelta(days=rng.randrange(180, (last - decided).days - 90))
            periods = [(decided, cut), (cut, end)]
        for i, (frm, to) in enumerate(periods):
            law, paragraph = law_on(s, frm)
            g = Grant(
                grant_id=self.grant_id(case.system), kind=s.grant_kind, law=law,
                paragraph=paragraph, title=rng.choice(s.grant_titles),
                granting_unit_id=case.unit_id, valid_from=frm, valid_to=to,
                applied_on=applied if i == 0 else frm - timedelta(days=rng.randint(7, 30)),
                decided_on=decided if i == 0 else frm)
            span = hours or s.hours
            if span:
                g.hours_per_week = round(rng.uniform(*span) * 2) / 2 or 0.5
                g.extent = f"{g.hours_per_week:g} timer pr. uge"
            if s.monthly_rate:
                g.monthly_rate = float(rng.randrange(*s.monthly_rate, 50))
                g.extent = "månedlig ydelse"
            if to is not None and to <= today:
                g.ended_reason = "ophørt" if i == len(periods) - 1 else "afløst af ny bevilling"
            case.grants.append(g)

    def add_action(self, case: Case, action_type: str, when: datetime, title: str,
                subtype: str | None = None, text: str | None = None) -> None:
        if when.date() < HISTORY_FROM:
            return
        case.actions.append(CaseAction(self.action_id(case), action_type, when, title, subtype,
                                       text, self.worker_at(case, when)))

    def _routine(self, case: Case, s: Service, start: date, stop: date,
                 decided: date | None) -> None:
        """Follow-ups by cadence (with misses and delays), notes, meetings, service specifics."""
        rng = self.rng
        c = s.cadence
        if c is not None:
            due, n = start + timedelta(days=c.first_days), 0
            while due <= stop:
                if due >= HISTORY_FROM and rng.random() >= c.miss:
                    held = due + (timedelta(days=rng.randint(7, 42)) if rng.random() < c.late
                                  else timedelta(days=rng.randint(-3, 3)))
                    if held <= stop:
                        self.add_action(case, "follow_up", at(held, rng), "Opfølgning",
                                     subtype=f"opfølgning {n + 1}")
                n += 1
                step = c.every_days if (due - start).days < 365 else c.later_days
                due += timedelta(days=step)
        span_days = (stop - max(start, HISTORY_FROM)).days
        if span_days > 0:
            for _ in range(min(60, rounded(s.notes_per_year * span_days / _YEAR, rng))):
                d = max(start, HISTORY_FROM) + timedelta(days=rng.randrange(span_days))
                r = rng.random()
                kind, title, sub = (("journal_note", "Journalnotat", "notat") if r < 0.7 else
                                    ("meeting", "Samtale med borgeren", "samtale") if r < 0.9 else
                                    ("activity", "Henvendelse", "henvendelse"))
                if s.key in ("placement", "preventive") and kind == "meeting":
                    title, sub = rng.choice((("Børnesamtale", "børnesamtale"),
                                             ("Netværksmøde", "netværksmøde")))
                self.add_action(case, kind, at(d, rng), title, subtype=sub)
        if s.key == "sickness_benefit" and (stop - start).days >= 154:
            self.add_action(case, "follow_up", at(start + timedelta(days=154), rng),
                         "Revurdering efter 22 uger", subtype="revurdering")
        if s.key in ("sel107", "sel108") and decided is not None:
            self.add_action(case, "decision", at(decided + timedelta(days=rng.randint(0, 30)), rng),
                         "Handleplan", subtype="handleplan § 141")
        if s.key == "notification":
            src = rng.choice(("skole", "daginstitution", "politi", "sundhedspleje", "anonym"))
            self.add_action(case, "notification", case.opened_at, "Underretning modtaget",
                         subtype=src)
            self.add_action(case, "follow_up", case.opened_at + timedelta(hours=rng.randint(2, 23)),
                         "Vurdering inden 24 timer", subtype="24-timers vurdering")


def legal_bases(s: Service, start: date, until: date) -> list[LegalBasis]:
    if s.old_law is None or start >= BARNETS_LOV_FROM:
        return [LegalBasis(s.law, s.paragraph, start)]
    bases = [LegalBasis(s.old_law[0], s.old_law[1], start)]
    if until >= BARNETS_LOV_FROM:
        bases.append(LegalBasis(s.law, s.paragraph, BARNETS_LOV_FROM))
    return bases


def law_on(s: Service, d: date) -> tuple[str, str]:
    if s.old_law is not None and d < BARNETS_LOV_FROM:
        return s.old_law
    return s.law, s.paragraph


def _age(p: Person, today: date) -> int:
    return (today - p.birth_date).days // 365


def make_units_and_caseworkers(m: Municipality, rng: random.Random, citizens: int,
                               rates: Rates) -> None:
    """Units from ``rates.UNITS``; caseworkers per unit from the expected caseload."""
    expected: dict[str, float] = {u.unit_id: 0.0 for u in UNITS}
    for s in rates.services:
        n = s.per_100k * citizens / 100_000
        if s.key == "sel85":
            expected["VOK-STOTTE"] += 0.7 * n
            expected["BUF-UNGE"] += 0.1 * n
            expected["BSF-RAAD"] += 0.2 * n
            continue
        for u in s.units:
            expected[u] += n / len(s.units)
    for spec in UNITS:
        m.units.append(Unit(spec.unit_id, spec.name, spec.department))
        for i in range(max(2, math.ceil(expected[spec.unit_id] / spec.caseload))):
            first = rng.choice(FEMALE + MALE)
            last = rng.choice(LAST)
            initials = f"{first[:2]}{last[:2]}".lower().replace("ø", "oe").replace("æ", "ae")
            initials = initials.replace("å", "aa")
            cw_id = f"{spec.unit_id}-{i + 1:03d}"
            m.caseworkers.append(Caseworker(cw_id, f"{first} {last}", spec.unit_id,
                                            f"{initials}{i + 1}@glasby.dk"))
