"""Events from snapshots: for systems without a change feed (DUBU, the status of Fasit cases).

A sweep reads each case as it is now (a ``CaseSnapshot``). ``KnownCases`` is what the store
already knows about the system's cases: a small projection of the store's committed events,
caught up from its global position at the start of every sweep. ``diff_case`` compares the two
and yields only the changes (case opened, status changed, closed/passivated/reopened, caseworker
changed, action added). Unchanged data yields nothing.

Dedupe keys carry the change, not just the new value: the n-th status change of a case is
``(<record>/status, "<n>:<old>><new>")``, so open -> closed -> open records each change once,
and a re-read of the same snapshot (after a crash, or a case seen twice in one sweep) produces
the same keys, which the store absorbs. ``n`` comes from the store (``KnownCases``), never from
memory that could run ahead of what was committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from connectors.stores import LazyStore, StoreOrFactory
from hub.domain import events as ev
from hub.store.eventstore import EventStore

_EVENT_NS = uuid.UUID("0b6d7f3e-3c39-4f47-9d5e-2f3a8e51c0d1")

#: Canonical statuses after which a case no longer counts as active.
INACTIVE = frozenset({"closed", "dismissed", "completed", "cancelled"})
PASSIVE = "passive"

CASE_EVENT_TYPES = ("CaseOpened", "CaseStatusChanged", "CaseworkerAssigned",
                    "CaseworkerUnassigned", "CaseActionRecorded")


@dataclass(frozen=True)
class ActionSnapshot:
    action_id: str
    action_type: str
    occurred_at: datetime
    source_record_id: str
    subtype: str | None = None
    title: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class CaseworkerRef:
    caseworker_id: str
    name: str
    unit_id: str
    contact: str | None = None


@dataclass(frozen=True)
class CaseSnapshot:
    """One case as the source shows it now, already in canonical words."""

    case_key: str
    source_record_id: str      # e.g. "Sag/606094"
    person: str                # CPR or substitute number of the primary party
    department: str
    unit_id: str
    unit_name: str
    case_type: str
    status: str                # canonical status
    opened_at: datetime
    title: str | None = None
    law: str | None = None
    paragraph: str | None = None
    caseworker: CaseworkerRef | None = None
    closed_at: datetime | None = None
    actions: tuple[ActionSnapshot, ...] = ()


@dataclass
class CaseState:
    """What the store knows about one case."""

    status: str | None = None
    caseworker_id: str | None = None
    status_changes: int = 0
    caseworker_changes: int = 0
    actions: set[str] = field(default_factory=set)


class KnownCases:
    """The store's committed knowledge of one source system's cases, kept by global position.

    ``catch_up()`` reads only events appended since the last call (the first call reads the
    system's whole history once). Nothing else writes to it, so it never runs ahead of the store.
    """

    def __init__(self, store: EventStore, source_system: str):
        self.store = store
        self.source_system = source_system
        self.position = 0
        self.cases: dict[str, CaseState] = {}
        self.newest_opened: datetime | None = None
        """The latest business time of a ``CaseOpened`` of this system in the store."""

    def catch_up(self, batch_size: int = 5000) -> None:
        # Rows carry source system and case key in clear: only this system's are decrypted.
        while True:
            rows = self.store.recorder.rows_after(self.position, batch_size, CASE_EVENT_TYPES)
            if not rows:
                return
            for row in rows:
                if row.source_system == self.source_system and row.case_key:
                    self.apply(self.store.from_row(row))
            self.position = rows[-1].position

    def apply(self, e: ev.CanonicalEvent) -> None:
        s = self.cases.setdefault(e.case_key or "", CaseState())
        p = e.payload
        if isinstance(p, ev.CaseOpened):
            if s.status is None:
                s.status = p.status
            if self.newest_opened is None or e.occurred_at > self.newest_opened:
                self.newest_opened = e.occurred_at
        elif isinstance(p, ev.CaseStatusChanged):
            s.status = p.status
            s.status_changes += 1
        elif isinstance(p, ev.CaseworkerAssigned) and p.role == "primary":
            s.caseworker_id = p.caseworker_id
            s.caseworker_changes += 1
        elif isinstance(p, ev.CaseworkerUnassigned) and p.role == "primary":
            if s.caseworker_id == p.caseworker_id:
                s.caseworker_id = None
        elif isinstance(p, ev.CaseActionRecorded):
            s.actions.add(p.action_id)

    def get(self, case_key: str) -> CaseState | None:
        return self.cases.get(case_key)


def change_version(n: int, old: object, new: object) -> str:
    """The dedupe version of a case's ``n``-th change of a status or caseworker from ``old`` to
    ``new``: a return to an earlier value is a change of its own (every connector that diffs
    against ``KnownCases`` keys its changes so)."""
    return f"{n}:{old}>{new}"


class _Emitter:
    def __init__(self, source_system: str, snap: CaseSnapshot):
        self.source_system = source_system
        self.snap = snap
        self.events: list[ev.CanonicalEvent] = []

    def __call__(self, record_id: str, version: str, at: datetime, payload: ev.Payload) -> None:
        self.events.append(make_event(self.source_system, record_id, version, at, payload,
                                      person=self.snap.person, case_key=self.snap.case_key))


def make_event(source_system: str, record_id: str, version: str, at: datetime,
               payload: ev.Payload, *, person: str | None, case_key: str | None
               ) -> ev.CanonicalEvent:
    """A canonical event whose id is derived from its dedupe key (the same fact, the same id)."""
    event_id = uuid.uuid5(_EVENT_NS, f"{source_system}|{record_id}|{version}")
    return ev.CanonicalEvent(event_id=event_id, source_system=source_system,
                             source_record_id=record_id, source_version=version,
                             occurred_at=at, payload=payload, person=person, case_key=case_key)


def diff_case(source_system: str, snap: CaseSnapshot, known: CaseState | None,
              detected_at: datetime) -> list[ev.CanonicalEvent]:
    """The events that take the store from ``known`` to ``snap`` (none when they agree).

    Changes found by a sweep carry ``detected_at`` as business time: the source does not say
    when they happened (a closed case's own closing date is used when the source gives one).
    """
    emit = _Emitter(source_system, snap)
    rid = snap.source_record_id
    if known is None:
        known = CaseState()
        emit(rid, "opened", snap.opened_at, ev.CaseOpened(
            department=snap.department, unit_id=snap.unit_id, unit_name=snap.unit_name,
            case_type=snap.case_type, status=snap.status, title=snap.title, law=snap.law,
            paragraph=snap.paragraph))
        known.status = snap.status
        if snap.status in INACTIVE:
            emit(f"{rid}/closed", "1", snap.closed_at or detected_at,
                 ev.CaseClosed(reason=f"status {snap.status}"))
        elif snap.status == PASSIVE:
            emit(f"{rid}/passivated", "1", detected_at, ev.CasePassivated())
    elif known.status != snap.status:
        n = known.status_changes + 1
        old, new = known.status, snap.status
        at = snap.closed_at if new in INACTIVE and snap.closed_at else detected_at
        emit(f"{rid}/status", change_version(n, old, new), at,
             ev.CaseStatusChanged(status=new, previous_status=old))
        if new in INACTIVE and old not in INACTIVE:
            emit(f"{rid}/closed", f"{n}", at, ev.CaseClosed(reason=f"status {new}"))
        elif new == PASSIVE:
            emit(f"{rid}/passivated", f"{n}", at, ev.CasePassivated())
        elif old in INACTIVE or old == PASSIVE:
            emit(f"{rid}/reopened", f"{n}", at, ev.CaseReopened(reason=f"status {new}"))
    _diff_caseworker(emit, snap, known, detected_at)
    for a in snap.actions:
        if a.action_id not in known.actions:
            emit(a.source_record_id, "1", a.occurred_at, ev.CaseActionRecorded(
                action_id=a.action_id, action_type=a.action_type, subtype=a.subtype,
                title=a.title, text=a.text))
    return emit.events


def _diff_caseworker(emit: _Emitter, snap: CaseSnapshot, known: CaseState,
                     detected_at: datetime) -> None:
    new = snap.caseworker.caseworker_id if snap.caseworker else None
    if new == known.caseworker_id:
        return
    n = known.caseworker_changes + 1
    rid = f"{snap.source_record_id}/behandler"
    at = snap.opened_at if n == 1 and known.caseworker_id is None else detected_at
    if known.caseworker_id is not None:
        emit(f"{rid}/fjernet", f"{n}:{known.caseworker_id}", at,
             ev.CaseworkerUnassigned(caseworker_id=known.caseworker_id))
    if snap.caseworker is not None:
        cw = snap.caseworker
        emit(rid, change_version(n, known.caseworker_id, new), at, ev.CaseworkerAssigned(
            caseworker_id=cw.caseworker_id, caseworker_name=cw.name, unit_id=cw.unit_id,
            contact=cw.contact))



class KnownCasesSource:
    """A snapshot connector's view of what the store knows, built on first use. ``store`` is the
    runner's store, or a factory that opens one (then it is closed with ``close()``)."""

    def __init__(self, store: StoreOrFactory, source_system: str):
        self._store = LazyStore(store)
        self._source_system = source_system
        self._known: KnownCases | None = None

    def get(self) -> KnownCases:
        if self._known is None:
            self._known = KnownCases(self._store.get(), self._source_system)
        return self._known

    def close(self) -> None:
        if self._store.close():
            self._known = None
