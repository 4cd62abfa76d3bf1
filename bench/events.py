"""A quick, realistic mix of canonical events for benchmarks (sizes and shapes like the demo's:
persons, cases with caseworkers, journal notes, grants, status changes)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

from hub.domain import events as ev
from hub.domain.cpr import synthetic_cpr

_NS = uuid.UUID("0b7d4a52-35b9-4d8e-9a43-4f5f0a0c1d11")
FIRST = ["Anna", "Mette", "Sofie", "Ida", "Lars", "Jens", "Mikkel", "Frederik", "Emma", "Noah"]
LAST = ["Glasmose", "Testesen", "Prøvegaard", "Eksempelsen", "Fiktivsen", "Demoholm"]
DEPTS = [("BUF", "dubu", "BL", "32"), ("BSF", "fasit", "LAS", "11"),
         ("VOKSEN", "cura", "SEL", "85"), ("JOBCENTER", "fasit", "LAB", "68 a")]
NOTE = "Samtale med borgeren om mål og indsats. Aftalt ny opfølgning om seks uger."


def realistic_events(n: int, seed: int = 1) -> list[ev.CanonicalEvent]:
    rnd = random.Random(seed)
    out: list[ev.CanonicalEvent] = []
    t0 = datetime(2021, 1, 1, tzinfo=UTC)
    p = 0
    while len(out) < n:
        p += 1
        born = date(1950, 1, 1) + timedelta(days=rnd.randrange(365 * 60))
        cpr = synthetic_cpr(born, p)
        at = t0 + timedelta(minutes=rnd.randrange(60 * 24 * 900))

        def add(payload, *, case_key=None, src="cpr", rid=None, actor=None, when=None, at=at,
                cpr=cpr):
            rid = rid or f"{src}-{len(out)}"
            out.append(ev.CanonicalEvent(
                event_id=uuid.uuid5(_NS, f"{src}/{rid}"), source_system=src,
                source_record_id=rid, source_version="1", occurred_at=when or at,
                payload=payload, person=cpr, case_key=case_key, actor=actor))

        add(ev.PersonRegistered(
            first_name=rnd.choice(FIRST), last_name=rnd.choice(LAST), birth_date=born, sex="K",
            address=ev.Address(street="Glasvej", house_number=str(rnd.randrange(1, 200)),
                               postcode="9990", city="Glasby", address_id=str(uuid.uuid4()))))
        for c in range(rnd.choice((1, 1, 2))):
            dept, system, law, par = rnd.choice(DEPTS)
            case_key = f"{system}:{p}-{c}"
            worker = f"cw-{rnd.randrange(400)}"
            add(ev.CaseOpened(department=dept, unit_id=f"{dept}-1", unit_name=f"{dept} enhed",
                              case_type="Sag", status="open", title="Sag om støtte til borger",
                              law=law, paragraph=par), case_key=case_key, src=system)
            add(ev.CaseworkerAssigned(caseworker_id=worker, caseworker_name="Sagsbehandler Test",
                                      unit_id=f"{dept}-1", contact="sb@glasby.invalid"),
                case_key=case_key, src=system, actor=worker)
            add(ev.GrantAwarded(grant_id=f"g-{p}-{c}", kind="service", law=law, paragraph=par,
                                title="Socialpædagogisk støtte", granting_unit_id=f"{dept}-1",
                                granting_unit_name=f"{dept} enhed", valid_from=at.date(),
                                extent="3 timer/uge", hours_per_week=3.0),
                case_key=case_key, src=system, actor=worker)
            for k in range(rnd.randrange(3, 12)):
                add(ev.CaseActionRecorded(
                    action_id=f"a-{p}-{c}-{k}", action_type="journal_note", subtype="opfølgning",
                    title="Opfølgning på handleplan",
                    text=NOTE),
                    case_key=case_key, src=system, actor=worker,
                    when=at + timedelta(days=14 * (k + 1)))
            add(ev.CaseStatusChanged(status="closed", previous_status="open"), case_key=case_key,
                src=system, actor=worker, when=at + timedelta(days=400))
    return out[:n]
