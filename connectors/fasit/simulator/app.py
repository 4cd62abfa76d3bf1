"""The Fasit simulator: the jobcentre backend's JSON queries and commands, behind a bearer token
and the ``X-Tenant`` header.

State it keeps beyond the municipality: "Kommunens markeringer" (the citizens' note fields),
replaced whole by ``updatenotes``.

Real Fasit issues its tokens through a browser login at ``login.fasit.dk/{tenant}``; the simulator
stands in with ``POST /connect/token`` (client credentials). A missing ``X-Tenant`` is answered
400, another tenant 403, a missing, unknown or expired token 401; every error carries an
``X-CorrelationIdentifier``. Search pages are at most 250 rows, journal pages at most 100.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, Response

from connectors.dubu.simulator.serving import RequestGuard
from connectors.fasit.dates import from_wire, parse_timestamp
from connectors.fasit.mapping import STATUS_OF
from connectors.fasit.simulator.world import NOTE_FIELDS, FasitWorld, group_id
from connectors.simulation import (
    FaultConfig,
    Faults,
    HttpSimulator,
    Tokens,
    bearer,
    fault_middleware,
)
from hub.synthetic.model import Case, Municipality

MAX_SEARCH_PAGE = 250
MAX_JOURNAL_PAGE = 100
PERSONGROUP = "/api/citizen/citizenmasterdata/persongroup"
CITIZENCORE = "/api/citizen/citizenmasterdata/citizencore"


@dataclass(frozen=True)
class FasitCredentials:
    tenant: str = "glasby"
    client_id: str = "glasplade"
    client_secret: str = "hemmelig-fasit"


def _error(status: int, title: str) -> JSONResponse:
    return JSONResponse({"title": title, "status": status}, status_code=status,
                        headers={"X-CorrelationIdentifier": str(uuid.uuid4())})


def _rule_matches(rule: dict[str, Any], cases: list[Case]) -> bool:
    field, op, value = rule.get("field"), rule.get("operator"), rule.get("value")
    if field == "Cases.CreatedOn":
        if value == "@dd":
            bound = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        else:
            bound = parse_timestamp(str(value))
        tests = {"gt": lambda t: t > bound, "ge": lambda t: t >= bound,
                 "eq": lambda t: t.date() == bound.date()}
        if op not in tests:
            raise ValueError(f"operator {op!r} is not supported for {field}")
        return any(tests[op](c.opened_at) for c in cases)
    if field == "Cases.CaseStatus":
        wanted = value if isinstance(value, list) else [value]
        if op not in ("in", "eq"):
            raise ValueError(f"operator {op!r} is not supported for {field}")
        return any(STATUS_OF.get(c.status, "Aktiv") in wanted for c in cases)
    if field == "Cases" and op == "empty":
        return not cases
    raise ValueError(f"field {field!r} is not supported")


def create_app(world: FasitWorld, faults: Faults,
               credentials: FasitCredentials = FasitCredentials()) -> FastAPI:
    app = FastAPI(title="Fasit simulator", docs_url=None, redoc_url=None)
    tokens = Tokens(faults, prefix="fasit")

    def tenant_and_token(request: Request) -> Response | None:
        if request.url.path.startswith("/api/"):
            tenant = request.headers.get("X-Tenant")
            if not tenant:
                return _error(400, "The X-Tenant header is required")
            if tenant != credentials.tenant:
                return _error(403, "Unknown tenant")
            if not tokens.valid(bearer(request.headers.get("Authorization"))):
                return _error(401, "Unauthorized")
        return None

    app.add_middleware(RequestGuard, check=tenant_and_token)
    fault_middleware(app, faults)  # outermost: an outage answers before anything else

    @app.post("/connect/token")
    def token(grant_type: str = Form(...), client_id: str = Form(""),
              client_secret: str = Form("")) -> Response:
        if grant_type != "client_credentials" or (client_id, client_secret) != (
                credentials.client_id, credentials.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        token, ttl = tokens.issue()
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": ttl})

    @app.post("/api/search")
    async def search(request: Request) -> Response:
        body = await request.json()
        size, number = body.get("pageSize", 50), body.get("pageNumber", 1)
        if not isinstance(size, int) or not 1 <= size <= MAX_SEARCH_PAGE:
            return _error(400, f"pageSize must be between 1 and {MAX_SEARCH_PAGE}")
        if not isinstance(number, int) or number < 1:
            return _error(400, "pageNumber must be 1 or more")
        dsl = body.get("fasitDsl") or {}
        rules = dsl.get("rules") or []
        combine = any if dsl.get("condition") == "or" else all
        rows = []
        try:
            for cid, (person, cpr) in world.citizens().items():
                if rules and not combine(_rule_matches(r, world.cases_of(cpr)) for r in rules):
                    continue
                rows.append({"CitizenId": cid,
                             "CitizenCprFormatted": f"{cpr[:6]}-{cpr[6:]}",
                             "CitizenFullName": (f"{person.first_name} {person.last_name}"
                                                 if person else None)})
        except (ValueError, KeyError) as exc:
            return _error(400, f"Invalid fasitDsl: {exc}")
        total = len(rows)
        page = rows[(number - 1) * size: number * size]
        return JSONResponse({"searchResult": {"rows": page, "totalResultsCount": total,
                                              "resultsPagesCount": -(-total // size)}})

    def _cpr(citizen: Any) -> str | None:
        found = world.citizens().get(str(citizen))
        return found[1] if found else None

    @app.post("/api/search/queries/rankedsearchquery")
    async def ranked(request: Request) -> Response:
        body = await request.json()
        wanted = str(body.get("queryString", "")).replace("-", "")
        hits = [{"documentType": "citizen", "documentId": cid}
                for cid, (_, cpr) in world.citizens().items() if cpr == wanted]
        return JSONResponse({"rankedSearchResult": hits})

    @app.post("/api/citizen/case/queries/getcases")
    async def getcases(request: Request) -> Response:
        cpr = _cpr((await request.json()).get("citizenId"))
        if cpr is None:
            return _error(404, "Citizen not found")
        return JSONResponse({"cases": [world.case(c) for c in world.cases_of(cpr)]})

    @app.post("/api/citizen/journal/queries/getjournalnotesforcitizenid")
    async def journal(request: Request) -> Response:
        body = await request.json()
        cpr = _cpr(body.get("citizenId"))
        if cpr is None:
            return _error(404, "Citizen not found")
        paging = body.get("pageRequest") or {}
        size, number = paging.get("pageSize", 25), paging.get("pageNumber", 1)
        if not isinstance(size, int) or not 1 <= size <= MAX_JOURNAL_PAGE:
            return _error(400, f"pageSize must be between 1 and {MAX_JOURNAL_PAGE}")
        sort = body.get("sortRequest") or {}
        if sort.get("sortBy", "eventDate") != "eventDate":
            return _error(400, "sortBy must be eventDate")
        notes = sorted(world.notes(cpr), key=lambda n: (n["eventDate"], n["id"]),
                       reverse=sort.get("sortOrder", "descending") == "descending")
        page = notes[(number - 1) * size: number * size]
        return JSONResponse({"journalNotes": page, "totalCount": len(notes)})

    @app.get(f"{PERSONGROUP}/queries/getpersongroups")
    def groups() -> Response:
        return JSONResponse({"personGroups": [
            {"id": group_id(n), "name": n, "isActive": True} for n in world.person_groups()]})

    @app.post(f"{PERSONGROUP}/queries/getpersongroupmarkingsforcitizen")
    async def markings(request: Request) -> Response:
        cpr = _cpr((await request.json()).get("citizenId"))
        if cpr is None:
            return _error(404, "Citizen not found")
        return JSONResponse({"personGroupMarkings": [world.marking(mk)
                                                     for mk in world.markings_of(cpr)]})

    @app.post(f"{PERSONGROUP}/queries/createpersongroupmarking")
    async def create_marking(request: Request) -> Response:
        body = await request.json()
        cpr = _cpr(body.get("citizenId"))
        names = {group_id(n): n for n in world.person_groups()}
        group = names.get(str(body.get("personGroupId")))
        if cpr is None or group is None:
            return _error(404, "Citizen or person group not found")
        try:
            start = from_wire(body["startDate"])
            end = from_wire(body["endDate"]) if body.get("endDate") else None
        except (KeyError, ValueError, TypeError):
            return _error(400, "startDate/endDate must be Fasit dates")
        mk = world.create_marking(cpr, group, start, end)
        return JSONResponse({"id": mk.marking_id})

    @app.post(f"{PERSONGROUP}/commands/updatepersongroupmarking")
    async def update_marking(request: Request) -> Response:
        body = await request.json()
        mk = world.find_marking(str(body.get("id")))
        if mk is None:
            return _error(404, "Marking not found")
        try:
            with world.lock:
                if body.get("startDate"):
                    mk.valid_from = from_wire(body["startDate"])
                mk.valid_to = from_wire(body["endDate"]) if body.get("endDate") else None
        except (ValueError, TypeError):
            return _error(400, "startDate/endDate must be Fasit dates")
        return JSONResponse({})

    @app.post(f"{CITIZENCORE}/queries/getnotesforcitizen")
    async def get_notes(request: Request) -> Response:
        cpr = _cpr((await request.json()).get("citizenId"))
        if cpr is None:
            return _error(404, "Citizen not found")
        return JSONResponse({"notes": world.notes_of(cpr)})

    @app.post(f"{CITIZENCORE}/commands/updatenotes")
    async def update_notes(request: Request) -> Response:
        body = await request.json()
        cpr = _cpr(body.get("citizenId"))
        if cpr is None:
            return _error(404, "Citizen not found")
        notes = body.get("notes")
        if not isinstance(notes, dict) or set(notes) - set(NOTE_FIELDS) or not all(
                v is None or isinstance(v, str) for v in notes.values()):
            return _error(400, f"notes must be an object with text fields {NOTE_FIELDS}")
        world.set_notes(cpr, notes)
        return JSONResponse({})

    return app


def simulator(municipality: Municipality, faults: FaultConfig | Faults | None = None,
              credentials: FasitCredentials = FasitCredentials()) -> HttpSimulator:
    """The Fasit simulator for ``glasplade simulate`` and the tests (not started yet)."""
    faults = faults if isinstance(faults, Faults) else Faults(faults or FaultConfig())
    world = FasitWorld(municipality, faults)
    app = create_app(world, faults, credentials)

    def env(url: str) -> dict[str, str]:
        return {"FASIT_BASE_URL": url, "FASIT_TENANT": credentials.tenant,
                "FASIT_TOKEN_URL": f"{url}/connect/token",
                "FASIT_CLIENT_ID": credentials.client_id,
                "FASIT_CLIENT_SECRET": credentials.client_secret}

    sim = HttpSimulator("fasit", app, faults, env)
    sim.world = world  # type: ignore[attr-defined]
    return sim
