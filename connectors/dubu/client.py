"""DUBU's dialect: OData v4 ``odata/Sag`` paged with ``$top/$skip/$count``, per-case activities,
and the session cookies ``oiosamlSession``/``oiosamlCookie`` on every call.

Transport, retries and the 401 -> log in again -> retry cycle are ``connectors.http``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from connectors.http import Auth, HttpClient, send_login
from hub.ingest.connector import AuthenticationFailed, SourceUnavailable

#: What the sweep asks for (the public client's ``$select``/``$expand``, plus the fields the
#: mapping reads: ``afdeling``, ``startDato``, ``slutDato``, ``lovgrundlag``; see the docs).
SELECT = ("id,sagsnummer,titel,status,sagstype,tvang,isSensitive,sekundaerBehandlerNavne,"
          "startDato,slutDato,lovgrundlag")
EXPAND = ("primaerPerson($select=alder,cprnr,fornavn,mellemnavn,efternavn,id,organisationsnavn,"
          "fuldeNavn,navn),primaerBehandler($select=id,navn,email,brugernavn),"
          "afdeling($select=orgEnhedId,brugervendtNoegle,navn)")
#: Statuses the public client treats as not active.
INACTIVE_KEYS = ("SagStatus2", "SagStatus5", "SagStatus6", "SagStatus7")
ACTIVE_FILTER = " and ".join(f"status/brugervendtNoegle ne '{k}'" for k in INACTIVE_KEYS)
INACTIVE_FILTER = " or ".join(f"status/brugervendtNoegle eq '{k}'" for k in INACTIVE_KEYS)


_SAFE = "(),/$;='"


class SessionLogin(Auth):
    """DUBU's session: the two SAML cookies.

    With ``cookie`` (``oiosamlSession=...; oiosamlCookie=...``, captured from a browser login to
    the real DUBU) it is sent as is and cannot be renewed. Otherwise it logs in with the login
    form the simulator serves (``SelectedAuthenticationUrl``, ``loginfmt``, ``passwd``).
    """

    def __init__(self, username: str = "", password: str = "", idp: str = "",
                 cookie: str | None = None, ttl: float = 900.0):
        super().__init__()
        self.username, self.password, self.idp = username, password, idp
        self.cookie = cookie
        self.ttl = ttl
        self.margin = min(self.margin, ttl / 4)

    def login(self, http: httpx.Client) -> tuple[dict[str, str], float]:
        if self.cookie:
            return {"Cookie": self.cookie}, float("inf")
        r = send_login(http, "POST", "login", data={
            "SelectedAuthenticationUrl": self.idp, "loginfmt": self.username,
            "passwd": self.password})
        http.cookies.clear()  # the session travels in the header below, never in the jar
        jar = {name: r.cookies.get(name) for name in ("oiosamlSession", "oiosamlCookie")}
        if not all(jar.values()):
            raise AuthenticationFailed("DUBU login answered without the session cookies")
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}, self.ttl


def odata_query(params: dict[str, Any]) -> str:
    """The query string as DUBU's own web client writes it: spaces as %20, ``(),/$;=`` and
    quotes left as they are."""
    return "&".join(f"{k}={quote(str(v), safe=_SAFE)}" for k, v in params.items()
                    if v is not None)


@dataclass
class DubuClient(HttpClient):
    redirect_means_login: bool = True  # an expired SAML session is sent to the IdP login
    def sag_page(self, skip: int, top: int, filter_: str | None = None) -> dict[str, Any]:
        query = odata_query({
            "$format": "application/json;odata.metadata=none", "$count": "true",
            "$orderby": "id asc", "$top": top, "$skip": skip, "$select": SELECT,
            "$expand": EXPAND, "$filter": filter_})
        page = self.get_json(f"odata/Sag?{query}")
        if not isinstance(page, dict) or not isinstance(page.get("value"), list):
            raise SourceUnavailable("odata/Sag answered without a value array")
        return page

    def activities(self, sag_id: str) -> list[Any]:
        page = self.get_json(f"odata/Aktivitet/Default.GetBySag(Id={sag_id})")
        value = page.get("value") if isinstance(page, dict) else None
        if not isinstance(value, list):
            raise SourceUnavailable("Aktivitet/Default.GetBySag answered without a value array")
        return value

    def current_user(self) -> dict[str, Any]:
        return self.get_json("api/organisation/bruger/currentuser")
