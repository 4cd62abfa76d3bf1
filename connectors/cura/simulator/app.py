"""A Cura FHIR server for one synthetic municipality: the three-step login, FHIR search with
Bundle paging by ``next`` links, ``_lastUpdated``/``received`` filters, ``_count`` limits, faults.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from connectors.cura import fhir
from connectors.cura.simulator.resources import Indexed, Resources
from connectors.simulation import Faults, Tokens, bearer, fault_middleware
from hub.synthetic.model import Municipality

FHIR_JSON = "application/fhir+json"
MAX_COUNT = 1000
DEFAULT_COUNT = 50
TOKEN_PATH = "/auth/realms/cura/protocol/openid-connect/token"


def _outcome(status: int, text: str) -> JSONResponse:
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "security" if status in (401, 403) else "processing",
         "diagnostics": text}]}, status_code=status, media_type=FHIR_JSON)


def _token(after: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(after).encode()).decode()


def _untoken(token: str) -> tuple[datetime, str]:
    at, rid = json.loads(base64.urlsafe_b64decode(token.encode()))
    return fhir.parse_instant(at), rid


def _compare(prefix_value: str) -> tuple[str, datetime]:
    prefix = prefix_value[:2]
    if prefix in ("gt", "ge", "lt", "le", "eq"):
        return prefix, fhir.parse_instant(prefix_value[2:])
    return "eq", fhir.parse_instant(prefix_value)


def _matches(at: datetime, op: str, value: datetime) -> bool:
    return {"gt": at > value, "ge": at >= value, "lt": at < value, "le": at <= value,
            "eq": at == value}[op]


def create_app(municipality: Municipality, faults: Faults, *, username: str, password: str,
               api_key: str) -> FastAPI:
    app = FastAPI(title="Cura FHIR (simulated)", openapi_url=None, docs_url=None)
    fault_middleware(app, faults)
    resources = Resources(municipality)
    access = Tokens(faults, "cura-access")
    sessions = Tokens(faults, "cura-session")

    # --- login: realm discovery, password grant, session token --------------------------

    @app.get("/auth/discovery/{user}")
    def discovery(user: str, request: Request) -> Any:
        if user != username:
            return PlainTextResponse("unknown user", status_code=404)
        base = str(request.base_url).rstrip("/")
        return PlainTextResponse(f'"{base}{TOKEN_PATH}"')

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> Any:
        form = await request.form()
        if (form.get("grant_type") != "password" or form.get("client_id") != "fhir-server"
                or form.get("username") != username or form.get("password") != password):
            return JSONResponse({"error": "invalid_grant"}, status_code=401)
        tok, ttl = access.issue()
        return {"access_token": tok, "expires_in": ttl, "token_type": "bearer"}

    @app.post("/session")
    async def session(request: Request) -> Any:
        if request.headers.get("CURA-API-KEY") != api_key:
            return JSONResponse({"error": "invalid api key"}, status_code=403)
        if not access.valid(bearer(request.headers.get("Authorization"))):
            return JSONResponse({"error": "invalid access token"}, status_code=401)
        form = await request.form()
        missing = [k for k in ("organization", "userRole", "apiVersion") if not form.get(k)]
        if missing:
            return JSONResponse({"error": f"missing {', '.join(missing)}"}, status_code=400)
        tok, ttl = sessions.issue()
        return {"sessionToken": {"tokenString": tok, "expiresIn": ttl}}

    def authorised(request: Request) -> JSONResponse | None:
        if request.headers.get("CURA-API-KEY") != api_key:
            return _outcome(403, "invalid CURA-API-KEY")
        if not access.valid(bearer(request.headers.get("Authorization"))):
            return _outcome(401, "access token expired or invalid")
        if not sessions.valid(bearer(request.headers.get("CuraSessionToken"))):
            return _outcome(401, "session token expired or invalid")
        return None

    # --- FHIR ---------------------------------------------------------------------------

    @app.get("/fhir/metadata")
    def metadata() -> Any:
        return JSONResponse({"resourceType": "CapabilityStatement", "status": "active",
                             "fhirVersion": "3.0.2", "format": ["json"]}, media_type=FHIR_JSON)

    def served(item: Indexed, kind: str) -> dict:
        res = item.resource
        if faults.malformed(f"{kind}/{res['id']}"):
            res = {k: v for k, v in res.items() if k != "subject"}
            res["extension"] = [e for e in res.get("extension", [])
                                if not e["url"].endswith(("/for", "/organization"))]
        return res

    def search(kind: str, request: Request, items: list[Indexed]) -> Any:
        q = request.query_params
        profile = q.get("_profile")
        if profile:
            items = [i for i in items if i.profile == profile]
        subject = q.get("subject") or q.get("for")
        if subject:
            pid = subject.split("/")[-1]
            items = [i for i in items if i.subject == pid]
        try:
            for param in ("_lastUpdated", "received"):
                for value in q.getlist(param):
                    op, at = _compare(value)
                    items = [i for i in items if _matches(i.sort_at, op, at)]
            count = int(q.get("_count", DEFAULT_COUNT))
        except ValueError as exc:
            return _outcome(400, f"invalid search parameter: {exc}")
        if count > MAX_COUNT or count < 0:
            return _outcome(400, f"_count must be 0..{MAX_COUNT}")
        total = len(items)
        page_token = q.get("_getpages")
        if page_token:
            after = _untoken(page_token)
            items = [i for i in items if (i.sort_at, i.resource["id"]) > after]
        page, more = items[:count], len(items) > count
        base = str(request.base_url).rstrip("/") + request.url.path
        links = [{"relation": "self", "url": str(request.url)}]
        if more and page:
            last = page[-1]
            params = [(k, v) for k, v in q.multi_items() if k != "_getpages"]
            params.append(("_getpages", _token((fhir.instant(last.sort_at),
                                                last.resource["id"]))))
            links.append({"relation": "next", "url": f"{base}?{urlencode(params)}"})
        root = str(request.base_url).rstrip("/")
        entries = [{"fullUrl": f"{root}/fhir/{kind}/{i.resource['id']}",
                    "resource": served(i, kind), "search": {"mode": "match"}} for i in page]
        if q.get("_include") == f"{kind}:subject":
            patients = resources.patients()
            for pid in dict.fromkeys(i.subject for i in page if i.subject):
                if pid in patients:
                    entries.append({"fullUrl": f"{root}/fhir/Patient/{pid}",
                                    "resource": patients[pid], "search": {"mode": "include"}})
        bundle = {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links,
                  "entry": entries}
        return JSONResponse(bundle, media_type=FHIR_JSON)

    @app.get("/fhir/Patient")
    def patient_search(request: Request) -> Any:
        if (denied := authorised(request)) is not None:
            return denied
        ident = request.query_params.get("identifier", "")
        cpr = ident.split("|")[-1]
        patients = resources.patients()
        found = [Indexed(p, municipality.as_of, fhir.CITIZEN, p["id"]) for p in patients.values()
                 if any(i.get("value") == cpr for i in p["identifier"])] if cpr else []
        return search("Patient", request, found)

    @app.get("/fhir/Patient/{pid}")
    def patient_read(pid: str, request: Request) -> Any:
        if (denied := authorised(request)) is not None:
            return denied
        p = resources.patients().get(pid)
        if p is None:
            return _outcome(404, f"Patient/{pid} not found")
        return JSONResponse(p, media_type=FHIR_JSON)

    for kind in ("Basic", "ProcedureRequest", "Communication"):
        def make(kind: str = kind) -> None:
            @app.get(f"/fhir/{kind}", name=f"search_{kind}")
            def _search(request: Request) -> Any:
                if (denied := authorised(request)) is not None:
                    return denied
                return search(kind, request, resources.of_type(kind))

            @app.get(f"/fhir/{kind}/{{rid}}", name=f"read_{kind}")
            def _read(rid: str, request: Request) -> Any:
                if (denied := authorised(request)) is not None:
                    return denied
                for i in resources.of_type(kind):
                    if i.resource["id"] == rid:
                        return JSONResponse(served(i, kind), media_type=FHIR_JSON)
                return _outcome(404, f"{kind}/{rid} not found")
        make()

    return app
