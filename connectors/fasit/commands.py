"""Write-back to Fasit (what Tyra does for coordinated pathways), every command idempotent:

- person-group markings, by (marking type, citizen): setting a marking the citizen already has
  active returns the existing one; ending one the citizen does not have is a no-op. Person groups
  are looked up by display name, as the public clients do.
- "Kommunens markeringer", the citizen's free-text note fields: a marking that the citizen has a
  case in another system is one line in ``importantNote2`` ending in ``[<key>]``. Setting it
  adds or replaces that line, ending it removes the line; the caseworkers' own text in the field
  is kept. Fasit replaces all note fields on ``updatenotes``, so each write reads them first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from connectors.fasit.client import FasitClient
from connectors.fasit.dates import from_wire
from hub.ingest.connector import ConnectorError

#: The note field the public Fasit client writes "Kommunens markeringer" to.
NOTE_FIELD = "importantNote2"


class CommandRejected(ConnectorError):
    """Fasit cannot carry out the command as asked (unknown citizen or person group)."""


@dataclass(frozen=True)
class MarkingResult:
    marking_id: str
    created: bool = False
    """False when the marking was already there (set) or already ended (end)."""
    record: dict[str, Any] | None = None
    """The marking as Fasit shows it after the command (as the connector reads it)."""


@dataclass(frozen=True)
class NoteMarking:
    """One citizen's "case in another system" line after a command."""

    citizen_id: str
    changed: bool       # False: the field already was as asked (nothing was written)
    line: str | None    # the line now in the field; None once ended


def _key_tag(key: str) -> str:
    return f"[{key}]"


def note_line(text: str | None, key: str) -> str | None:
    """The line of ``text`` that carries ``key``, if any."""
    return next((ln for ln in (text or "").splitlines() if ln.rstrip().endswith(_key_tag(key))),
                None)


def with_line(text: str | None, key: str, line: str) -> str:
    """``text`` with the line for ``key`` set to ``line`` (replaced in place, else appended)."""
    full = f"{' '.join(line.split())} {_key_tag(key)}"
    lines = (text or "").splitlines()
    for i, ln in enumerate(lines):
        if ln.rstrip().endswith(_key_tag(key)):
            lines[i] = full
            return "\n".join(lines)
    return "\n".join([*[ln for ln in lines if ln.strip()], full])


def without_line(text: str | None, key: str) -> str:
    return "\n".join(ln for ln in (text or "").splitlines()
                     if not ln.rstrip().endswith(_key_tag(key)))


class FasitMarkings:
    def __init__(self, client: FasitClient, note_field: str = NOTE_FIELD):
        self.client = client
        self.note_field = note_field
        self._groups: dict[str, str] = {}
        """Person group ids found by name (a name not found is asked again next time)."""

    def _citizen(self, cpr: str, citizen_id: str | None) -> str:
        cid = citizen_id or self.client.find_citizen(cpr)
        if cid is None:
            raise CommandRejected("Fasit does not know the citizen")
        return cid

    def _group(self, marking_type: str) -> str:
        if marking_type not in self._groups:
            for g in self.client.person_groups():
                if g.get("name") == marking_type and g.get("isActive", True):
                    self._groups[marking_type] = str(g["id"])
                    break
            else:
                raise CommandRejected(f"Fasit has no active person group named {marking_type!r}")
        return self._groups[marking_type]

    def _active(self, cid: str, group_id: str, on: date) -> list[dict]:
        out = []
        for mk in self.client.markings(cid):
            if str(mk.get("personGroupId")) != group_id:
                continue
            end = from_wire(mk["endDate"]) if mk.get("endDate") else None
            if end is None or end > on:
                out.append(mk)
        return out

    def _record(self, cid: str, marking_id: str) -> dict[str, Any] | None:
        return next((mk for mk in self.client.markings(cid) if str(mk.get("id")) == marking_id),
                    None)

    def set_marking(self, cpr: str, marking_type: str, valid_from: date,
                    valid_to: date | None = None, *, citizen_id: str | None = None
                    ) -> MarkingResult:
        """``citizen_id``: the citizen's Fasit id when the caller has just looked it up."""
        cid, gid = self._citizen(cpr, citizen_id), self._group(marking_type)
        active = self._active(cid, gid, valid_from)
        if active:
            return MarkingResult(str(active[0]["id"]), created=False, record=active[0])
        mid = self.client.create_marking(cid, gid, valid_from, valid_to)
        return MarkingResult(mid, created=True, record=self._record(cid, mid))

    def end_marking(self, cpr: str, marking_type: str, ended_on: date, *,
                    citizen_id: str | None = None) -> MarkingResult | None:
        """End every active marking of this type on ``ended_on``; None if there was none."""
        cid, gid = self._citizen(cpr, citizen_id), self._group(marking_type)
        active = self._active(cid, gid, ended_on)
        for mk in active:
            self.client.update_marking(str(mk["id"]), from_wire(mk["startDate"]), ended_on)
        if not active:
            return None
        mid = str(active[0]["id"])
        return MarkingResult(mid, created=True, record=self._record(cid, mid))

    # --- "Kommunens markeringer": the citizen has a case in another system -----------------

    def _rewrite(self, cpr: str, change: Callable[[str], str]
                 ) -> tuple[str, bool, str] | None:
        """(citizen id, changed?, the field now) after applying ``change`` to the field."""
        cid = self.client.find_citizen(cpr)
        if cid is None:
            return None
        notes = self.client.notes(cid)
        before = notes.get(self.note_field) or ""
        after = change(before)
        if after != before:
            self.client.update_notes(cid, {**notes, self.note_field: after or None})
        return cid, after != before, after

    def set_note_marking(self, cpr: str, key: str, line: str) -> NoteMarking | None:
        """Make the citizen's note field carry ``line`` for ``key``; None if Fasit does not know
        the citizen."""
        done = self._rewrite(cpr, lambda text: with_line(text, key, line))
        return None if done is None else NoteMarking(done[0], done[1], note_line(done[2], key))

    def end_note_marking(self, cpr: str, key: str) -> NoteMarking | None:
        """Remove the line for ``key``; None if Fasit does not know the citizen."""
        done = self._rewrite(cpr, lambda text: without_line(text, key))
        return None if done is None else NoteMarking(done[0], done[1], None)
