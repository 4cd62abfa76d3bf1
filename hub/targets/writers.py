"""The write-back's adapters: the connectors' own idempotent write operations, built from
settings. Fasit: person-group markings and the "case in another system" line in "Kommunens
markeringer"; SBSYS: the coordinated-pathway case (created, kept up to date, passivated).

Every operation returns what it wrote and the fagsystem's state after it as canonical events,
made by the same mapping the system's connector uses: the same fact gets the same dedupe key,
so the store keeps it once whether the write-back or the connector records it first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from hub.config import ConfigError, Settings
from hub.domain import events as ev
from hub.store.eventstore import EventStore

PATHWAY_TEMPLATE_ID = 2  # SBSYS template "Sammenhængende borgerforløb" ([components.targets])
EVIDENCE_HEADING = "Grundlag for sammenhængende borgerforløb (Glasplade)"


@dataclass(frozen=True)
class Written:
    """The outcome of one write: the fagsystem's reference, whether anything was written
    (False: it already was as asked), and the fagsystem's state after it as events."""

    ref: str
    changed: bool
    events: tuple[ev.CanonicalEvent, ...] = ()


class ConnectorWriters:
    def __init__(self, fasit_markings=None, sbsys_connector=None,  # noqa: ANN001
                 template_id: int = PATHWAY_TEMPLATE_ID):
        """``sbsys_connector``: the SBSYS connector, for its client and its status list."""
        self.fasit = fasit_markings
        self.sbsys = sbsys_connector
        self.template_id = template_id

    def _fasit(self, system: str):  # noqa: ANN202
        if system != "fasit":
            raise ConfigError(f"no marking writer for system {system!r} (only fasit)")
        if self.fasit is None:
            raise ConfigError("fasit is not configured (FASIT_BASE_URL ...)")
        return self.fasit

    def _sbsys(self):  # noqa: ANN202
        if self.sbsys is None:
            raise ConfigError("sbsys is not configured (SBSYS_BASE_URL ...)")
        return self.sbsys.client

    # --- Fasit person-group markings ----------------------------------------------------------

    def set_marking(self, cprs: Sequence[str], system: str, marking_type: str,
                    valid_from: date) -> Written:
        """The marking on every person Fasit knows (in a family match, e.g. the parent with a
        BSF case but not the child with a DUBU case)."""
        from connectors.fasit.commands import CommandRejected
        from connectors.fasit.mapping import marking_events
        fasit = self._fasit(system)
        refs: list[str] = []
        changed = False
        events: list[ev.CanonicalEvent] = []
        for cpr in cprs:
            if (cid := fasit.client.find_citizen(cpr)) is None:
                continue
            r = fasit.set_marking(cpr, marking_type, valid_from, citizen_id=cid)
            refs.append(r.marking_id)
            changed |= r.created
            events += marking_events(r.record, cpr, valid_from) if r.record else []
        if not refs:
            raise CommandRejected("Fasit knows none of the persons to mark")
        return Written(",".join(refs), changed, tuple(events))

    def end_marking(self, cprs: Sequence[str], system: str, marking_type: str,
                    ended_on: date) -> Written:
        from connectors.fasit.mapping import marking_events
        fasit = self._fasit(system)
        refs: list[str] = []
        events: list[ev.CanonicalEvent] = []
        for cpr in cprs:
            if (cid := fasit.client.find_citizen(cpr)) is None:
                continue
            r = fasit.end_marking(cpr, marking_type, ended_on, citizen_id=cid)
            if r is not None:
                refs.append(r.marking_id)
                events += marking_events(r.record, cpr, ended_on) if r.record else []
        return Written(",".join(refs), bool(refs), tuple(events))

    # --- "has a case in another system" (Fasit: Kommunens markeringer) -------------------------

    def set_other_system_marking(self, system: str, cprs: Sequence[str], key: str, line: str,
                                 drop: Sequence[str], since: date, on: date) -> Written:
        """The line on every person Fasit knows (and off the persons in ``drop``)."""
        from connectors.fasit.commands import CommandRejected
        from connectors.fasit.mapping import note_marking_events
        fasit = self._fasit(system)
        marked: list[str] = []
        changed = False
        events: list[ev.CanonicalEvent] = []
        for cpr in cprs:
            r = fasit.set_note_marking(cpr, key, line)
            if r is None:
                continue  # not a Fasit citizen: nothing to mark there
            marked.append(r.citizen_id)
            changed |= r.changed
            events += note_marking_events(r.citizen_id, key, cpr, since, r.line, on=on)
        for cpr in drop:
            r = fasit.end_note_marking(cpr, key)
            if r is not None and r.changed:
                changed = True
                events += note_marking_events(r.citizen_id, key, cpr, since, None, ended_on=on)
        if not marked:
            raise CommandRejected("Fasit knows none of the persons to mark")
        return Written(",".join(marked), changed, tuple(events))

    def end_other_system_marking(self, system: str, cprs: Sequence[str], key: str,
                                 ended_on: date) -> Written:
        from connectors.fasit.mapping import note_marking_events
        fasit = self._fasit(system)
        ended: list[str] = []
        events: list[ev.CanonicalEvent] = []
        for cpr in cprs:
            r = fasit.end_note_marking(cpr, key)
            if r is not None and r.changed:
                ended.append(r.citizen_id)
                events += note_marking_events(r.citizen_id, key, cpr, ended_on, None,
                                              ended_on=ended_on)
        return Written(",".join(ended), bool(ended), tuple(events))

    # --- SBSYS coordinated-pathway case --------------------------------------------------------

    def _pathway_events(self, sag: dict) -> tuple[ev.CanonicalEvent, ...]:
        from connectors.sbsys import mapping
        self._sbsys()
        return tuple(mapping.pathway_events(sag, self.sbsys.statuses()))

    def ensure_pathway_case(self, cpr: str, title: str, external_key: str,
                            parties: Sequence[str], evidence: Sequence[str], evidence_key: str
                            ) -> Written:
        """The case exists with this title, these parties (added; SBSYS's API as the public
        clients use it removes none) and a journal note with this evidence."""
        from connectors.sbsys.client import titled
        sbsys = self._sbsys()
        sag = sbsys.find_case_by_key(cpr, external_key)
        changed = sag is None
        if sag is None:
            case_id = sbsys.create_case(cpr=cpr, title=title, template_id=self.template_id,
                                        external_key=external_key, parties=parties,
                                        search_first=False)["Id"]
        else:
            case_id = sag["Id"]
            if sag.get("SagsTitel") != titled(title, external_key):
                sbsys.update_case(case_id, {"SagsTitel": titled(title, external_key)})
                changed = True
            changed |= sbsys.add_parties(case_id, parties, sag.get("Parter"))
        if evidence:
            note = sbsys.add_journal_note(case_id, EVIDENCE_HEADING, list(evidence),
                                          datetime.now(UTC), key=evidence_key)
            changed |= note.get("created", True)
        if changed:  # read back what SBSYS now holds, after every write (parties, status, time)
            sag = sbsys.find_case_by_key(cpr, external_key)
            if sag is None:
                raise LookupError("SBSYS does not find the case it just wrote")
        return Written(str(case_id), changed, self._pathway_events(sag))

    def passivate_pathway_case(self, cpr: str, external_key: str) -> Written:
        sbsys = self._sbsys()
        sag = sbsys.find_case_by_key(cpr, external_key)
        if sag is None:
            return Written("", False)
        if (sag.get("SagsStatus") or {}).get("SagsTilstand") == "Passiv":
            return Written(str(sag["Id"]), False, self._pathway_events(sag))
        sbsys.passivate(sag["Id"], current=sag, statuses=self.sbsys.statuses().values())
        after = sbsys.find_case_by_key(cpr, external_key) or sag
        return Written(str(sag["Id"]), True, self._pathway_events(after))

    def close(self) -> None:
        if self.fasit is not None:
            self.fasit.client.close()
        if self.sbsys is not None:
            self.sbsys.client.close()


def writers_from_settings(settings: Settings) -> ConnectorWriters:
    """Writers for the systems that are configured (the others fail their commands clearly)."""
    fasit = sbsys = None
    if settings.component("fasit", "base_url"):
        from connectors.fasit.commands import NOTE_FIELD, FasitMarkings
        from connectors.fasit.connector import FasitConfig, FasitConnector
        fasit = FasitMarkings(FasitConnector(FasitConfig.from_settings(settings),
                                             store=lambda: None).client,
                              str(settings.component("targets", "fasit_note_field",
                                                     NOTE_FIELD)))
    if settings.component("sbsys", "base_url"):
        from connectors.sbsys.connector import from_settings
        sbsys = from_settings(settings)
    template = int(settings.component("targets", "sbsys_template_id", PATHWAY_TEMPLATE_ID))
    return ConnectorWriters(fasit, sbsys, template)


def cpr_from_store(store: EventStore) -> Callable[[str], str | None]:
    """The identifier behind a pseudonym, from the events that name the person (the
    fagsystemer need the CPR number to address the citizen)."""
    def cpr_of(person_key: str) -> str | None:
        for e in store.person_events(person_key=person_key):
            if e.person:
                return e.person
        return None
    return cpr_of
