"""Write-back: commands planned from match changes, approved (where configured), carried out
idempotently by the connectors' write operations, with retries and a record of what was written.

Commands are imperative (``SetMarking``); what the fagsystem then shows comes back through its
connector as events (``MarkingSet``). The record of commands (``tg_writeback``) is operational
state kept next to the read models but outside the projection, so rebuilding the projection
never forgets what was already written. Modes per rule (``[rules.write_back] mode``):
``dry-run`` (planned and listed, never written), ``approval`` (written after a leader approves
in the dashboard or with ``glasplade targets writeback approve``), ``automatic``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from hub.domain import rules as r
from hub.logging import get_logger

log = get_logger("glasplade.writeback")
MAX_ATTEMPTS = 5

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
    sa.Column("decided_at", _TS), sa.Column("written_at", _TS))


@dataclass(frozen=True, slots=True)
class SetMarking:
    command_id: str
    rule_id: str
    subject: str
    system: str
    marking_type: str
    valid_from: date


@dataclass(frozen=True, slots=True)
class EndMarking:
    command_id: str
    rule_id: str
    subject: str
    system: str
    marking_type: str
    ended_on: date


@dataclass(frozen=True, slots=True)
class CreatePathwayCase:
    command_id: str
    rule_id: str
    subject: str
    title: str
    external_key: str
    system: str = "sbsys"


@dataclass(frozen=True, slots=True)
class PassivatePathwayCase:
    command_id: str
    rule_id: str
    subject: str
    external_key: str
    system: str = "sbsys"


Command = SetMarking | EndMarking | CreatePathwayCase | PassivatePathwayCase
COMMANDS: dict[str, type] = {c.__name__: c for c in (SetMarking, EndMarking, CreatePathwayCase,
                                                     PassivatePathwayCase)}


class Writers(Protocol):
    """The connectors' write operations, each idempotent in its fagsystem."""

    def set_marking(self, cpr: str, system: str, marking_type: str, valid_from: date) -> str: ...

    def end_marking(self, cpr: str, system: str, marking_type: str, ended_on: date
                    ) -> str | None: ...

    def create_pathway_case(self, cpr: str, title: str, external_key: str) -> str: ...

    def passivate_pathway_case(self, cpr: str, external_key: str) -> str | None: ...


def external_key(rule_id: str, subject: str) -> str:
    return f"glasplade:{rule_id}:{subject[:16]}"


def plan(rule_set: r.RuleSet, started: Sequence[r.Match], ended: Sequence[Any], on: date
         ) -> list[tuple[Command, str]]:
    """(command, mode) for every started or ended match of a rule with write-back."""
    out: list[tuple[Command, str]] = []
    rules = {x.rule_id: x for x in rule_set.rules}
    stamp = on.isoformat()
    for m in started:
        wb = rules[m.rule_id].write_back if m.rule_id in rules else None
        if wb is None:
            continue
        if wb.marking_type:
            out.append((SetMarking(f"SetMarking:{m.rule_id}:{m.subject}:{stamp}", m.rule_id,
                                   m.subject, wb.marking_system, wb.marking_type, on), wb.mode))
        if wb.pathway_case:
            out.append((CreatePathwayCase(
                f"CreatePathwayCase:{m.rule_id}:{m.subject}:{stamp}", m.rule_id, m.subject,
                f"Sammenhængende borgerforløb ({rules[m.rule_id].title})",
                external_key(m.rule_id, m.subject)), wb.mode))
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
    return out


def create_tables(bind: sa.Engine | sa.Connection) -> None:
    _md.create_all(bind)


def _encode(c: Command) -> str:
    return orjson.dumps({"type": type(c).__name__, **dataclasses.asdict(c)}).decode()


def decode(text: str) -> Command:
    d = orjson.loads(text)
    cls = COMMANDS[d.pop("type")]
    for name in ("valid_from", "ended_on"):
        if name in d:
            d[name] = date.fromisoformat(d[name])
    return cls(**d)


def record_plan(conn: sa.Connection, planned: Sequence[tuple[Command, str]], now: datetime
                ) -> int:
    """Store planned commands once (a command id already recorded is left as it is)."""
    _md.create_all(conn)
    ids = [c.command_id for c, _ in planned]
    known: set[str] = set()
    for i in range(0, len(ids), 500):
        known |= set(conn.execute(sa.select(WRITEBACK.c.command_id).where(
            WRITEBACK.c.command_id.in_(ids[i:i + 500]))).scalars())
    rows = [{"command_id": c.command_id, "kind": type(c).__name__, "rule_id": c.rule_id,
             "subject": c.subject, "system": c.system, "mode": mode, "status": "planned",
             "command": _encode(c), "attempts": 0, "planned_at": now}
            for c, mode in planned if c.command_id not in known]
    if rows:
        conn.execute(WRITEBACK.insert(), rows)
    return len(rows)


def approve(conn: sa.Connection, command_ids: Sequence[str], user: str, now: datetime) -> int:
    """A leader approves planned commands of rules in ``approval`` mode."""
    _md.create_all(conn)
    res = conn.execute(WRITEBACK.update().where(
        WRITEBACK.c.command_id.in_(list(command_ids)), WRITEBACK.c.mode == "approval",
        WRITEBACK.c.status == "planned").values(status="approved", decided_by=user,
                                                decided_at=now))
    return res.rowcount


def pending(conn: sa.Connection, status: str | None = None) -> list[Any]:
    _md.create_all(conn)
    q = sa.select(WRITEBACK).order_by(WRITEBACK.c.planned_at, WRITEBACK.c.command_id)
    return conn.execute(q.where(WRITEBACK.c.status == status) if status else q).all()


def handled(conn: sa.Connection, limit: int = 200) -> list[Any]:
    """Commands past planning (approved, done, failed), the most recently decided first."""
    _md.create_all(conn)
    w = WRITEBACK
    latest = sa.func.coalesce(w.c.written_at, w.c.decided_at, w.c.planned_at)
    return conn.execute(sa.select(w).where(w.c.status != "planned")
                        .order_by(latest.desc(), w.c.command_id).limit(limit)).all()


def _run(writers: Writers, c: Command, cpr: str) -> str | None:
    if isinstance(c, SetMarking):
        return writers.set_marking(cpr, c.system, c.marking_type, c.valid_from)
    if isinstance(c, EndMarking):
        return writers.end_marking(cpr, c.system, c.marking_type, c.ended_on)
    if isinstance(c, CreatePathwayCase):
        return writers.create_pathway_case(cpr, c.title, c.external_key)
    return writers.passivate_pathway_case(cpr, c.external_key)


def execute(engine: sa.Engine, writers: Writers, cpr_of: Callable[[str], str | None],
            now: Callable[[], datetime], max_attempts: int = MAX_ATTEMPTS) -> dict[str, int]:
    """Carry out approved and automatic commands (and retry failed ones). Each command is
    committed on its own: a crash mid-way loses nothing, and a repeat writes nothing twice
    (the command is marked done; the connector's write is idempotent in the fagsystem)."""
    _md.create_all(engine)
    w = WRITEBACK
    due = sa.or_(w.c.status == "approved",
                 sa.and_(w.c.status == "planned", w.c.mode == "automatic"),
                 sa.and_(w.c.status == "failed", w.c.attempts < max_attempts,
                         w.c.mode != "dry-run"))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(w).where(due).order_by(w.c.planned_at,
                                                              w.c.command_id)).all()
    counts = {"done": 0, "failed": 0}
    for row in rows:
        command = decode(row.command)
        cpr = cpr_of(row.subject)
        values: dict[str, Any]
        try:
            if cpr is None:
                raise LookupError("no CPR/substitute number known for the subject")
            result = _run(writers, command, cpr)
            values = {"status": "done", "result": result or "", "written_at": now(),
                      "last_error": None}
            counts["done"] += 1
        except Exception as exc:  # recorded, retried on the next execute
            values = {"status": "failed", "last_error": f"{type(exc).__name__}: {exc}"[:500]}
            counts["failed"] += 1
            log.warning("write-back failed", command=row.kind, system=row.system,
                        error=type(exc).__name__)
        with engine.begin() as conn:
            conn.execute(w.update().where(w.c.command_id == row.command_id)
                         .values(attempts=w.c.attempts + 1, **values))
    return counts
