"""Write-back to Fasit: set and end person-group markings (what Tyra does for coordinated
pathways). Commands are idempotent by (marking type, citizen): setting a marking the citizen
already has active returns the existing one; ending one the citizen does not have is a no-op.

Person groups are looked up by display name, as the public clients do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from connectors.fasit.client import FasitClient
from connectors.fasit.dates import from_wire
from hub.ingest.connector import ConnectorError


class CommandRejected(ConnectorError):
    """Fasit cannot carry out the command as asked (unknown citizen or person group)."""


@dataclass(frozen=True)
class MarkingResult:
    marking_id: str
    created: bool = False
    """False when the marking was already there (set) or already ended (end)."""


class FasitMarkings:
    def __init__(self, client: FasitClient):
        self.client = client

    def _citizen(self, cpr: str) -> str:
        cid = self.client.find_citizen(cpr)
        if cid is None:
            raise CommandRejected("Fasit does not know the citizen")
        return cid

    def _group(self, marking_type: str) -> str:
        for g in self.client.person_groups():
            if g.get("name") == marking_type and g.get("isActive", True):
                return str(g["id"])
        raise CommandRejected(f"Fasit has no active person group named {marking_type!r}")

    def _active(self, cid: str, group_id: str, on: date) -> list[dict]:
        out = []
        for mk in self.client.markings(cid):
            if str(mk.get("personGroupId")) != group_id:
                continue
            end = from_wire(mk["endDate"]) if mk.get("endDate") else None
            if end is None or end > on:
                out.append(mk)
        return out

    def set_marking(self, cpr: str, marking_type: str, valid_from: date,
                    valid_to: date | None = None) -> MarkingResult:
        cid, gid = self._citizen(cpr), self._group(marking_type)
        active = self._active(cid, gid, valid_from)
        if active:
            return MarkingResult(str(active[0]["id"]), created=False)
        return MarkingResult(self.client.create_marking(cid, gid, valid_from, valid_to),
                             created=True)

    def end_marking(self, cpr: str, marking_type: str, ended_on: date) -> MarkingResult | None:
        """End every active marking of this type on ``ended_on``; None if there was none."""
        cid, gid = self._citizen(cpr), self._group(marking_type)
        active = self._active(cid, gid, ended_on)
        for mk in active:
            self.client.update_marking(str(mk["id"]), from_wire(mk["startDate"]), ended_on)
        return MarkingResult(str(active[0]["id"]), created=True) if active else None
