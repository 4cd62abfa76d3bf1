"""Fasit's dialect: POSTed JSON queries and commands on the jobcentre backend, a bearer token and
the ``X-Tenant`` header on every call. Transport, retries and re-login on 401 are
``connectors.http``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import httpx

from connectors.fasit.dates import parse_timestamp, to_wire
from connectors.http import Auth, HttpClient, send_login
from hub.ingest.connector import AuthenticationFailed, SourceUnavailable

SEARCH_PAGE = 250
JOURNAL_PAGE = 100
PERSONGROUP = "api/citizen/citizenmasterdata/persongroup"
CITIZENCORE = "api/citizen/citizenmasterdata/citizencore"
SEARCH_COLUMNS = ["CitizenId", "CitizenCprFormatted"]


class BearerToken(Auth):
    """A token from ``token_url`` (client credentials), or a fixed ``token`` issued elsewhere
    (Fasit's own login gives browser tokens; a fixed one cannot be renewed)."""

    def __init__(self, token_url: str | None = None, client_id: str = "",
                 client_secret: str = "", token: str | None = None):
        super().__init__()
        self.token_url, self.client_id, self.client_secret = token_url, client_id, client_secret
        self.token = token

    def login(self, http: httpx.Client) -> tuple[dict[str, str], float]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}, float("inf")
        if not self.token_url:
            raise AuthenticationFailed("Fasit needs FASIT_TOKEN or FASIT_TOKEN_URL")
        r = send_login(http, "POST", self.token_url, data={
            "grant_type": "client_credentials", "client_id": self.client_id,
            "client_secret": self.client_secret})
        body = r.json()
        ttl = float(body.get("expires_in", 300))
        self.margin = min(60.0, ttl / 4)
        return {"Authorization": f"Bearer {body['access_token']}"}, ttl


def _before_or_at(value: str, bound: datetime) -> bool:
    try:
        return parse_timestamp(value) <= bound
    except ValueError:
        return False  # a malformed date: let the mapping dead-letter the note


def _field(body: Any, name: str, kind: type) -> Any:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, kind):
        raise SourceUnavailable(f"Fasit answered without {name}")
    return value


class FasitClient(HttpClient):
    # --- queries --------------------------------------------------------------------------

    def search(self, rules: list[dict[str, Any]], page: int, size: int = SEARCH_PAGE
               ) -> dict[str, Any]:
        """One page of ``/api/search`` in the fasitDsl: citizens whose cases match ``rules``."""
        body = {"universe": "citizen", "fasitDsl": {"condition": "and", "rules": rules},
                "columns": SEARCH_COLUMNS, "pageNumber": page, "pageSize": size}
        return _field(self.post_json("api/search", body), "searchResult", dict)

    def search_rows(self, rules: list[dict[str, Any]], first_page: int = 1,
                    size: int = SEARCH_PAGE
                    ) -> Iterator[tuple[int, list[dict[str, Any]], bool]]:
        """(page number, rows, last page?) from ``first_page`` on."""
        page = first_page
        while True:
            result = self.search(rules, page, size)
            rows = _field(result, "rows", list)
            last = page >= int(result.get("resultsPagesCount") or 0) or not rows
            yield page, rows, last
            if last:
                return
            page += 1

    def cases(self, citizen_id: str) -> list[Any]:
        body = self.post_json("api/citizen/case/queries/getcases", {"citizenId": citizen_id})
        return _field(body, "cases", list)

    def journal_notes(self, citizen_id: str, after: str | None) -> Iterator[Any]:
        """Notes newest first by ``eventDate``, until one is not after ``after`` (ISO, UTC)."""
        bound = parse_timestamp(after) if after else None
        page = 1
        while True:
            body = self.post_json("api/citizen/journal/queries/getjournalnotesforcitizenid", {
                "citizenId": citizen_id,
                "filterRequest": {"filterStatus": "onlyActive", "contentTypes": [], "cases": [],
                                  "assignments": [], "createdBy": [], "sources": [],
                                  "hasAttachments": None},
                "pageRequest": {"pageNumber": page, "pageSize": JOURNAL_PAGE},
                "sortRequest": {"sortBy": "eventDate", "sortOrder": "descending"}})
            notes = _field(body, "journalNotes", list)
            for note in notes:
                when = note.get("eventDate") if isinstance(note, dict) else None
                if bound and isinstance(when, str) and _before_or_at(when, bound):
                    return
                yield note
            if len(notes) < JOURNAL_PAGE:
                return
            page += 1

    def markings(self, citizen_id: str) -> list[Any]:
        body = self.post_json(f"{PERSONGROUP}/queries/getpersongroupmarkingsforcitizen",
                              {"citizenId": citizen_id})
        return _field(body, "personGroupMarkings", list)

    def person_groups(self) -> list[Any]:
        return _field(self.get_json(f"{PERSONGROUP}/queries/getpersongroups"), "personGroups",
                      list)

    def find_citizen(self, cpr: str) -> str | None:
        body = self.post_json("api/search/queries/rankedsearchquery", {
            "universe": "citizen", "queryString": cpr, "documentTypes": ["citizen"], "page": 1,
            "selectedFilters": []})
        hits = _field(body, "rankedSearchResult", list)
        return next((h["documentId"] for h in hits if h.get("documentType") == "citizen"), None)

    def notes(self, citizen_id: str) -> dict[str, Any]:
        """"Kommunens markeringer": the citizen's free-text note fields (``importantNote2``...)."""
        body = self.post_json(f"{CITIZENCORE}/queries/getnotesforcitizen",
                              {"citizenId": citizen_id})
        return _field(body, "notes", dict)

    # --- commands -------------------------------------------------------------------------

    def update_notes(self, citizen_id: str, notes: dict[str, Any]) -> None:
        """Replace the note fields: send all of them (read, change one, send back), as the
        public client does; a field left out is not kept."""
        self.post_json(f"{CITIZENCORE}/commands/updatenotes",
                       {"citizenId": citizen_id, "notes": notes})

    def create_marking(self, citizen_id: str, group_id: str, start: date, end: date | None
                       ) -> str:
        body = self.post_json(f"{PERSONGROUP}/queries/createpersongroupmarking", {
            "startDate": to_wire(start), "endDate": to_wire(end) if end else None,
            "citizenId": citizen_id, "personGroupId": group_id})
        return str(_field(body, "id", str))

    def update_marking(self, marking_id: str, start: date, end: date | None) -> None:
        self.post_json(f"{PERSONGROUP}/commands/updatepersongroupmarking", {
            "id": marking_id, "startDate": to_wire(start),
            "endDate": to_wire(end) if end else None})
