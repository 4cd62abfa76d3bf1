"""Coordinated pathways (sammenhængende borgerforløb) for consenting multi-department families,
and fagsystem registrations under another spelling of the last name.

Pathways are kept in SBSYS (as Odense's pathway cases are): started some days after the consent,
a tovholder from the anchor unit, regular meetings, the 16 and 17½ meetings of young members
(some missed, as Ballerup tracks), plan updates with a progression of 1-10, and a closing for
some (job_or_education, returned_to_department, no_longer_in_target_group). Young people with a
BUF case also consent to a pathway ahead of the transition at 18. The steps draw from
the generator's own ``random.Random`` after everything else, so older data stays the same.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from hub.domain.rules import add_months
from hub.synthetic.cases import TZ, at
from hub.synthetic.model import Case, Consent, Municipality, Pathway, PathwayMeeting, PlanUpdate
from hub.synthetic.rates import Rates

PATHWAY_SYSTEM = "sbsys"
#: The 16 and 17½ meetings (months of age, meeting type), as in deploy/rules/ballerup.toml.
YOUTH_MEETINGS = ((192, "ungemoede-16"), (210, "ungemoede-17.5"))
CLOSE_REASONS = ("job_or_education", "returned_to_department", "no_longer_in_target_group")
_CLOSE_WEIGHTS = (0.4, 0.35, 0.25)
_MAX_REGULAR = 40


def add_youth_consents(m: Municipality, rng: random.Random, rates: Rates, today: date) -> None:
    """Young people of 15-17 with an active BUF case who consented (from 15) to a pathway
    across the children's area and the adult units ahead of the transition at 18 (Ballerup's
    Borgerplanen), so the 16 and 17½ meetings fall inside pathways."""
    units = {u.unit_id for u in m.units}
    adult = [u for u in ("JC-KONT", "VOK-STOTTE") if u in units]
    young = {p.cpr: p for p in m.persons if p.died_on is None
             and add_months(p.birth_date, 180) <= today < add_months(p.birth_date, 216)}
    seen: set[str] = set()
    for c in m.cases:
        p = young.get(c.person)
        if (p is None or p.cpr in seen or c.department != "BUF" or c.closed_at is not None
                or c.work_ended_on is not None or not adult):
            continue
        seen.add(p.cpr)
        if rng.random() >= rates.youth_pathway_share:
            continue
        start = max(c.opened_at.date() + timedelta(days=rng.randint(14, 90)),
                    add_months(p.birth_date, 174) + timedelta(days=rng.randint(0, 120)))
        if start >= today:
            continue
        unit_ids = sorted({c.unit_id, rng.choice(adult)}
                          | ({"BUF-UNGE"} if "BUF-UNGE" in units else set()))
        consent = Consent(f"SAM-{m.next_id('consent'):06d}", p.cpr, "coordinated_pathway",
                          unit_ids, start, start + timedelta(days=730))
        consent.updated_at = at(start, rng)
        m.consents.append(consent)


def add_pathways(m: Municipality, rng: random.Random, rates: Rates, today: date) -> None:
    """A pathway for part of the consents, with the family members that have active cases."""
    born = {p.cpr: p.birth_date for p in m.persons}
    born.update({p.substitute_number: p.birth_date for p in m.persons if p.substitute_number})
    household_of = {p.cpr: p.household_id for p in m.persons}
    household_of.update({p.substitute_number: p.household_id for p in m.persons
                         if p.substitute_number})
    active: dict[str, list[str]] = {}  # household -> persons with an active case, in case order
    for c in m.cases:
        if c.closed_at is None and c.work_ended_on is None and c.person in household_of:
            people = active.setdefault(household_of[c.person], [])
            if c.person not in people:
                people.append(c.person)
    workers: dict[str, list[str]] = {}
    for w in m.caseworkers:
        workers.setdefault(w.unit_id, []).append(w.caseworker_id)
    for consent in m.consents:
        if consent.purpose != "coordinated_pathway" or rng.random() >= rates.pathway_share:
            continue
        start = consent.valid_from + timedelta(days=rng.randint(3, 30))
        ends = [d for d in (consent.withdrawn_on, consent.valid_until) if d is not None]
        if start >= today or (ends and start >= min(ends)):
            continue
        members = list(active.get(household_of.get(consent.person, ""), []))
        if consent.person not in members:
            members.insert(0, consent.person)
        anchor = rng.choice(consent.unit_ids)
        pw = Pathway(f"FORL-{m.next_id('pathway'):06d}", PATHWAY_SYSTEM, anchor, consent.person,
                     members, consent.consent_id, at(start, rng))
        if workers.get(anchor):
            pw.tovholder_id = rng.choice(workers[anchor])
            pw.tovholder_at = pw.started_at + timedelta(days=rng.randint(0, 14))
        _closing(pw, rng, rates, today, consent.withdrawn_on, consent.valid_until)
        last = pw.closed_at.date() if pw.closed_at else today
        _meetings(pw, rng, rates, last, consent.unit_ids, [born[x] for x in members if x in born])
        _plan(pw, rng, last)
        stamps = [pw.started_at, pw.tovholder_at, pw.closed_at,
                  *(x.held_at for x in pw.meetings[-1:]), *(x.at for x in pw.plan_updates[-1:])]
        pw.updated_at = max(s for s in stamps if s is not None)
        m.pathways.append(pw)


def _closing(pw: Pathway, rng: random.Random, rates: Rates, today: date,
             withdrawn: date | None, valid_until: date | None) -> None:
    start = pw.started_at.date()
    if withdrawn is not None and withdrawn <= today:  # the departments take over again
        pw.closed_at, pw.close_reason = at(withdrawn, rng), "returned_to_department"
    elif (today - start).days > 120 and rng.random() < rates.pathway_closed:
        pw.closed_at = at(start + timedelta(days=rng.randint(90, (today - start).days)), rng)
        pw.close_reason = rng.choices(CLOSE_REASONS, _CLOSE_WEIGHTS)[0]
    elif valid_until is not None and valid_until <= today:
        pw.closed_at, pw.close_reason = at(valid_until, rng), "no_longer_in_target_group"
    if pw.closed_at is not None and pw.closed_at <= pw.started_at:
        pw.closed_at = pw.started_at + timedelta(hours=1)


def _meetings(pw: Pathway, rng: random.Random, rates: Rates, last: date, units: list[str],
              births: list[date]) -> None:
    first, held = pw.started_at.date(), []
    lo, hi = rates.pathway_meeting_days
    day = first + timedelta(days=rng.randint(7, 21))
    while day <= last and len(held) < _MAX_REGULAR:
        held.append(PathwayMeeting(f"{pw.pathway_id}-M{len(held) + 1:03d}", "regular",
                                   at(day, rng), rng.random() < 0.85, list(units)))
        day += timedelta(days=rng.randint(lo, hi))
    n = len(held)
    for born in births:
        for months, mtype in YOUTH_MEETINGS:
            due = add_months(born, months)
            if not first <= due <= last or rng.random() < rates.youth_meeting_missed:
                continue
            when = min(last, max(first, due + timedelta(days=rng.randint(-30, 45))))
            n += 1
            held.append(PathwayMeeting(f"{pw.pathway_id}-M{n:03d}", mtype, at(when, rng),
                                       rng.random() < 0.9, list(units)))
    held.sort(key=lambda x: x.held_at)
    pw.meetings = [x for x in held if x.held_at > pw.started_at
                   and (pw.closed_at is None or x.held_at < pw.closed_at)]


def _plan(pw: Pathway, rng: random.Random, last: date) -> None:
    """A plan within a month, then updates every quarter; progression drifts upwards."""
    day = pw.started_at.date() + timedelta(days=rng.randint(7, 30))
    progression = rng.randint(1, 4)
    while day <= last and len(pw.plan_updates) < 30:
        when = at(day, rng)
        if when <= pw.started_at or (pw.closed_at is not None and when >= pw.closed_at):
            break
        pw.plan_updates.append(PlanUpdate(when, progression, "Fælles plan opdateret"))
        progression = max(1, min(10, progression + rng.choice((-1, 0, 1, 1, 2))))
        day += timedelta(days=rng.randint(75, 110))


def add_fagsystem_spellings(m: Municipality, rng: random.Random, rates: Rates,
                            today: date) -> None:
    """A person with an alternate spelling is registered under it by the fagsystem of their
    first case (not the ESDH system), once the register's address was the current one, so the
    systems differ in the name only."""
    first_case: dict[str, Case] = {}
    for c in m.cases:
        if c.system != PATHWAY_SYSTEM and (c.person not in first_case
                                           or c.opened_at < first_case[c.person].opened_at):
            first_case[c.person] = c
    for p in m.persons:
        c = first_case.get(p.cpr)
        if p.alternate_last_name is None or c is None or p.died_on is not None:
            continue
        if rng.random() >= rates.fagsystem_spelling_registered:
            continue
        when = c.opened_at
        if p.address_changes:
            moved = datetime.combine(p.address_changes[-1].since + timedelta(days=1),
                                     when.timetz())
            when = max(when, moved.replace(tzinfo=TZ))
        if when.date() > today:
            continue
        p.alternate_name_system, p.alternate_name_registered_at = c.system, when
