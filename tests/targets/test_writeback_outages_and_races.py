"""The nightly write-back under what goes wrong: what a municipality would see in its
fagsystemer after outages, late approvals, a rule's rollout from dry-run, a crashed night and two
``execute`` runs at once. Most tests drive ``plan``/``record_plan``/``approve``/``execute`` against
an in-memory fagsystem that is idempotent the way the connectors are (read first, write what is
missing); the concurrency test uses the SBSYS simulator over a real socket."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.domain import rules as r
from hub.targets import writeback as wb
from hub.targets.nightly import EndedMatch
from hub.targets.writers import Written
from projections.db import readmodel_engine
from tests.conftest import make_store
from tests.targets import builders as b
from tests.targets.test_nightly import CHILD
from tests.targets.test_nightly import _family as _odense_family
from tests.targets.test_writeback_sync import _execute, _family, _night, fam  # noqa: F401

MARKING = "Sammenhængende borgerforløb"
DAY0 = date(2026, 3, 2)
S = "s" * 32  # the subject (a pseudonym); the fake fagsystem uses person keys as numbers
KEY = wb.external_key("fam", S)
runner = CliRunner()


def _rules(mode: str) -> r.RuleSet:
    return r.RuleSet("test", "1", (r.Rule(
        "fam", "1", "family_departments", "Familie i BUF og BSF", departments=("BUF", "BSF"),
        relations=("parent",), write_back=r.WriteBack(
            mode, "fasit", MARKING, pathway_case=True, other_system_marking="fasit")),))


def _match(*parents: str) -> r.Match:
    return r.Match("fam", "1", S, S, ("case:dubu:D-1", "case:fasit:F-1",
                                      *(f"relation:parent:{p}" for p in parents)))


class Fagsystem:
    """Fasit and SBSYS as far as the write-back sees them, behind the ``Writers`` protocol."""

    def __init__(self) -> None:
        self.markings: dict[str, set[str]] = {}  # person -> active person-group markings
        self.lines: dict[str, dict[str, str]] = {}  # person -> key -> "case in other system"
        self.cases: list[dict] = []
        self.down = False

    def _up(self) -> None:
        if self.down:
            raise ConnectionError("fagsystem unreachable")

    def set_marking(self, cprs, system, marking_type, valid_from):  # noqa: ANN001, ANN201
        self._up()
        for c in cprs:
            self.markings.setdefault(c, set()).add(marking_type)
        return Written(",".join(cprs), True)

    def end_marking(self, cprs, system, marking_type, ended_on):  # noqa: ANN001, ANN201
        self._up()
        for c in cprs:
            self.markings.get(c, set()).discard(marking_type)
        return Written(",".join(cprs), True)

    def ensure_pathway_case(self, cpr, title, external_key, parties, evidence,  # noqa: ANN001, ANN201
                            evidence_key):  # noqa: ANN001
        self._up()
        for case in self.cases:
            if case["cpr"] == cpr and case["key"] == external_key:
                case["parties"] |= set(parties)
                case["notes"].add(evidence_key)
                return Written(case["key"], True)
        self.cases.append({"cpr": cpr, "key": external_key, "status": "Oprettet",
                           "parties": set(parties), "notes": {evidence_key}})
        return Written(external_key, True)

    def passivate_pathway_case(self, cpr, external_key):  # noqa: ANN001, ANN201
        self._up()
        for case in self.cases:
            if case["cpr"] == cpr and case["key"] == external_key:
                case["status"] = "Passiv"
        return Written(external_key, True)

    def set_other_system_marking(self, system, cprs, key, line, drop, since, on):  # noqa: ANN001, ANN201
        self._up()
        for c in cprs:
            self.lines.setdefault(c, {})[key] = line
        for c in drop:
            self.lines.get(c, {}).pop(key, None)
        return Written(",".join(cprs), True)

    def end_other_system_marking(self, system, cprs, key, ended_on):  # noqa: ANN001, ANN201
        self._up()
        for c in cprs:
            self.lines.get(c, {}).pop(key, None)
        return Written(",".join(cprs), True)

    def has_line(self, person: str) -> bool:
        return KEY in self.lines.get(person, {})

    def active_cases(self) -> list[str]:
        return [c["key"] for c in self.cases if c["status"] != "Passiv"]


@pytest.fixture
def engine(store_url):
    e = readmodel_engine(store_url)
    wb.create_tables(e)
    yield e
    e.dispose()


def _day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def _night_of(engine, rules: r.RuleSet, n: int, now: r.Match | None, before: bool) -> list[str]:
    """Night ``n``: the match as it is now (None: not matched), ``before``: whether it was
    matched the night before. The kinds recorded."""
    started = [now] if now is not None and not before else []
    ended = [EndedMatch("fam", "1", S, "gone")] if now is None and before else []
    current = {("fam", S): now} if now is not None else {}
    planned = wb.plan(rules, started, ended, _day(n), current)
    at = datetime.combine(_day(n), datetime.min.time(), UTC)
    with engine.begin() as conn:
        before_ids = {x.command_id for x in wb.pending(conn)}
        wb.record_plan(conn, planned, at)
        return sorted(x.kind for x in wb.pending(conn) if x.command_id not in before_ids)


def _approve(engine, kinds: set[str] | None = None) -> int:
    with engine.begin() as conn:
        ids = [x.command_id for x in wb.pending(conn, "planned")
               if kinds is None or x.kind in kinds]
        return wb.approve(conn, ids, "leder", datetime.now(UTC))


def _run(engine, fs: Fagsystem) -> dict[str, int]:
    return wb.execute(engine, fs, lambda key: key, lambda: datetime.now(UTC))


# --- a person who leaves the match keeps the "case in another system" line --------------------


@pytest.mark.parametrize("then", ["someone joins", "the match ends"])
def test_a_person_who_left_loses_the_line_when_the_drop_was_superseded(engine, then):
    """The line was written on S, P1 and P2. P2 leaves: the new line takes it off P2 (``drop``)
    but waits for approval (or fails: Fasit down). The next night a newer command supersedes
    it, completed only from that unwritten latest command, so nobody takes the line off P2."""
    fs, rules = Fagsystem(), _rules("approval")
    _night_of(engine, rules, 0, _match("P1", "P2"), before=False)
    _approve(engine)
    _run(engine, fs)
    assert fs.has_line("P2")
    assert "SetOtherSystemMarking" in _night_of(engine, rules, 1, _match("P1"), before=True)
    # not approved before the next night (or approved and failed: the same)
    if then == "someone joins":
        _night_of(engine, rules, 2, _match("P1", "P3"), before=True)
    else:
        _night_of(engine, rules, 2, None, before=True)
    _approve(engine)
    _run(engine, fs)
    assert not fs.has_line("P2"), "P2 left the match but keeps the line in Fasit"


# --- an end approved late undoes the next episode ---------------------------------------------


def test_a_late_approved_end_does_not_undo_the_restarted_match(engine):
    """The match ends (the ends wait for approval), starts again the next night; the leader
    approves the new markings, which are written. The old ends are still 'planned' and can be
    approved afterwards: they take the markings off a citizen who is in the target group, and
    planning never sets them again (the slot's latest command says they are set)."""
    fs, rules = Fagsystem(), _rules("approval")
    _night_of(engine, rules, 0, _match("P1"), before=False)
    _approve(engine)
    _run(engine, fs)
    _night_of(engine, rules, 1, None, before=True)  # ends: waiting for approval
    _night_of(engine, rules, 2, _match("P1"), before=False)  # starts again
    _approve(engine, {"SetMarking", "SetOtherSystemMarking", "CreatePathwayCase"})
    _run(engine, fs)
    _approve(engine)  # the backlog: the two old ends (and the passivation of the old case)
    _run(engine, fs)
    _night_of(engine, rules, 3, _match("P1"), before=True)
    _approve(engine)
    _run(engine, fs)
    assert fs.has_line(S), "the other-system line is gone while the citizen is matched"
    assert MARKING in fs.markings.get(S, set()), "the marking is ended while matched"


# --- a rule rolled out in dry-run, then switched on ---------------------------------------------


def test_switching_a_rule_from_dry_run_writes_the_current_matches(engine):
    """Dry-run first, then automatic: the continuing match's case and line are never written,
    since the slot's latest (dry-run) command already asks for that state."""
    fs = Fagsystem()
    _night_of(engine, _rules("dry-run"), 0, _match("P1"), before=False)
    _night_of(engine, _rules("automatic"), 1, _match("P1"), before=True)
    _run(engine, fs)
    assert fs.active_cases() == [KEY], "no pathway case after switching dry-run off"
    assert fs.has_line(S), "no other-system line after switching dry-run off"


# --- a command that used up its attempts is never written -----------------------------------


def test_a_command_that_used_up_its_attempts_is_planned_again(engine):
    """SBSYS and Fasit are down for five execute runs (an hourly execute: five hours). The
    commands fail for good; the next nights plan nothing (the slots say the state is asked
    for already), so the case and the line are never written while the match lasts."""
    fs, rules = Fagsystem(), _rules("automatic")
    _night_of(engine, rules, 0, _match("P1"), before=False)
    fs.down = True
    for _ in range(wb.MAX_ATTEMPTS):
        _run(engine, fs)
    fs.down = False
    for n in (1, 2):
        _night_of(engine, rules, n, _match("P1"), before=True)
        _run(engine, fs)
    assert fs.active_cases() == [KEY], "the pathway case is never created"
    assert fs.has_line(S)


# --- two execute runs at once ----------------------------------------------------------------


def test_an_execute_does_not_write_a_command_superseded_while_it_runs(engine):
    """``execute`` reads every due command first and writes them one by one (minutes for a
    long list); the nightly run supersedes one meanwhile (the line changed). It is still
    written, and its status goes from 'superseded' back to 'done'."""
    fs, rules = Fagsystem(), _rules("automatic")
    _night_of(engine, rules, 0, _match("P1"), before=False)
    real = fs.ensure_pathway_case

    def while_writing(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        # the next night is recorded meanwhile: P1 left, P2 joined
        _night_of(engine, rules, 1, _match("P2"), before=True)
        return real(*args, **kw)

    fs.ensure_pathway_case = while_writing
    _run(engine, fs)
    with engine.connect() as conn:
        first = {x.command_id: x.status for x in wb.pending(conn)
                 if x.kind == "SetOtherSystemMarking"}
    assert not fs.has_line("P1"), "the superseded line was written to P1"
    assert sorted(first.values()) == ["planned", "superseded"], first


def test_two_executes_at_once_create_one_pathway_case(fam, store, monkeypatch):  # noqa: F811
    """A cron ``execute`` and a manual one (or one slower than its interval) overlap: both read
    the same due CreatePathwayCase, both search SBSYS for its key before either has created
    it, and SBSYS gets two pathway cases for the child."""
    sims, child, parent, engine = fam
    _night(store, engine, _family("automatic"), 0)
    client = sims.writers.sbsys.client
    real = client.create_case
    other: list[dict] = []

    def create_case(**kw):  # noqa: ANN003, ANN202
        if not other:  # the second execute starts between this one's search and its create
            other.append({})
            other[0] = _execute(store, engine, sims)
        return real(**kw)

    monkeypatch.setattr(client, "create_case", create_case)
    _execute(store, engine, sims)
    assert other and other[0]["done"] >= 1
    assert len(sims.pathway_cases(child)) == 1, "two pathway cases in SBSYS"


# --- a night that crashed between recording the matches and recording the commands -------------


def _overlap_run(store_url: str, tmp_path, day: str):  # noqa: ANN001, ANN202
    return runner.invoke(app, ["overlap", "run", "--store", store_url, "--rules", "odense",
                               "--as-of", day, "--report-dir", str(tmp_path), "--json"])


def _recorded_kinds(store_url: str) -> list[str]:
    engine = readmodel_engine(store_url)
    try:
        with engine.connect() as conn:
            return sorted(x.kind for x in wb.pending(conn)
                          if x.rule_id == "odense-buf-bsf-family")
    finally:
        engine.dispose()


@pytest.mark.parametrize("edge", ["start", "end"])
def test_a_night_that_died_before_recording_its_commands_loses_none(store_url, tmp_path,
                                                                    monkeypatch, edge):
    """``overlap run`` appends the match events, then records the commands in a second
    transaction. When that fails (database error, the process killed; ``--schedule`` logs it
    and waits for the next night), the match is no longer new (or ended) to any later run: its
    SetMarking (or its EndMarking and PassivatePathwayCase) is never planned."""
    s = make_store(store_url)
    _odense_family(s)
    s.close()
    real, calls = wb.record_plan, []

    def dies_once(conn, planned, now):  # noqa: ANN001, ANN202
        calls.append(len(planned))
        if len(calls) == (1 if edge == "start" else 2):
            raise OSError("the nightly run was killed")
        return real(conn, planned, now)

    monkeypatch.setattr(wb, "record_plan", dies_once)
    if edge == "end":
        assert _overlap_run(store_url, tmp_path, "2026-11-29").exit_code == 0
        assert _recorded_kinds(store_url) == ["CreatePathwayCase", "SetMarking",
                                              "SetOtherSystemMarking"]
        s = make_store(store_url)
        s.append([b.close_case(CHILD, "dubu:S-1", at=b.AS_OF + timedelta(hours=1))])
        s.close()
    first = _overlap_run(store_url, tmp_path, "2026-11-30")
    assert first.exit_code == 1  # the night failed
    assert _overlap_run(store_url, tmp_path, "2026-12-01").exit_code == 0
    kinds = _recorded_kinds(store_url)
    if edge == "start":
        assert "SetMarking" in kinds, kinds
    else:
        assert {"EndMarking", "PassivatePathwayCase", "EndOtherSystemMarking"} <= set(kinds), kinds


# --- the claim: a run that died, a command superseded while written, an older record -----------


def _statuses(engine, kind: str) -> list[str]:
    with engine.connect() as conn:
        return sorted(x.status for x in wb.pending(conn) if x.kind == kind)


def test_a_command_claimed_by_a_run_that_died_is_written_once_its_lease_is_over(engine):
    """An execute run claimed two commands and died before writing them. The one claimed longer
    ago than the lease is due again (the write is idempotent); the one claimed a minute ago may
    still be in another run's hands and is left alone."""
    fs, rules = Fagsystem(), _rules("automatic")
    _night_of(engine, rules, 0, _match("P1"), before=False)
    now = datetime.now(UTC)
    w = wb.WRITEBACK
    with engine.begin() as conn:
        for kind, claimed in (("CreatePathwayCase", now - wb.SENDING_LEASE - timedelta(minutes=1)),
                              ("SetOtherSystemMarking", now - timedelta(minutes=1))):
            conn.execute(w.update().where(w.c.kind == kind).values(
                status="sending", claimed_by="dead-run", claimed_at=claimed))
    _run(engine, fs)
    assert fs.active_cases() == [KEY]
    assert _statuses(engine, "CreatePathwayCase") == ["done"]
    assert not fs.has_line(S)
    assert _statuses(engine, "SetOtherSystemMarking") == ["sending"]


def test_a_command_superseded_while_it_is_written_is_recorded_as_written(engine):
    """Planning supersedes the case command while an execute run writes it: the fagsystem has
    the case all the same, and the record says so (done, not superseded)."""
    fs, rules = Fagsystem(), _rules("automatic")
    _night_of(engine, rules, 0, _match("P1"), before=False)
    real = fs.ensure_pathway_case
    nights: list[list[str]] = []

    def while_writing(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        if not nights:  # the next night is recorded meanwhile: P1 left, P2 joined
            nights.append(_night_of(engine, rules, 1, _match("P2"), before=True))
        return real(*args, **kw)

    fs.ensure_pathway_case = while_writing
    _run(engine, fs)
    assert "CreatePathwayCase" in nights[0] or "UpdatePathwayCase" in nights[0], nights
    with engine.connect() as conn:
        first = [x for x in wb.pending(conn) if x.kind == "CreatePathwayCase"
                 and x.planned_at is not None and x.planned_at.day == DAY0.day]
    assert [x.status for x in first] == ["done"], [(x.command_id, x.status) for x in first]
    assert fs.active_cases() == [KEY]


def test_a_record_made_before_the_claim_gets_its_columns(store_url):
    """A ``tg_writeback`` table of an earlier version (no claim columns) gets them when the
    tables are made, keeps its rows, and its commands are carried out."""
    import sqlalchemy as sa

    e = readmodel_engine(store_url)
    try:
        old = sa.MetaData()
        sa.Table("tg_writeback", old, *[c._copy() for c in wb.WRITEBACK.columns
                                        if c.name not in ("claimed_by", "claimed_at")])
        old.create_all(e)
        rules, fs = _rules("automatic"), Fagsystem()
        planned = wb.plan(rules, [_match("P1")], [], DAY0, {("fam", S): _match("P1")})
        with e.begin() as conn:
            conn.execute(old.tables["tg_writeback"].insert(), [
                {"command_id": c.command_id, "kind": type(c).__name__, "rule_id": c.rule_id,
                 "subject": c.subject, "system": c.system, "mode": mode, "status": "planned",
                 "command": wb._encode(c), "attempts": 0,
                 "planned_at": datetime.now(UTC)} for c, mode in planned
                if isinstance(c, wb.SetMarking)])
        wb.create_tables(e)
        with e.connect() as conn:
            names = {c["name"] for c in sa.inspect(conn).get_columns("tg_writeback")}
        assert {"claimed_by", "claimed_at"} <= names
        assert _run(e, fs) == {"done": 1, "failed": 0}
        assert MARKING in fs.markings.get(S, set())
    finally:
        e.dispose()


def test_a_planning_transaction_does_not_hold_up_processes_starting(pg_url):
    """The nightly's planning transaction makes sure of the record's tables; while it plans, a
    connector starting (its status table exists already) does not wait for it."""
    import sqlalchemy as sa

    from connectors.status import StatusStore, metadata
    from hub.sql import create_all

    engine = readmodel_engine(pg_url)
    wb.create_tables(engine)
    StatusStore(pg_url).engine.dispose()  # its tables made
    other = sa.create_engine(engine.url, connect_args={"options": "-c lock_timeout=2000"})
    try:
        with engine.begin() as conn:  # record_plan, still planning
            wb.create_tables(conn)
            with other.begin() as starting:  # LockNotAvailable after 2 s when it waits
                create_all(starting, metadata)
    finally:
        other.dispose()
        engine.dispose()
