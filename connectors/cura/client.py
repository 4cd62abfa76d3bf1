"""Cura's dialect: FHIR REST (STU3-style) behind a three-step login.

1. ``GET {access_token_url}{username}`` (text) -> the realm's token URL;
2. password grant there with ``client_id=fhir-server`` -> access token;
3. ``POST {session_token_url}`` (form organization, userRole, apiVersion; Bearer + API key)
   -> ``sessionToken.tokenString``.
Every call then sends ``Authorization: Bearer``, ``CURA-API-KEY`` and ``CuraSessionToken: Bearer``.
Searches return Bundles, paged by following ``link[relation=next]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from connectors.cura import fhir
from connectors.http import Auth, HttpClient, PageRequest, PasswordGrant, send_login
from hub.ingest.connector import SourceUnavailable


class CuraAuth(Auth):
    def __init__(self, access_token_url: str, session_token_url: str, username: str,
                 password: str, api_key: str, organization: str, user_role: str,
                 api_version: str):
        super().__init__()
        self.access_token_url = access_token_url
        self.session_token_url = session_token_url
        self.username = username
        self.api_key = api_key
        self.session_form = {"organization": organization, "userRole": user_role,
                             "apiVersion": api_version}
        self.grant = PasswordGrant("", username, password, client_id="fhir-server")

    def login(self, http: httpx.Client) -> tuple[dict[str, str], float]:
        discovery = send_login(http, "GET", f"{self.access_token_url}{self.username}",
                               headers={"Accept": "text/plain"})
        token_url = discovery.text.strip().strip('"')
        access, ttl = self.grant.token(http, token_url)
        r = send_login(http, "POST", self.session_token_url, data=self.session_form,
                       headers={"Authorization": f"Bearer {access}",
                                "CURA-API-KEY": self.api_key})
        try:
            session = r.json()["sessionToken"]["tokenString"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceUnavailable("Cura session endpoint answered without a token") from exc
        return {"Authorization": f"Bearer {access}", "CURA-API-KEY": self.api_key,
                "CuraSessionToken": f"Bearer {session}"}, ttl


class CuraClient(HttpClient):
    """FHIR calls the connector makes. Paths are relative to the FHIR base URL."""

    def search(self, resource_type: str, params: dict[str, Any]) -> Iterator[dict]:
        """Bundles of a search, first page to last, by ``next`` links."""
        def next_page(_: PageRequest, bundle: Any) -> PageRequest | None:
            for link in (bundle or {}).get("link") or []:
                if link.get("relation") == "next" and link.get("url"):
                    return PageRequest("GET", link["url"])
            return None
        return self.pages(PageRequest("GET", resource_type, params=params), next_page)

    def read(self, resource_type: str, rid: str) -> dict:
        return self.get_json(f"{resource_type}/{rid}")

    def patient_by_cpr(self, cpr: str) -> dict | None:
        """``Patient?identifier=<cpr10>&_profile=CuraCitizen``: the citizen, or None."""
        bundle = self.get_json("Patient", params={"identifier": cpr, "_profile": fhir.CITIZEN})
        entries = bundle.get("entry") or []
        return entries[0]["resource"] if entries else None

    def patient_cpr(self, patient_id: str) -> str | None:
        return fhir.cpr_of_patient(self.read("Patient", patient_id))
