"""The DUBU simulator: OData v4 ``odata/Sag`` and per-case activities behind a session-cookie login.

Real DUBU is reached through a browser SAML login whose session cookies (``oiosamlSession``,
``oiosamlCookie``) are then sent with every call. The simulator stands in for that login with
``POST /login`` (the form fields of the real pages: ``SelectedAuthenticationUrl``, ``loginfmt``,
``passwd``), which sets the same two cookies. Sessions expire after ``token_ttl`` seconds or when
the test calls ``faults.expire_tokens()``; an API call without a live session is redirected to the
login (302, as a SAML service provider sends a browser to its identity provider), one without any
session cookie is answered 401.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import JSONResponse, Response

from connectors.dubu.simulator.odata import (
    ODataError,
    parse_expand,
    parse_filter,
    parse_select,
    project,
)
from connectors.dubu.simulator.serving import RequestGuard
from connectors.dubu.simulator.world import DubuWorld
from connectors.simulation import FaultConfig, Faults, HttpSimulator, Tokens, fault_middleware
from hub.synthetic.model import Municipality

MAX_TOP = 100
DEFAULT_TOP = 20
NAVIGATION = {"primaerPerson", "primaerBehandler", "afdeling", "foerstkommendeFrist"}
SESSION_COOKIES = ("oiosamlSession", "oiosamlCookie")


@dataclass(frozen=True)
class DubuCredentials:
    username: str = "tyra"
    password: str = "hemmelig-dubu"
    idp: str = "simulator"


def _odata_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": {"code": "", "message": message}}, status_code=status)


def create_app(world: DubuWorld, faults: Faults,
               credentials: DubuCredentials = DubuCredentials()) -> FastAPI:
    app = FastAPI(title="DUBU simulator", docs_url=None, redoc_url=None)
    sessions = Tokens(faults, prefix="dubu")

    def authorised(request: Request) -> bool:
        return sessions.valid(request.cookies.get("oiosamlSession"))

    def require_session(request: Request) -> Response | None:
        if request.url.path.startswith(("/odata/", "/api/")) and not authorised(request):
            if request.cookies.get("oiosamlSession"):  # a session that has expired
                return Response(status_code=302, headers={
                    "Location": f"/login?ReturnUrl={request.url.path}"})
            return JSONResponse({"message": "Authorization has been denied for this request."},
                                status_code=401)
        return None

    app.add_middleware(RequestGuard, check=require_session)
    fault_middleware(app, faults)  # outermost: an outage answers before anything else

    @app.post("/login")
    def login(SelectedAuthenticationUrl: str = Form(""), loginfmt: str = Form(""),  # noqa: N803
              passwd: str = Form("")) -> Response:
        if (loginfmt, passwd) != (credentials.username, credentials.password) or (
                SelectedAuthenticationUrl != credentials.idp):
            return JSONResponse({"message": "Forkert brugernavn eller adgangskode"},
                                status_code=401)
        response = Response(status_code=302, headers={"Location": "/"})
        token, _ = sessions.issue()
        response.set_cookie("oiosamlSession", token, httponly=True)
        response.set_cookie("oiosamlCookie", secrets.token_urlsafe(16), httponly=True)
        return response

    @app.get("/odata/Sag")
    def sag(request: Request,
            top: int | None = Query(None, alias="$top"), skip: int = Query(0, alias="$skip"),
            count: bool = Query(False, alias="$count"),
            orderby: str = Query("id asc", alias="$orderby"),
            select: str | None = Query(None, alias="$select"),
            expand: str | None = Query(None, alias="$expand"),
            filter_: str | None = Query(None, alias="$filter"),
            search: str | None = None) -> Response:
        if top is not None and top > MAX_TOP:
            return _odata_error(f"The limit of '{MAX_TOP}' for Top query has been exceeded. "
                                f"The value from the incoming request is '{top}'.")
        if top is not None and top < 0 or skip < 0:
            return _odata_error("$top and $skip must not be negative")
        order = orderby.split()
        if not order or order[0] != "id" or order[1:] not in ([], ["asc"], ["desc"]):
            return _odata_error("$orderby supports only 'id asc' and 'id desc'")
        try:
            predicate = parse_filter(filter_)
            expansions = parse_expand(expand, NAVIGATION)
            selected = parse_select(select)
        except ODataError as exc:
            return _odata_error(str(exc))
        rows = [world.sag(sid, c) for sid, c in world.visible_cases()]
        try:
            rows = [r for r in rows if predicate(r)]
        except ODataError as exc:
            return _odata_error(str(exc))
        if search:
            rows = [r for r in rows if search in (r["primaerPerson"] or {}).get("cprnr", "")
                    or search.lower() in (r.get("titel") or "").lower()]
        if order[1:] == ["desc"]:
            rows.reverse()
        total = len(rows)
        page = rows[skip: skip + (DEFAULT_TOP if top is None else top)]
        body: dict[str, Any] = {}
        if count:
            body["@odata.count"] = total
        body["value"] = [_shape(r, selected, expansions) for r in page]
        return JSONResponse(body)

    @app.get("/odata/Aktivitet/Default.GetBySag(Id={sag_id})")
    def activities_by_sag(sag_id: int) -> Response:
        case = world.case(sag_id)
        if case is None:
            return _odata_error(f"Sag {sag_id} findes ikke", 404)
        return JSONResponse({"value": world.activities(sag_id, case)})

    @app.get("/api/sager/details/{sag_id}")
    def sag_details(sag_id: int) -> Response:
        case = world.case(sag_id)
        if case is None:
            return JSONResponse({"message": "Sagen findes ikke"}, status_code=404)
        return JSONResponse(world.sag(sag_id, case))

    @app.get("/api/organisation/bruger/currentuser")
    def current_user() -> Response:
        return JSONResponse({"id": 1, "orgBruger": {"navn": "Robot A", "brugernavn":
                                                    credentials.username}})

    return app


def _shape(record: dict[str, Any], select: set[str] | None,
           expansions: dict[str, set[str] | None]) -> dict[str, Any]:
    plain = {k: v for k, v in record.items() if k not in NAVIGATION}
    out = project(plain, select)
    for name, sub in expansions.items():
        value = record.get(name)
        out[name] = project(value, sub) if isinstance(value, dict) else value
    return out


def simulator(municipality: Municipality, faults: FaultConfig | Faults | None = None,
              credentials: DubuCredentials = DubuCredentials()) -> HttpSimulator:
    """The DUBU simulator for ``glasplade simulate`` and the tests (not started yet)."""
    faults = faults if isinstance(faults, Faults) else Faults(faults or FaultConfig())
    world = DubuWorld(municipality, faults)
    app = create_app(world, faults, credentials)
    app.state.world = world

    def env(url: str) -> dict[str, str]:
        return {"DUBU_BASE_URL": url, "DUBU_USERNAME": credentials.username,
                "DUBU_PASSWORD": credentials.password, "DUBU_IDP": credentials.idp}

    sim = HttpSimulator("dubu", app, faults, env)
    sim.world = world  # type: ignore[attr-defined]
    return sim
