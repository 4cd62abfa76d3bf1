"""Write-back: commands planned from match changes, approved (where configured), carried out
idempotently by the connectors' write operations, with retries and a record of what was written.

Commands are imperative (``SetMarking``); what the fagsystem then shows is recorded as events
(``MarkingSet``, ``PathwayStarted``...) made by the system's own connector mapping, so the write
and the connector's later read of it are the same fact, stored once. The record of commands
(``tg_writeback``) is operational state kept next to the read models but outside the projection,
so rebuilding the projection never forgets what was already written; it says who decided, when
it was written, where (the fagsystem's reference) and whether anything changed. Modes per rule
(``[rules.write_back] mode``): ``dry-run`` (planned and listed, never written), ``approval``
(written after a leader approves in the dashboard or with ``glasplade targets writeback
approve``), ``automatic``.

Per match and rule there are three things to keep in step (docs/write-back.md):
- a person-group marking (``SetMarking``/``EndMarking``) on the match's persons that the
  fagsystem knows, set when the match starts and ended when it ends;
- the coordinated-pathway case (``CreatePathwayCase``/``UpdatePathwayCase``/
  ``PassivatePathwayCase``): title, parties and evidence follow the match while it lasts;
- the "case in another system" marking (``SetOtherSystemMarking``/``EndOtherSystemMarking``)
  on the match's persons in one fagsystem, naming the other systems their cases are in.
The last two are desired states: each night the current match is planned again and
``record_plan`` keeps only what differs from the last command for the same match (a newer
command supersedes an older one still waiting). What it needs of the past is kept per slot in
``tg_writeback_slot`` (latest command, digest of the state it set, cases created, waiting
commands), in step with the record, so a night reads the slots it plans, not the history.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from hub.domain import events as ev
from hub.domain import rules as r
from hub.logging import get_logger
from hub.sql import add_missing_columns, create_all
from projections.rows import among, insert_many, key_chunks, upsert

log = get_logger("glasplade.writeback")
MAX_ATTEMPTS = 5
PENDING = ("planned", "approved", "failed", "sending")
#: A command claimed by an execute run that has not finished it for this long is due again (the
#: run died mid-write; the fagsystem write is idempotent).
SENDING_LEASE = timedelta(minutes=30)
#: The digest of a slot whose latest command failed for good: planning the same state is a change.
_GAVE_UP = "(gave up)"
#: Display names of the fagsystemer in texts written to other fagsystemer.
SYSTEM_NAMES = {"dubu": "DUBU", "sbsys": "SBSYS", "fasit": "Fasit", "cura": "Cura",
                "nexus": "Nexus", "momentum": "Momentum"}

_md = sa.MetaData()
_TS = sa.DateTime(timezone=True)
WRITEBACK = sa.Table(
    "tg_writeback", _md,
    sa.Column("command_id", sa.String(300), primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("rule_id", sa.String(200), nullable=False, index=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("system", sa.String(40), nullable=False),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text), sa.Column("result", sa.Text),
    sa.Column("planned_at", _TS), sa.Column("decided_by", sa.String(200)),
    sa.Column("decided_at", _TS), sa.Column("written_at", _TS),
    # the execute run carrying the command out (status ``sending``): its token, and since when
    sa.Column("claimed_by", sa.String(100)), sa.Column("claimed_at", _TS))
#: Per slot (``_slot``: marking, pathway case or other-system marking of a rule's subject)
#: what planning needs of its past, kept with the record in the same transaction.
SLOTS = sa.Table(
    "tg_writeback_slot", _md,
    sa.Column("slot", sa.String(450), primary_key=True),  # _slot_key: one key, one look-up
    sa.Column("rule_id", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("thing", sa.String(20), nullable=False),
    sa.Column("latest", sa.String(300)),  # the command id of the latest command
    sa.Column("latest_at", _TS), sa.Column("latest_rank", sa.Integer),
    sa.Column("digest", sa.String(32)),
    sa.Column("creates", sa.Integer, nullable=False, default=0),
    sa.Column("written", sa.String(300)),
    sa.Column("waiting", sa.Text, nullable=False, default="[]"))


# --- commands --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetMarking:
    """The person-group marking on each of ``persons`` that ``system`` knows (the match's
    persons: in a family match the child may be in DUBU and the parent in Fasit); empty: the
    subject."""

    command_id: str
    rule_id: str
    subject: str
    system: str
    marking_type: str
    valid_from: date
    persons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EndMarking:
    command_id: str
    rule_id: str
    subject: str
    system: str
    marking_type: str
    ended_on: date
    persons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathwayCaseCommand:
    """The pathway case should exist with this title, parties (person keys besides the
    subject) and evidence (the match's). Recorded as one of the two kinds below."""

    command_id: str
    rule_id: str
    subject: str
    title: str
    external_key: str
    system: str = "sbsys"
    parties: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CreatePathwayCase(PathwayCaseCommand):
    """A case not written yet."""


@dataclass(frozen=True, slots=True)
class UpdatePathwayCase(PathwayCaseCommand):
    """A case written before whose content changed."""


@dataclass(frozen=True, slots=True)
class PassivatePathwayCase:
    command_id: str
    rule_id: str
    subject: str
    external_key: str
    system: str = "sbsys"


@dataclass(frozen=True, slots=True)
class SetOtherSystemMarking:
    """The line ``text`` (tagged ``key``) on each of ``persons`` in ``system``, and off the
    persons in ``drop`` (who left the match); ``since``: the first day of this episode."""

    command_id: str
    rule_id: str
    subject: str
    system: str
    key: str
    text: str
    persons: tuple[str, ...]
    valid_from: date
    since: date | None = None
    drop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EndOtherSystemMarking:
    command_id: str
    rule_id: str
    subject: str
    system: str
    key: str
    ended_on: date
    persons: tuple[str, ...] = ()


Command = (SetMarking | EndMarking | CreatePathwayCase | UpdatePathwayCase | PassivatePathwayCase
           | SetOtherSystemMarking | EndOtherSystemMarking)
COMMANDS: dict[str, type] = {c.__name__: c for c in (
    SetMarking, EndMarking, CreatePathwayCase, UpdatePathwayCase, PassivatePathwayCase,
    SetOtherSystemMarking, EndOtherSystemMarking)}
_MARKING = (SetMarking, EndMarking)
_PATHWAY = (CreatePathwayCase, UpdatePathwayCase, PassivatePathwayCase)
_OTHER = (SetOtherSystemMarking, EndOtherSystemMarking)
_RANK = {SetMarking: 0, EndMarking: 1, CreatePathwayCase: 0, UpdatePathwayCase: 1,
         PassivatePathwayCase: 2, SetOtherSystemMarking: 0, EndOtherSystemMarking: 1}


class Writers(Protocol):
    """The connectors' write operations, each idempotent in its fagsystem (``Written`` in
    ``hub.targets.writers``: reference, changed?, events)."""

    def set_marking(self, cprs: Sequence[str], system: str, marking_type: str,
                    valid_from: date) -> Any: ...

    def end_marking(self, cprs: Sequence[str], system: str, marking_type: str,
                    ended_on: date) -> Any: ...

    def ensure_pathway_case(self, cpr: str, title: str, external_key: str,
                            parties: Sequence[str], evidence: Sequence[str], evidence_key: str
                            ) -> Any: ...

    def passivate_pathway_case(self, cpr: str, external_key: str) -> Any: ...

    def set_other_system_marking(self, system: str, cprs: Sequence[str], key: str, line: str,
                                 drop: Sequence[str], since: date, on: date) -> Any: ...

    def end_other_system_marking(self, system: str, cprs: Sequence[str], key: str,
                                 ended_on: date) -> Any: ...


# --- what a match asks for -------------------------------------------------------------------


def external_key(rule_id: str, subject: str) -> str:
    return f"glasplade:{rule_id}:{subject[:16]}"


def _digest(*parts: Any, length: int = 12) -> str:
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:length]


def related(m: r.Match) -> tuple[str, ...]:
    """The other persons of a match (from its ``relation:<relation>:<person key>`` evidence)."""
    return tuple(sorted({e.split(":", 2)[2] for e in m.evidence if e.startswith("relation:")
                         and e.count(":") >= 2} - {m.subject}))


def _case_systems(evidence: Iterable[str]) -> set[str]:
    return {e.split(":", 2)[1] for e in evidence if e.startswith("case:") and e.count(":") >= 2}


def other_system_text(rule: r.Rule, m: r.Match, system: str) -> str | None:
    """The marking's text: which other systems the match's cases are in. None when no case of
    the match is in ``system`` (nobody to mark there) or none is elsewhere (nothing to say)."""
    systems = _case_systems(m.evidence)
    if system not in systems or not systems - {system}:
        return None
    names = ", ".join(sorted(SYSTEM_NAMES.get(s, s) for s in systems - {system}))
    who = {"family_departments": "Familien", "household_departments": "Husstanden"}.get(
        rule.kind, "Borgeren")
    return f"{who} har sag i {names} ({rule.title}; Glasplade)"


def evidence_lines(rule_id: str, evidence: Sequence[str]) -> list[str]:
    """The evidence as the caseworker reads it in SBSYS (persons appear as the case's parties,
    never as pseudonyms)."""
    lines = [f"Regel: {rule_id}"]
    relations: dict[str, int] = {}
    for item in evidence:
        kind, _, rest = item.partition(":")
        if kind == "case":
            system, _, record = rest.partition(":")
            lines.append(f"Aktiv sag i {SYSTEM_NAMES.get(system, system)}: {record}")
        elif kind == "grant":
            lines.append(f"Bevilling: {rest}")
        elif kind == "milestone":
            lines.append(f"Manglende møde: {rest}")
        elif kind == "relation":
            rel = rest.split(":", 1)[0]
            relations[rel] = relations.get(rel, 0) + 1
    lines += [f"Familierelation: {rel} ({n})" for rel, n in sorted(relations.items())]
    return lines


def evidence_key(c: PathwayCaseCommand) -> str:
    return f"glasplade-grundlag:{_digest(c.rule_id, c.subject, c.evidence)}"


def pathway_title(rule: r.Rule) -> str:
    return f"Sammenhængende borgerforløb ({rule.title})"


def _desired(rule: r.Rule, m: r.Match, on: date, start: bool) -> list[tuple[Command, str]]:
    """The pathway case and the other-system marking as the match asks for them now."""
    wb = rule.write_back
    assert wb is not None
    out: list[tuple[Command, str]] = []
    stamp = on.isoformat()
    if wb.pathway_case:
        cls = CreatePathwayCase if start else UpdatePathwayCase
        title, parties = pathway_title(rule), related(m)
        cid = f"{cls.__name__}:{m.rule_id}:{m.subject}:{stamp}"
        if not start:
            cid += f":{_digest(title, parties, m.evidence)}"
        out.append((cls(cid, m.rule_id, m.subject, title, external_key(m.rule_id, m.subject),
                        parties=parties, evidence=m.evidence), wb.mode))
    if wb.other_system_marking:
        text = other_system_text(rule, m, wb.other_system_marking)
        if text is not None:
            persons = (m.subject, *related(m))
            out.append((SetOtherSystemMarking(
                f"SetOtherSystemMarking:{m.rule_id}:{m.subject}:{stamp}:"
                f"{_digest(text, persons)}", m.rule_id, m.subject, wb.other_system_marking,
                external_key(m.rule_id, m.subject), text, persons, on), wb.mode))
        elif not start:  # still matched, but the line is no longer true: take it down
            out.append((EndOtherSystemMarking(
                f"EndOtherSystemMarking:{m.rule_id}:{m.subject}:{stamp}", m.rule_id, m.subject,
                wb.other_system_marking, external_key(m.rule_id, m.subject), on), wb.mode))
    return out


def plan(rule_set: r.RuleSet, started: Sequence[r.Match], ended: Sequence[Any], on: date,
         current: Mapping[tuple[str, str], r.Match] | None = None
         ) -> list[tuple[Command, str]]:
    """(command, mode) for every started or ended match of a rule with write-back, and, given
    the ``current`` matches ((rule id, subject) -> match), the desired state of every continuing
    one (``record_plan`` drops what is already so)."""
    out: list[tuple[Command, str]] = []
    rules = {x.rule_id: x for x in rule_set.rules}
    stamp = on.isoformat()
    begun: set[tuple[str, str]] = set()
    for m in started:
        rule = rules.get(m.rule_id)
        wb = rule.write_back if rule else None
        if rule is None or wb is None:
            continue
        begun.add((m.rule_id, m.subject))
        if wb.marking_type:
            out.append((SetMarking(f"SetMarking:{m.rule_id}:{m.subject}:{stamp}", m.rule_id,
                                   m.subject, wb.marking_system, wb.marking_type, on,
                                   (m.subject, *related(m))), wb.mode))
        out += _desired(rule, m, on, start=True)
    for e in ended:
        wb = rules[e.rule_id].write_back if e.rule_id in rules else None
        if wb is None:
            continue
        if wb.marking_type:
            out.append((EndMarking(f"EndMarking:{e.rule_id}:{e.subject}:{stamp}", e.rule_id,
                                   e.subject, wb.marking_system, wb.marking_type, on), wb.mode))
        if wb.pathway_case:
            out.append((PassivatePathwayCase(
                f"PassivatePathwayCase:{e.rule_id}:{e.subject}:{stamp}", e.rule_id, e.subject,
                external_key(e.rule_id, e.subject)), wb.mode))
        if wb.other_system_marking:
            out.append((EndOtherSystemMarking(
                f"EndOtherSystemMarking:{e.rule_id}:{e.subject}:{stamp}", e.rule_id, e.subject,
                wb.other_system_marking, external_key(e.rule_id, e.subject), on), wb.mode))
    if current is not None:
        kept = {x.rule_id for x in rule_set.rules if x.write_back is not None
                and (x.write_back.pathway_case or x.write_back.other_system_marking)}
        for key in current:
            if key[0] in kept and key not in begun:
                out += _desired(rules[key[0]], current[key], on, start=False)
    return out


# --- the record ------------------------------------------------------------------------------


def create_tables(bind: sa.Engine | sa.Connection) -> None:
    """The record and the slots, if missing. ``record_plan`` and ``execute`` (one call per
    nightly or execute run) call it; a reader (``pending``, ``handled``, ``approve``: the
    dashboard and the CLI) needs it called once where its engine is set up."""
    if isinstance(bind, sa.Engine):  # columns added under the same lock as the tables
        with bind.begin() as conn:
            create_tables(conn)
        return
    create_all(bind, _md)
    add_missing_columns(bind, WRITEBACK)  # (in the caller's transaction)


def _encode(c: Command) -> str:
    return orjson.dumps({"type": type(c).__name__,
                         **{f.name: getattr(c, f.name) for f in dataclasses.fields(c)}}).decode()


def decode(text: str) -> Command:
    d = orjson.loads(text)
    cls = COMMANDS[d.pop("type")]
    for name in ("valid_from", "ended_on", "since"):
        if d.get(name):
            d[name] = date.fromisoformat(d[name])
    for name in ("parties", "evidence", "persons", "drop"):
        if name in d:
            d[name] = tuple(d[name])
    return cls(**d)


def _slot(c: Command) -> tuple[str, str, str] | None:
    """Commands that keep one thing in step share a slot: (thing, rule id, subject)."""
    if isinstance(c, _MARKING):
        return ("marking", c.rule_id, c.subject)
    if isinstance(c, _PATHWAY):
        return ("pathway", c.rule_id, c.subject)
    if isinstance(c, _OTHER):
        return ("other", c.rule_id, c.subject)
    return None


_SLOT_KINDS = [cls.__name__ for cls in (*_MARKING, *_PATHWAY, *_OTHER)]
#: Kinds of command a later one in the same slot can supersede while it waits.
_WAITS = frozenset(cls.__name__ for cls in (SetMarking, EndMarking, CreatePathwayCase,
                                            UpdatePathwayCase, SetOtherSystemMarking,
                                            EndOtherSystemMarking))
_CASE = (CreatePathwayCase, UpdatePathwayCase)
_CASE_KINDS = tuple(cls.__name__ for cls in _CASE)


def _content(c: Command, mode: str) -> str | None:
    """A digest of the state a command asks for, for the commands that set a state (the
    pathway case's title, parties and evidence; the other-system line and its persons). A
    dry-run command's differs: it sets nothing, so the same state asked for in another mode is a
    change."""
    if isinstance(c, PathwayCaseCommand):
        d = _digest(c.title, c.parties, c.evidence, length=32)
    elif isinstance(c, SetOtherSystemMarking):
        d = _digest(c.text, c.persons, length=32)
    else:
        return None
    return "dry:" + d[:28] if mode == "dry-run" else d


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite: naive, as UTC


def recorded(conn: sa.Connection, command_ids: Sequence[str]) -> set[str]:
    """Those of ``command_ids`` that are in the record (ids only, chunked)."""
    w, found = WRITEBACK, set()
    for chunk in key_chunks(conn, command_ids):
        found.update(conn.execute(sa.select(w.c.command_id).where(
            among(conn, w.c.command_id, chunk))).scalars())
    return found


class _Record:
    """Recorded commands looked up by id, in chunks: status and encoded command (absent: not
    recorded)."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.of: dict[str, tuple[str, str] | None] = {}

    def fetch(self, ids: Iterable[str]) -> None:
        todo = sorted({i for i in ids if i not in self.of})
        self.of.update(dict.fromkeys(todo))
        w = WRITEBACK
        for chunk in key_chunks(self.conn, todo):
            for command_id, status, command in self.conn.execute(sa.select(
                    w.c.command_id, w.c.status, w.c.command).where(
                        among(self.conn, w.c.command_id, chunk))):
                self.of[command_id] = (status, command)

    def get(self, command_id: str) -> tuple[str, str] | None:
        if command_id not in self.of:
            self.fetch([command_id])
        return self.of[command_id]


@dataclass(slots=True, eq=False)
class _SlotState:
    """What reconciling needs of a slot's past (a row of ``tg_writeback_slot``): the latest
    command (its id, planning time and kind rank; the command itself read and decoded only when
    needed) and the digest of the state it set, how many pathway cases were created, the key of
    a case known to be written, and the commands that may still be waiting ([command id, kind,
    case key]).

    "Latest" is in the record's order: planning time, then kind rank (``_RANK``: an end after a
    start planned at the same time), a later-added command winning a tie. That is the order in
    which ``_fill_slots`` and every later night read the record back, so the stored row is the
    one a fill from the record gives, and a command reconciled later in the same call is
    completed from that same state (recording commands in one call or one call each decides
    the same)."""

    latest_id: str | None = None
    latest_at: datetime | None = None
    latest_rank: int = 0
    digest: str | None = None
    latest_obj: Command | None = None
    """The latest command decoded (None: not read yet, or none)."""
    creates: int = 0
    written: str | None = None
    waiting_text: str = "[]"
    waiting_list: list[list[Any]] | None = None
    stored: bool = False
    dirty: bool = False

    @classmethod
    def of_row(cls, row: Any) -> _SlotState:
        return cls(latest_id=row.latest, latest_at=row.latest_at,
                   latest_rank=row.latest_rank or 0, digest=row.digest, creates=row.creates,
                   written=row.written, waiting_text=row.waiting, stored=True)

    @property
    def waiting(self) -> list[list[Any]]:
        if self.waiting_list is None:
            self.waiting_list = orjson.loads(self.waiting_text)
        return self.waiting_list

    def latest(self, record: _Record) -> Command | None:
        if self.latest_obj is None and self.latest_id is not None:
            found = record.get(self.latest_id)
            self.latest_obj = decode(found[1]) if found is not None else None
        return self.latest_obj

    def unchanged(self, c: Command, mode: str) -> bool:
        """``c`` asks for the state the latest command set (or ends one not set): no need to
        read the past any further."""
        if self.digest is None:
            return isinstance(c, EndOtherSystemMarking)
        return self.digest == _content(c, mode)

    def add(self, c: Command, at: datetime, mode: str) -> None:
        """``c`` recorded at ``at``: the latest unless one later in the record's order is."""
        rank = _RANK[type(c)]
        if self.latest_at is None or (_utc(at), rank) >= (_utc(self.latest_at),
                                                          self.latest_rank):
            self.latest_id, self.latest_at, self.latest_rank = c.command_id, at, rank
            self.digest, self.latest_obj = _content(c, mode), c
        self.creates += isinstance(c, CreatePathwayCase)
        self.dirty = True

    def values(self) -> dict[str, Any]:
        return {"latest": self.latest_id, "latest_at": self.latest_at,
                "latest_rank": self.latest_rank, "digest": self.digest,
                "creates": self.creates, "written": self.written,
                "waiting": (self.waiting_text if self.waiting_list is None
                            else orjson.dumps(self.waiting_list).decode())}


_SLOT_READ = [SLOTS.c[k] for k in ("slot", "latest", "latest_at", "latest_rank", "digest",
                                   "creates", "written", "waiting")]


def _slot_key(slot: tuple[str, str, str]) -> str:
    thing, rule_id, subject = slot
    return f"{thing}:{len(rule_id)}:{rule_id}:{subject}"


def _load_slots(conn: sa.Connection, wanted: set[tuple[str, str, str]]
                ) -> dict[tuple[str, str, str], _SlotState]:
    """The state of each wanted slot: primary-key look-ups, chunked."""
    keys = {_slot_key(slot): slot for slot in wanted}
    out: dict[tuple[str, str, str], _SlotState] = {}
    for chunk in key_chunks(conn, sorted(keys)):
        for row in conn.execute(sa.select(*_SLOT_READ).where(among(conn, SLOTS.c.slot, chunk))):
            out[keys[row.slot]] = _SlotState.of_row(row)
    for slot in wanted:
        if slot not in out:
            out[slot] = _SlotState()
    return out


def _store_slots(conn: sa.Connection, slots: Mapping[tuple[str, str, str], _SlotState]) -> None:
    """The changed slots written back: new ones inserted, stored ones upserted (every column)."""
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for slot, s in slots.items():
        if s.dirty:
            (changed if s.stored else new).append(_slot_row(slot, s))
            s.stored, s.dirty = True, False
    insert_many(conn, SLOTS, new)
    upsert(conn, SLOTS, changed, unique=True)


def _slot_row(slot: tuple[str, str, str], s: _SlotState) -> dict[str, Any]:
    thing, rule_id, subject = slot
    return {"slot": _slot_key(slot), "rule_id": rule_id, "subject": subject, "thing": thing,
            **s.values()}


#: The marker row saying the slots were filled from the record.
_FILLED = {"slot": "(filled)", "rule_id": "", "subject": "", "thing": "(filled)",
           "latest": None, "latest_at": None, "latest_rank": None, "digest": None,
           "creates": 0, "written": None, "waiting": "[]"}
#: Record rows read, and slot rows written, at a time while filling.
_FILL_CHUNK = 5000


def _fill_slots(conn: sa.Connection) -> bool:
    """Fill ``tg_writeback_slot`` from the whole record, once: a database from before the
    table has only the record. Idempotent: a marker row, written in the same transaction as
    the slots, says it was done (a fill that did not commit is done again). True if it ran."""
    t, w = SLOTS, WRITEBACK
    if conn.execute(sa.select(t.c.slot).where(t.c.slot == _FILLED["slot"])).first() is not None:
        return False
    conn.execute(t.delete())
    q = (sa.select(w.c.command, w.c.status, w.c.planned_at, w.c.rule_id, w.c.subject, w.c.mode)
         .where(w.c.kind.in_(_SLOT_KINDS)).order_by(w.c.rule_id, w.c.subject))
    group: list[tuple[Any, ...]] = []
    rows: list[dict[str, Any]] = []
    n = 0

    def flush() -> None:
        nonlocal n
        per_slot: dict[tuple[str, str, str], list[tuple[Any, ...]]] = {}
        for entry in group:
            slot = _slot(entry[1])
            assert slot is not None
            per_slot.setdefault(slot, []).append(entry)
        for slot, entries in per_slot.items():
            entries.sort(key=lambda e: (_utc(e[0]), _RANK[type(e[1])]))
            s, done_keys = _SlotState(), set()
            for at, c, status, mode in entries:
                s.add(c, at, mode)
                if type(c).__name__ in _WAITS and status in PENDING:
                    s.waiting.append([c.command_id, type(c).__name__,
                                      getattr(c, "external_key", None)])
                if isinstance(c, _CASE) and status == "done":
                    done_keys.add(c.external_key)
            if isinstance(s.latest_obj, _CASE) and s.latest_obj.external_key in done_keys:
                s.written = s.latest_obj.external_key
            rows.append(_slot_row(slot, s))
        group.clear()
        if len(rows) >= _FILL_CHUNK:
            insert_many(conn, t, rows)
            n += len(rows)
            rows.clear()

    last: tuple[str, str] | None = None
    for row in conn.execute(q.execution_options(yield_per=_FILL_CHUNK)):
        if (row.rule_id, row.subject) != last and group:
            flush()
        last = (row.rule_id, row.subject)
        group.append((row.planned_at, decode(row.command), row.status, row.mode))
    flush()
    insert_many(conn, t, [*rows, _FILLED])
    log.info("write-back slots filled from the record", slots=n + len(rows))
    return True


def _renamed(c: Any, cls: type, **changes: Any) -> Any:
    """``c`` as a command of kind ``cls`` (same fields, id with the new kind)."""
    fields = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    fields["command_id"] = cls.__name__ + c.command_id[len(type(c).__name__):]
    return cls(**{**fields, **changes})


def _reconcile(c: Command, s: _SlotState, record: _Record, mode: str) -> Command | None:
    """``c`` as it should be recorded after its slot's past ``s``, or None when it would change
    nothing (the state it asks for is the one last asked for)."""
    if isinstance(c, SetMarking):
        return c
    if isinstance(c, EndMarking):  # end it on whom it was set on
        latest = s.latest(record)
        return (dataclasses.replace(c, persons=latest.persons)
                if isinstance(latest, SetMarking) else c)
    if s.unchanged(c, mode):
        return None
    latest = s.latest(record)
    if isinstance(c, _PATHWAY):
        active = latest if isinstance(latest, _CASE) else None
        if isinstance(c, PassivatePathwayCase):
            return None if active is None else dataclasses.replace(
                c, external_key=active.external_key)
        if active is None:  # a new case: the first, or the next after a passivated one
            n = s.creates
            key = c.external_key if n == 0 else f"{c.external_key}:{n + 1}"
            return _renamed(c, CreatePathwayCase, external_key=key)
        key = active.external_key
        if s.written != key and any(k == key and (record.get(i) or ("",))[0] == "done"
                                    for i, _, k in s.waiting):
            s.written, s.dirty = key, True  # the case was written: what follows updates it
        return _renamed(c, UpdatePathwayCase if s.written == key else CreatePathwayCase,
                        external_key=key)
    active_set = latest if isinstance(latest, SetOtherSystemMarking) else None
    # who may still carry the line: the latest's persons, and, while the latest is not written,
    # those it was to take it off (it is superseded now: nobody else will)
    unwritten = latest is not None and (record.get(latest.command_id) or ("",))[0] != "done"
    carrying = set(getattr(latest, "persons", ())) if isinstance(latest, _OTHER) else set()
    if unwritten and isinstance(latest, SetOtherSystemMarking):
        carrying |= set(latest.drop)
    if isinstance(c, EndOtherSystemMarking):
        return None if active_set is None else dataclasses.replace(
            c, persons=tuple(sorted(carrying)))
    assert isinstance(c, SetOtherSystemMarking)
    if active_set is None:  # after an end not written (superseded now): the end's persons
        left = carrying - set(c.persons) if unwritten else set()
        return dataclasses.replace(c, since=c.valid_from, drop=tuple(sorted(left)))
    return dataclasses.replace(c, since=active_set.since or active_set.valid_from,
                               drop=tuple(sorted(carrying - set(c.persons))))


def _supersedes(new: Command, kind: str, key: str | None) -> bool:
    """A newer command makes an older one (of ``kind``, for the case ``key``) that is still
    waiting pointless."""
    if kind == "SetMarking":
        return isinstance(new, EndMarking)
    if kind == "EndMarking":
        return isinstance(new, SetMarking)
    if kind == "EndOtherSystemMarking":
        return isinstance(new, SetOtherSystemMarking)
    if kind in _CASE_KINDS:
        return isinstance(new, _PATHWAY) and new.external_key == key
    return kind == "SetOtherSystemMarking" and isinstance(new, _OTHER)


def record_plan(conn: sa.Connection, planned: Sequence[tuple[Command, str]], now: datetime
                ) -> int:
    """Store planned commands once (a command id already recorded is left as it is). Commands
    that keep a pathway case or an other-system marking in step are recorded only when they
    change something, completed from their slot's past (the case's key, the persons to
    unmark); older ones still waiting in the slot become ``superseded``.

    The past is read from ``tg_writeback_slot`` (a row per slot, kept in step here, in the
    caller's transaction), never from the whole record: the cost is that of the slots planned
    (plus, for the slots that change, their latest command and waiting ones, read by id)."""
    create_tables(conn)
    _fill_slots(conn)
    slots = _load_slots(conn, {s for c, _ in planned if (s := _slot(c)) is not None})
    # the first command for a slot asking for the state it already has changes nothing (recorded
    # or not), so it needs no look-up
    first: set[tuple[str, str, str]] = set()
    asked: list[tuple[Command, str]] = []
    for c, mode in planned:
        slot = _slot(c)
        if slot is not None and slot not in first:
            first.add(slot)
            if not isinstance(c, _MARKING) and slots[slot].unchanged(c, mode):
                continue
        asked.append((c, mode))
    known = recorded(conn, [c.command_id for c, _ in asked])
    fresh = [(c, mode) for c, mode in asked if c.command_id not in known]
    # the past that the changed slots need, read by id in one go: the latest command, and the
    # waiting commands' status (was a case still being created written meanwhile?)
    needed: list[str] = []
    for c, _ in fresh:
        if (slot := _slot(c)) is not None and not isinstance(c, SetMarking):
            s = slots[slot]
            if s.latest_obj is None and s.latest_id is not None:
                needed.append(s.latest_id)
            needed += [i for i, _, _ in s.waiting]  # also: is it still waiting?
    record = _Record(conn)
    record.fetch(needed)
    rows, superseded = [], []
    for c, mode in fresh:
        slot = _slot(c)
        if slot is not None:
            s = slots[slot]
            done = _reconcile(c, s, record, mode)
            if done is None or done.command_id in known:
                continue
            c = done
            waiting = []
            for entry in s.waiting:
                if not _supersedes(c, entry[1], entry[2]):
                    waiting.append(entry)
                elif (found := record.of.get(entry[0])) is None or found[0] in PENDING:
                    superseded.append(entry[0])  # (one written or superseded stays so)
            if type(c).__name__ in _WAITS:
                waiting.append([c.command_id, type(c).__name__, getattr(c, "external_key", None)])
            s.waiting_list = waiting
            s.add(c, now, mode)
        known.add(c.command_id)
        rows.append({"command_id": c.command_id, "kind": type(c).__name__,
                     "rule_id": c.rule_id, "subject": c.subject, "system": c.system,
                     "mode": mode, "status": "planned", "command": _encode(c), "attempts": 0,
                     "planned_at": now})
    insert_many(conn, WRITEBACK, rows)
    for chunk in key_chunks(conn, superseded):
        conn.execute(WRITEBACK.update().where(
            among(conn, WRITEBACK.c.command_id, chunk),
            WRITEBACK.c.status.in_(PENDING)).values(status="superseded", decided_at=now))
    _store_slots(conn, slots)
    return len(rows)


def approve(conn: sa.Connection, command_ids: Sequence[str], user: str, now: datetime) -> int:
    """A leader approves planned commands of rules in ``approval`` mode."""
    w, n = WRITEBACK, 0
    for chunk in key_chunks(conn, list(command_ids)):
        n += conn.execute(w.update().where(
            among(conn, w.c.command_id, chunk), w.c.mode == "approval",
            w.c.status == "planned").values(status="approved", decided_by=user,
                                            decided_at=now)).rowcount
    return n


def pending(conn: sa.Connection, status: str | None = None) -> list[Any]:
    q = sa.select(WRITEBACK).order_by(WRITEBACK.c.planned_at, WRITEBACK.c.command_id)
    return conn.execute(q.where(WRITEBACK.c.status == status) if status else q).all()


def handled(conn: sa.Connection, limit: int = 200) -> list[Any]:
    """Commands past planning (approved, done, failed, superseded), the most recently decided
    first."""
    w = WRITEBACK
    latest = sa.func.coalesce(w.c.written_at, w.c.decided_at, w.c.planned_at)
    return conn.execute(sa.select(w).where(w.c.status != "planned")
                        .order_by(latest.desc(), w.c.command_id).limit(limit)).all()


# --- execution -------------------------------------------------------------------------------


def _cprs(keys: Iterable[str], cpr_of: Callable[[str], str | None]) -> list[str]:
    """The CPR numbers of the persons known (a person the store cannot name is left out)."""
    return [c for c in (cpr_of(k) for k in keys) if c]


def _run(writers: Writers, c: Command, cpr: str, cpr_of: Callable[[str], str | None]) -> Any:
    if isinstance(c, SetMarking):
        return writers.set_marking(_cprs(c.persons, cpr_of) or [cpr], c.system, c.marking_type,
                                   c.valid_from)
    if isinstance(c, EndMarking):
        return writers.end_marking(_cprs(c.persons, cpr_of) or [cpr], c.system, c.marking_type,
                                   c.ended_on)
    if isinstance(c, PathwayCaseCommand):
        return writers.ensure_pathway_case(cpr, c.title, c.external_key,
                                           _cprs(c.parties, cpr_of),
                                           evidence_lines(c.rule_id, c.evidence),
                                           evidence_key(c))
    if isinstance(c, PassivatePathwayCase):
        return writers.passivate_pathway_case(cpr, c.external_key)
    if isinstance(c, SetOtherSystemMarking):
        return writers.set_other_system_marking(c.system, _cprs(c.persons, cpr_of), c.key,
                                                c.text, _cprs(c.drop, cpr_of),
                                                c.since or c.valid_from, c.valid_from)
    return writers.end_other_system_marking(c.system, _cprs(c.persons, cpr_of), c.key,
                                            c.ended_on)


def execute(engine: sa.Engine, writers: Writers, cpr_of: Callable[[str], str | None],
            now: Callable[[], datetime], max_attempts: int = MAX_ATTEMPTS,
            record: Callable[[list[ev.CanonicalEvent]], Any] | None = None) -> dict[str, int]:
    """Carry out approved and automatic commands (and retry failed ones). Each command is
    committed on its own: a crash mid-way loses nothing, and a repeat writes nothing twice
    (the command is marked done; the connector's write is idempotent in the fagsystem).

    ``record`` (e.g. ``EventStore.append``) gets the fagsystem's state after each write as
    events; a command is done only once they are recorded (else it is retried: the write is
    idempotent, the events' dedupe keys are the connector's)."""
    create_tables(engine)
    cpr_of = cache(cpr_of)  # a person's number, read from their events, once per run
    w = WRITEBACK
    due = sa.or_(w.c.status == "approved",
                 sa.and_(w.c.status == "planned", w.c.mode == "automatic"),
                 sa.and_(w.c.status == "failed", w.c.attempts < max_attempts,
                         w.c.mode != "dry-run"),
                 sa.and_(w.c.status == "sending", w.c.claimed_at < now() - SENDING_LEASE))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(w).where(due).order_by(w.c.planned_at,
                                                              w.c.command_id)).all()
    counts = {"done": 0, "failed": 0}
    token = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"
    for row in rows:
        # Claimed first, in a transaction of its own: a command another run claimed meanwhile,
        # or that planning superseded, is left alone (two runs at once write nothing twice).
        with engine.begin() as conn:
            if conn.execute(w.update().where(
                    w.c.command_id == row.command_id, w.c.status == row.status,
                    w.c.attempts == row.attempts,
                    w.c.claimed_by.is_(None) if row.claimed_by is None
                    else w.c.claimed_by == row.claimed_by).values(
                        status="sending", claimed_by=token, claimed_at=now())).rowcount != 1:
                continue
        command = decode(row.command)
        cpr = cpr_of(row.subject)
        values: dict[str, Any]
        try:
            if cpr is None:
                raise LookupError("no CPR/substitute number known for the subject")
            written = _run(writers, command, cpr, cpr_of)
            if record is not None and written.events:
                record(list(written.events))
            values = {"status": "done", "written_at": now(), "last_error": None,
                      "result": orjson.dumps({"ref": written.ref, "changed": written.changed,
                                              "events": len(written.events)}).decode()}
            counts["done"] += 1
        except Exception as exc:  # recorded, retried on the next execute
            values = {"status": "failed", "last_error": f"{type(exc).__name__}: {exc}"[:500]}
            counts["failed"] += 1
            log.warning("write-back failed", command=row.kind, system=row.system,
                        error=type(exc).__name__)
        with engine.begin() as conn:
            # (a command superseded while it was written was written all the same: the record
            # says so; one that failed meanwhile stays superseded, nothing is left to retry)
            ours = sa.and_(w.c.command_id == row.command_id, w.c.claimed_by == token)
            conn.execute(w.update().where(ours, w.c.status.in_(
                ("sending", "superseded") if values["status"] == "done" else ("sending",)))
                         .values(attempts=w.c.attempts + 1, **values))
            slot = _slot(command)
            # out of attempts: the slot no longer counts the state as asked for, so the next
            # night plans it again (an outage longer than the retries loses nothing for good)
            if (values["status"] == "failed" and row.attempts + 1 >= max_attempts
                    and slot is not None):
                conn.execute(SLOTS.update().where(SLOTS.c.slot == _slot_key(slot),
                                                  SLOTS.c.latest == row.command_id)
                             .values(digest=_GAVE_UP))
    return counts
