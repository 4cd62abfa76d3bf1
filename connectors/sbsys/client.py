"""SBSYS's dialect: REST with PascalCase JSON behind an OAuth2 password grant (Keycloak realm
``sbsip``). Reads for the connector; the writes Tyra makes (create, update, status, journal
note), each idempotent, for the write-back.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.http import HttpClient, RequestRejected
from connectors.sbsys import dialect as d


def titled(title: str, external_key: str) -> str:
    """A case title that carries its external key (how the write-back finds its cases)."""
    return f"{title} [{external_key}]"


def _distinct(cprs: Sequence[str]) -> list[str]:
    """Plain CPR numbers, each once, in the order given."""
    return list(dict.fromkeys(d.cpr_plain(c) for c in cprs if c))


class SbsysClient(HttpClient):
    # --- reads -------------------------------------------------------------------------------

    def search_page(self, body: dict[str, Any], *, parties: bool = True
                    ) -> tuple[list[dict], datetime | None]:
        """One page of ``POST api/sag/search``; also the server's clock (its ``Date`` header)."""
        r = self.request("POST", "api/sag/search",
                         params={"InkluderParterIResultat": "true"} if parties else None,
                         json=body)
        page = self.parse_json(r)
        server_now = None
        if r.headers.get("date"):
            try:
                server_now = email.utils.parsedate_to_datetime(r.headers["date"])
            except (TypeError, ValueError):
                server_now = None
        results = (page or {}).get("Results")
        if not isinstance(results, list):
            raise RequestRejected("api/sag/search answered without Results", r.status_code)
        return results, server_now

    def case(self, case_id: int | str) -> dict:
        return self.get_json(f"api/sag/{case_id}")

    def parties(self, case_id: int | str) -> list[dict]:
        return self.get_json(f"api/sag/{case_id}/part") or []

    def journal_notes(self, case_id: int | str) -> list[dict]:
        return self.get_json(f"api/sag/{case_id}/journalarknotes") or []

    def status_list(self) -> list[dict]:
        return self.get_json("api/sag/sagStatusList") or []

    def find_person(self, cpr: str) -> dict | None:
        found = self.post_json("api/person/search", {"CprNummer": d.cpr_dashed(cpr)}) or []
        return found[0] if found else None

    # --- writes (idempotent by an external key in the title) ---------------------------------

    def find_case_by_key(self, cpr: str, external_key: str) -> dict | None:
        results, _ = self.search_page({"PrimaerPerson": {"CprNummer": d.cpr_dashed(cpr)},
                                       "Titel": f"[{external_key}]", "Limit": 10, "Skip": 0},
                                      parties=True)
        return results[0] if results else None

    def create_case(self, *, cpr: str, title: str, template_id: int, external_key: str,
                    caseworker_id: int | None = None, parties: Sequence[str] = (),
                    search_first: bool = True) -> dict:
        """Create a case from a template unless one with ``external_key`` exists already.
        ``parties``: CPR numbers of further parties (those SBSYS does not know are left out).
        ``search_first=False``: the caller has just searched (``find_case_by_key``) and found
        no such case, so the search is not sent again."""
        if search_first:
            existing = self.find_case_by_key(cpr, external_key)
            if existing is not None:
                return existing
        person = self.find_person(cpr)
        if person is None:
            raise RequestRejected("the person is not known in SBSYS", 404)
        primary = d.cpr_plain(cpr)
        others = [p for p in (self.find_person(c) for c in _distinct(parties) if c != primary)
                  if p]
        body = {"SagsTitel": titled(title, external_key),
                "PrimaryPart": {"PartId": person["Id"], "PartType": "Person"},
                "Parts": [{"PartId": p["Id"], "PartType": "Person"} for p in [person, *others]],
                "SkabelonId": template_id, "SagsbehandlerID": caseworker_id}
        return self.post_json("api/v10/sag/template", body)

    def add_parties(self, case_id: int | str, cprs: Sequence[str],
                    parties: Sequence[dict] | None = None) -> bool:
        """Add persons as parties unless they are parties already (or SBSYS does not know them).
        ``parties``: the case's parties as the caller has them (a search with parties gives
        ``Parter``); else they are read, once for all. False if nothing was written."""
        wanted = _distinct(cprs)
        if not wanted:
            return False
        if parties is None:
            parties = self.parties(case_id)
        present = {d.cpr_plain(p.get("CPRnummer") or "") for p in parties}
        written = False
        for cpr in wanted:
            if cpr in present:
                continue
            person = self.find_person(cpr)
            if person is None:
                continue
            self.post_json(f"api/sag/{case_id}/part", {
                "PartId": person["Id"], "Navn": person.get("Navn"), "PartType": "Person",
                "Cprnummer": d.cpr_dashed(cpr)})
            present.add(cpr)
            written = True
        return written

    def update_case(self, case_id: int | str, changes: dict[str, Any]) -> dict:
        """PUT needs the whole case: GET, merge, PUT (else SBSYS drops the party link)."""
        whole = self.case(case_id)
        return self.put_json(f"api/sag/{case_id}", {**whole, **changes})

    def set_status(self, case_id: int | str, status_name: str,
                   comment: str = "Opdateret af Glasplade", *, current: dict | None = None,
                   statuses: Iterable[dict] | None = None) -> dict:
        """Set the status by its display name; a no-op when the case has it already.
        ``current``/``statuses``: the case and the status list as the caller has just read
        them (else they are read)."""
        if current is None:
            current = self.case(case_id)
        if (current.get("SagsStatus") or {}).get("Navn") == status_name:
            return current
        if statuses is None:
            statuses = self.status_list()
        status = next((s for s in statuses if s.get("Navn") == status_name), None)
        if status is None:
            raise RequestRejected(f"SBSYS has no status named {status_name!r}", 400)
        return self.put_json(f"api/sag/{case_id}/status",
                             {"SagsStatusID": status["Id"], "Kommentar": comment})

    def passivate(self, case_id: int | str, comment: str = d.PASSIVATED_BY_GLASPLADE, *,
                  current: dict | None = None, statuses: Iterable[dict] | None = None) -> dict:
        return self.set_status(case_id, "Passiv", comment, current=current, statuses=statuses)

    def add_journal_note(self, case_id: int, heading: str, lines: list[str],
                         contact_time: datetime, key: str | None = None) -> dict:
        """Idempotent by heading + contact time on the case, or, given ``key``, by a note whose
        text carries ``[key]`` (the key is added as the note's last line)."""
        stamp = d.local_time(contact_time)[:19]
        tag = f"[{key}]" if key else None
        for note in self.journal_notes(case_id):
            if tag and tag in (note.get("Note") or ""):
                return {"Uuid": note.get("Uuid"), "created": False}
            if not tag and note.get("Overskrift") == heading and (
                    note.get("Oprettet") or "")[:19] == stamp:
                return {"Uuid": note.get("Uuid"), "created": False}
        if tag:
            lines = [*lines, tag]
        return self.post_json("api/journalarknote/create", {
            "SagID": case_id, "Overskrift": heading, "Note": "<br/>".join(lines),
            "KontaktTidspunkt": contact_time.astimezone(UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z")})
