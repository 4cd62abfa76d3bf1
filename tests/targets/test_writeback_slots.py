"""Planning the desired state from the per-slot state (``tg_writeback_slot``) instead of the
whole command history: the same decisions as reading the history, over many nights of starts,
changes, ends, restarts, approvals, writes and failures; a database that has only the history is
migrated once; and ``record_plan`` reads only the slots it plans, whatever the record's size."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from hub.domain import rules as r
from hub.targets import writeback as wb
from projections.db import readmodel_engine
from projections.rows import among, key_chunks

MARKING = "Sammenhængende borgerforløb"
RULES = r.RuleSet("test", "1", (
    r.Rule("fam", "1", "family_departments", "Familie i BUF og BSF", departments=("BUF", "BSF"),
           relations=("parent",), write_back=r.WriteBack(
               "approval", "fasit", MARKING, pathway_case=True, other_system_marking="fasit")),
    r.Rule("dry", "1", "multi_department", "Tyra", min_departments=2,
           write_back=r.WriteBack("dry-run", pathway_case=True, other_system_marking="fasit")),
))
CASES = ("case:dubu:D-1", "case:fasit:F-1", "case:sbsys:S-1", "case:fasit:F-2")
DAY0 = date(2026, 3, 2)


# --- the old code path: each slot's past read from the whole record (reference) ----------------


def _ref_history(conn: sa.Connection, slots: set[tuple[str, str, str]]
                 ) -> dict[tuple[str, str, str], list[list[Any]]]:
    w = wb.WRITEBACK
    rows: list[Any] = []
    by_rule: dict[str, set[str]] = {}
    for _, rule_id, subject in slots:
        by_rule.setdefault(rule_id, set()).add(subject)
    for rule_id, subjects in by_rule.items():
        rows += conn.execute(sa.select(w.c.command, w.c.status, w.c.planned_at).where(
            w.c.kind.in_(wb._SLOT_KINDS), w.c.rule_id == rule_id,
            w.c.subject.in_(sorted(subjects)))).all()
    decoded = [(wb.decode(row.command), row.status, row.planned_at) for row in rows]
    decoded.sort(key=lambda x: (x[2], wb._RANK[type(x[0])]))
    out: dict[tuple[str, str, str], list[list[Any]]] = {}
    for c, status, _ in decoded:
        out.setdefault(wb._slot(c), []).append([c, status])
    return out


def _ref_reconcile(c: Any, past: list[list[Any]]) -> Any:
    case = (wb.CreatePathwayCase, wb.UpdatePathwayCase)
    latest = past[-1][0] if past else None
    if isinstance(c, wb.EndMarking):
        return (dataclasses.replace(c, persons=latest.persons)
                if isinstance(latest, wb.SetMarking) else c)
    if isinstance(c, wb.SetMarking):
        return c
    if isinstance(c, wb._PATHWAY):
        episode = [x for x in past if isinstance(x[0], case)]
        active = latest if isinstance(latest, case) else None
        if isinstance(c, wb.PassivatePathwayCase):
            return None if active is None else dataclasses.replace(
                c, external_key=active.external_key)
        if active is None:
            n = sum(isinstance(x[0], wb.CreatePathwayCase) for x in past)
            key = c.external_key if n == 0 else f"{c.external_key}:{n + 1}"
            return wb._renamed(c, wb.CreatePathwayCase, external_key=key)
        if (active.title, active.parties, active.evidence) == (c.title, c.parties, c.evidence):
            return None
        written = any(x[1] == "done" and x[0].external_key == active.external_key
                      for x in episode)
        return wb._renamed(c, wb.UpdatePathwayCase if written else wb.CreatePathwayCase,
                           external_key=active.external_key)
    active_set = latest if isinstance(latest, wb.SetOtherSystemMarking) else None
    unwritten = bool(past) and past[-1][1] != "done"
    carrying = set(getattr(latest, "persons", ())) if isinstance(latest, wb._OTHER) else set()
    if unwritten and isinstance(latest, wb.SetOtherSystemMarking):
        carrying |= set(latest.drop)
    if isinstance(c, wb.EndOtherSystemMarking):
        return None if active_set is None else dataclasses.replace(
            c, persons=tuple(sorted(carrying)))
    if active_set is None:
        left = carrying - set(c.persons) if unwritten else set()
        return dataclasses.replace(c, since=c.valid_from, drop=tuple(sorted(left)))
    if (active_set.text, active_set.persons) == (c.text, c.persons):
        return None
    return dataclasses.replace(c, since=active_set.since or active_set.valid_from,
                               drop=tuple(sorted(carrying - set(c.persons))))


def _ref_supersedes(new: Any, old: Any) -> bool:
    if isinstance(old, wb.SetMarking):
        return isinstance(new, wb.EndMarking)
    if isinstance(old, wb.EndMarking):
        return isinstance(new, wb.SetMarking)
    if isinstance(old, wb.EndOtherSystemMarking):
        return isinstance(new, wb.SetOtherSystemMarking)
    if isinstance(old, wb.CreatePathwayCase | wb.UpdatePathwayCase):
        return isinstance(new, wb._PATHWAY) and new.external_key == old.external_key
    return isinstance(old, wb.SetOtherSystemMarking) and isinstance(new, wb._OTHER)


def ref_record_plan(conn: sa.Connection, planned: list[tuple[Any, str]], now: datetime) -> int:
    """``record_plan`` as it was before the per-slot state (history read per slot)."""
    wb.WRITEBACK.create(conn, checkfirst=True)
    w = wb.WRITEBACK
    known = wb.recorded(conn, [c.command_id for c, _ in planned])
    fresh = [(c, mode) for c, mode in planned if c.command_id not in known]
    history = _ref_history(conn, {s for c, _ in fresh if (s := wb._slot(c)) is not None})
    rows, superseded = [], []
    for c, mode in fresh:
        slot = wb._slot(c)
        if slot is not None:
            past = history.setdefault(slot, [])
            done = _ref_reconcile(c, past)
            if done is None or done.command_id in known:
                continue
            c = done
            for entry in past:
                if entry[1] in wb.PENDING and _ref_supersedes(c, entry[0]):
                    entry[1] = "superseded"
                    superseded.append(entry[0].command_id)
            past.append([c, "planned"])
        known.add(c.command_id)
        rows.append({"command_id": c.command_id, "kind": type(c).__name__,
                     "rule_id": c.rule_id, "subject": c.subject, "system": c.system,
                     "mode": mode, "status": "planned", "command": wb._encode(c),
                     "attempts": 0, "planned_at": now})
    if rows:
        conn.execute(w.insert(), rows)
    for chunk in key_chunks(conn, superseded):
        conn.execute(w.update().where(among(conn, w.c.command_id, chunk),
                                      w.c.status.in_(wb.PENDING))
                     .values(status="superseded", decided_at=now))
    return len(rows)


# --- a scenario: many nights of matches starting, changing, ending and starting again ----------


def _evidence(rng: random.Random) -> tuple[str, ...]:
    cases = rng.sample(CASES, rng.randint(1, 3))
    parents = [f"relation:parent:P{rng.randint(0, 2)}" for _ in range(rng.randint(0, 2))]
    return tuple(sorted({*cases, *parents}))


def _nights(n: int, subjects: int = 14, seed: int = 7):
    """(day, started, ended, current) for ``n`` nights."""
    rng = random.Random(seed)
    active: dict[tuple[str, str], r.Match] = {}
    for night in range(n):
        started, ended = [], []
        for rule in RULES.rules:
            for i in range(subjects):
                key = (rule.rule_id, f"s{i:02d}" * 4)
                m = active.get(key)
                roll = rng.random()
                if m is None and roll < 0.4:
                    active[key] = r.Match(*key[:1], "1", key[1], key[1], _evidence(rng))
                    started.append(active[key])
                elif m is not None and roll < 0.15:
                    ended.append(active.pop(key))
                elif m is not None and roll < 0.5:
                    active[key] = dataclasses.replace(m, evidence=_evidence(rng))
        yield DAY0 + timedelta(days=night), started, ended, dict(active)


def _rows(conn: sa.Connection) -> list[tuple[Any, ...]]:
    w = wb.WRITEBACK
    return sorted(tuple(row) for row in conn.execute(sa.select(
        w.c.command_id, w.c.kind, w.c.mode, w.c.status, w.c.command)))


def _carry_out(conns: list[sa.Connection], rng: random.Random, at: datetime) -> None:
    """As leaders and ``execute`` would: approve some, write some, fail some (the same in each
    database)."""
    w = wb.WRITEBACK
    waiting = conns[0].execute(sa.select(w.c.command_id).where(
        w.c.status.in_(wb.PENDING), w.c.mode != "dry-run").order_by(w.c.command_id)).scalars()
    for command_id in list(waiting):
        status = rng.choice(("planned", "approved", "done", "done", "failed"))
        for conn in conns:
            conn.execute(w.update().where(w.c.command_id == command_id).values(
                status=status, attempts=w.c.attempts + 1, written_at=at))


def _run_both(url: str, reference_url: str, nights: int, switch_at: int = 0
              ) -> dict[str, int]:
    """Each night planned into two databases: ``reference_url`` always by the old code path,
    ``url`` by it before night ``switch_at`` and by ``record_plan`` from then on. Both
    records are compared after every night. Returns how often each kind was recorded."""
    engine, reference = readmodel_engine(url), readmodel_engine(reference_url)
    rng = random.Random(11)
    kinds: dict[str, int] = {}
    try:
        for night, (day, started, ended, current) in enumerate(_nights(nights)):
            now = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=2)
            planned = wb.plan(RULES, started, ended, day, current)
            with engine.begin() as conn, reference.begin() as ref:
                for _ in range(2 if night % 4 == 3 else 1):  # a repeated run records nothing
                    n = (wb.record_plan if night >= switch_at else ref_record_plan)(
                        conn, planned, now)
                    assert n == ref_record_plan(ref, planned, now)
                assert _rows(conn) == _rows(ref), f"night {night}"
                _carry_out([ref, conn], rng, now + timedelta(hours=1))
        with reference.begin() as ref:
            for row in _rows(ref):
                c = wb.decode(row[4])
                name = row[1] + (":2" if getattr(c, "external_key", "").endswith(":2") else "")
                kinds[name] = kinds.get(name, 0) + 1
                kinds[row[3]] = kinds.get(row[3], 0) + 1
                if isinstance(c, wb.SetOtherSystemMarking) and c.drop:
                    kinds["drop"] = kinds.get("drop", 0) + 1
    finally:
        engine.dispose()
        reference.dispose()
    return kinds


def test_plan_from_the_slot_state_equals_the_plan_from_the_history(store_url, tmp_path):
    kinds = _run_both(store_url, f"sqlite:///{tmp_path / 'reference.db'}", nights=14)
    # the scenario went through every decision: creations, updates, a case re-created after a
    # restart, ends, lines changed with persons dropped, approvals, writes, failures, supersedes
    for kind in ("SetMarking", "EndMarking", "CreatePathwayCase", "UpdatePathwayCase",
                 "CreatePathwayCase:2", "PassivatePathwayCase", "SetOtherSystemMarking",
                 "EndOtherSystemMarking", "drop", "approved", "done", "failed", "superseded"):
        assert kinds.get(kind, 0) > 0, kind


def test_a_record_without_slots_is_migrated_once(store_url, tmp_path, monkeypatch):
    """Nights planned by the old code (only ``tg_writeback``), then by ``record_plan``: it fills
    the slots from the record once and decides as the old code would."""
    _run_both(store_url, f"sqlite:///{tmp_path / 'reference.db'}", nights=12, switch_at=6)
    engine = readmodel_engine(store_url)
    t = wb.SLOTS
    try:
        with engine.begin() as conn:
            assert wb._fill_slots(conn) is False  # done once
            filled = conn.execute(sa.select(t)).all()
            assert len(filled) > 20
            conn.execute(t.delete().where(t.c.thing == wb._FILLED["thing"]))
        # without the marker (a fill that never committed): again, in chunks of a few rows
        # (slot rows written while the record is still being read)
        monkeypatch.setattr(wb, "_FILL_CHUNK", 7)
        with engine.begin() as conn:
            assert wb._fill_slots(conn) is True
            refilled = {(x.rule_id, x.subject, x.thing): x
                        for x in conn.execute(sa.select(t))}
        # the state kept night by night is the state the record gives
        for row in filled:
            again = refilled[(row.rule_id, row.subject, row.thing)]
            # (``written`` and ``waiting`` are brought up to date lazily, when a slot changes:
            # the decisions made from them are compared night by night in _run_both)
            assert (row.latest, row.digest, row.creates) == (
                again.latest, again.digest, again.creates)
    finally:
        engine.dispose()


def test_a_database_with_only_the_history_plans_as_before(sqlite_url, tmp_path):
    """Straight from a record written by the old code: the first ``record_plan`` fills the
    slots in its own transaction (rolled back with it), then plans as the old code would."""
    engine = readmodel_engine(sqlite_url)
    nights = list(_nights(6))
    try:
        with engine.begin() as conn:
            for day, started, ended, current in nights[:5]:
                ref_record_plan(conn, wb.plan(RULES, started, ended, day, current),
                                datetime.combine(day, datetime.min.time(), UTC))
        day, started, ended, current = nights[5]
        planned = wb.plan(RULES, started, ended, day, current)
        now = datetime.combine(day, datetime.min.time(), UTC)
        with engine.connect() as conn:
            with conn.begin() as tx:
                assert ref_record_plan(conn, planned, now) > 0
                expected = _rows(conn)
                tx.rollback()
            with conn.begin() as tx:
                wb.record_plan(conn, planned, now)
                assert _rows(conn) == expected
                assert conn.execute(sa.select(sa.func.count()).select_from(wb.SLOTS)).scalar()
                tx.rollback()
            assert not sa.inspect(conn).has_table("tg_writeback_slot") or not conn.execute(
                sa.select(sa.func.count()).select_from(wb.SLOTS)).scalar()
    finally:
        engine.dispose()


# --- what record_plan reads ----------------------------------------------------------------------


def _keys(params: Any) -> int:
    values = params.values() if isinstance(params, dict) else params
    return sum(len(v) if isinstance(v, list | tuple) else 1 for v in values)


def test_record_plan_reads_only_the_slots_it_plans(store_url):
    """Every night each of 30 continuing matches changes (so its case is updated and its line
    replaced): the record grows, yet what ``record_plan`` reads does not. It never selects
    commands from ``tg_writeback`` but by id, and asks for as many keys each night."""
    engine = readmodel_engine(store_url)
    rule = RULES.rules[0]
    seen: list[tuple[str, Any]] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    asked: list[tuple[int, int]] = []
    with engine.begin() as conn:  # the tables, and the (empty) record's slots filled
        wb.record_plan(conn, [], datetime.now(UTC))
    try:
        for night in range(8):
            day = DAY0 + timedelta(days=night)
            current = {(rule.rule_id, f"m{i:03d}"): r.Match(
                rule.rule_id, "1", f"m{i:03d}", f"m{i:03d}",
                ("case:dubu:D-1", "case:fasit:F-1", *(("case:sbsys:S-1",) if night % 2 else ()),
                 f"relation:parent:P{i}", f"grant:G-{night}")) for i in range(30)}
            started = list(current.values()) if night == 0 else []
            planned = wb.plan(RULES, started, [], day, current)
            now = datetime.combine(day, datetime.min.time(), UTC)
            with engine.begin() as conn:
                seen.clear()
                sa.event.listen(conn, "before_cursor_execute", listen)
                recorded = wb.record_plan(conn, planned, now)
                sa.event.remove(conn, "before_cursor_execute", listen)
                assert recorded == (90 if night == 0 else 60)
                conn.execute(wb.WRITEBACK.update().where(  # the leader's approvals, written
                    wb.WRITEBACK.c.status == "planned").values(status="done"))
            by_id = slot_keys = 0
            for statement, parameters in seen:
                text = " ".join(statement.split())
                if not text.startswith("SELECT") or "FROM tg_writeback" not in text:
                    continue
                if "FROM tg_writeback_slot" in text:
                    slot_keys += _keys(parameters)
                    continue
                assert ("tg_writeback.command_id IN" in text
                        or "tg_writeback.command_id = ANY" in text), text
                by_id += _keys(parameters)
            asked.append((by_id, slot_keys))
    finally:
        engine.dispose()
    # the planned ids and the changed slots' latest commands; the slots (per rule and thing:
    # rule, thing, subjects; and the fill marker): the same each night from the second on,
    # whatever the record holds
    assert asked[1] == asked[-1] and asked[1][0] <= 60 + 60 and asked[1][1] <= 2 * (2 + 30) + 3
    with readmodel_engine(store_url).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(wb.WRITEBACK)).scalar() > 450


@pytest.mark.parametrize("now_first", [True, False])
def test_slot_keeps_the_latest_in_record_order(now_first):
    """The latest command is the latest in (planning time, kind) order, as the record reads
    back, whatever the order the commands were added in; it is also what is stored."""
    s = wb._SlotState()
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    create = wb.CreatePathwayCase("c", "r", "s", "T", "k")
    passivate = wb.PassivatePathwayCase("p", "r", "s", "k")
    s.add(passivate, late if now_first else early, "automatic")
    s.add(create, early if now_first else late, "automatic")
    latest = passivate if now_first else create
    assert s.latest_obj is latest and s.latest_id == latest.command_id and s.creates == 1
    assert s.values()["latest"] == latest.command_id


def test_commands_recorded_together_or_one_call_each_decide_the_same(store_url, tmp_path):
    """Several commands for one slot in one ``record_plan`` call are completed from the same
    state as when recorded one call each at the same time: the slot's latest in the record's
    order (an end planned with a new line at the same moment comes after it)."""
    rule, subject = "fam", "s1" * 8
    key = wb.external_key(rule, subject)

    def line(name: str, persons: tuple[str, ...], on: date) -> wb.SetOtherSystemMarking:
        return wb.SetOtherSystemMarking(f"SetOtherSystemMarking:{rule}:{subject}:{name}", rule,
                                        subject, "fasit", key, f"line {name}", persons, on)

    day = DAY0 + timedelta(days=1)
    first = line("x", ("P1", "P2", "P3"), DAY0)
    then = [wb.EndOtherSystemMarking(f"EndOtherSystemMarking:{rule}:{subject}:e", rule, subject,
                                     "fasit", key, day),
            line("a", ("P1", "P2"), day), line("b", ("P1",), day)]
    at = datetime.combine(day, datetime.min.time(), UTC)
    records = []
    for url, calls in ((store_url, [then]), (f"sqlite:///{tmp_path / 'each.db'}",
                                             [[c] for c in then])):
        engine = readmodel_engine(url)
        try:
            with engine.begin() as conn:
                wb.record_plan(conn, [(first, "approval")], at - timedelta(days=1))
                for commands in calls:
                    wb.record_plan(conn, [(c, "approval") for c in commands], at)
                records.append(_rows(conn))
        finally:
            engine.dispose()
    assert records[0] == records[1]
    by_id = {row[0]: (row[3], wb.decode(row[4])) for row in records[0]}
    # "a" never gets written (superseded by "b"); nor did "x", but "b" cannot know that P2 and
    # P3 never got the line, so it takes it off them (a no-op in the fagsystem if they lack it)
    assert by_id[then[1].command_id][0] == "superseded"
    assert by_id[then[2].command_id][1].drop == ("P2", "P3")
