"""An SBSYS web API for one synthetic municipality: Keycloak-style password grant, the case search
with ``Limit/Skip`` (filters on party CPR, title, number, status and template), cases, parties,
journal notes, the status list, and the writes Tyra makes (create from template, whole-case PUT,
add a party, status change with comment, journal note). The municipality's ``Case`` objects are
the state: reads render them, writes change them. Cases created through the API (such as the
coordinated-pathway cases from template 2) are kept by the simulator itself, next to the
municipality's, and served the same way.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connectors.sbsys import dialect as d
from connectors.simulation import Faults, Tokens, bearer, fault_middleware
from hub.synthetic.model import Case, CaseAction, Municipality, StatusChange

TOKEN_PATH = "/auth/realms/sbsip/protocol/openid-connect/token"
MAX_LIMIT = 5000
_NS = uuid.UUID("9d2c1c55-7a51-4b0e-8f1e-3f3c2e1a7b10")
TEMPLATES = {1: "Børnesag", 2: "Sammenhængende borgerforløb"}


class SbsysState:
    """Int ids for the municipality's SBSYS cases and caseworkers, assigned in a stable order,
    and what SBSYS keeps that the municipality model does not: cases created through the API
    (e.g. Tyra's coordinated-pathway cases, template 2), each case's template, the parties added
    to it and its status comment."""

    def __init__(self, municipality: Municipality):
        self.m = municipality
        self.lock = threading.RLock()
        self.case_ids: dict[str, int] = {}
        self.by_id: dict[int, Case] = {}
        self.created: list[Case] = []           # created through the API, not in ``m.cases``
        self.template: dict[str, int] = {}      # case id -> SkabelonId (generated cases: 1)
        self.added_parts: dict[str, list[str]] = {}  # case id -> CPRs of parties besides primary
        self.comment: dict[str, str | None] = {}    # case id -> SagsStatusKommentar
        self._persons: dict = {}
        self._person_ids: dict[str, int] = {}
        self._caseworkers: dict = {}
        self._seen = -1
        self.sync()

    def _register(self, c: Case) -> int:
        n = len(self.by_id) + 1
        self.case_ids[c.case_id] = n
        self.by_id[n] = c
        return n

    def sync(self) -> None:
        """Give new cases (from ``evolve``) the next ids."""
        with self.lock:
            if len(self.m.cases) == self._seen:
                return
            self._seen = len(self.m.cases)
            for c in sorted((c for c in self.m.cases if c.system == "sbsys"
                             and c.case_id not in self.case_ids),
                            key=lambda c: (c.opened_at, c.case_id)):
                self._register(c)

    def create(self, c: Case, template_id: int, parties: list[str]) -> int:
        """Keep a case created through the API."""
        with self.lock:
            self.sync()
            self.created.append(c)
            self.template[c.case_id] = template_id
            self.added_parts[c.case_id] = [p for p in dict.fromkeys(parties) if p != c.person]
            return self._register(c)

    def now(self) -> datetime:
        """The simulated system's clock: the municipality's 'as of' time."""
        return self.m.as_of

    def find(self, key: str) -> tuple[int, Case] | None:
        self.sync()
        if key.isdigit() and int(key) in self.by_id:
            return int(key), self.by_id[int(key)]
        for n, c in self.by_id.items():
            if str(uuid.uuid5(_NS, c.case_id)) == key:
                return n, c
        return None

    def caseworker(self, caseworker_id: str | None) -> dict | None:
        if len(self._caseworkers) != len(self.m.caseworkers):
            self._caseworkers = {cw.caseworker_id: (i, cw)
                                 for i, cw in enumerate(self.m.caseworkers)}
        found = self._caseworkers.get(caseworker_id or "")
        if found is not None:
            i, cw = found
            return {"Id": i + 1, "Uuid": str(uuid.uuid5(_NS, cw.caseworker_id)),
                    "AnsaettelsesstedIdentity": cw.unit_id, "Brugernavn": cw.caseworker_id,
                    "Navn": cw.name}
        return None

    def person(self, cpr: str):
        if len(self._persons) != len(self.m.persons):
            self._persons = {p.cpr: p for p in self.m.persons}
            self._person_ids = {p.cpr: i + 1 for i, p in enumerate(self.m.persons)}
        return self._persons.get(cpr)

    def sag(self, n: int, c: Case, faults: Faults, parts: bool = False) -> dict:
        unit = next((u for u in self.m.units if u.unit_id == c.unit_id), None)
        status = d.STATUS_LIST[d.STATUS_TO_ID.get(c.status, 1) - 1]
        p = self.person(c.person)
        name = f"{p.first_name} {p.last_name}" if p else None
        cpr = d.cpr_dashed(c.person) if c.person else None
        if faults.malformed(f"sag/{n}"):
            cpr = "ukendt"
        behandler = self.caseworker(c.caseworker_id)
        robot = {"LogonId": "robot-a", "Navn": "Robot A"}
        out = {
            "Id": n, "SagIdentity": str(uuid.uuid5(_NS, c.case_id)), "Nummer": c.case_id,
            "SagsTitel": c.title, "Opstaaet": d.local_time(c.opened_at), "OprettetAf": robot,
            "SenestAendret": d.local_time(c.updated_at or c.opened_at),
            "SenestAendretAf": robot,
            "SagsStatus": {**status, "SagsStatusKommentar": self.comment.get(c.case_id)},
            "ErBeskyttet": False, "ErBesluttet": False,
            "Fagomraade": {"Id": 1, "Navn": c.department},
            "SagSkabelon": self.skabelon(c),
            "PrimaryPart": {"Navn": name, "CPRnummer": cpr} if c.person else None,
            "Behandler": behandler,
            "Ansaettelsessted": {"Id": c.unit_id, "Navn": unit.name if unit else c.unit_id},
        }
        if parts:
            out["Parter"] = self.parts(c)
        return out

    def skabelon(self, c: Case) -> dict:
        tid = self.template.get(c.case_id)
        return {"Id": tid, "Navn": TEMPLATES[tid]} if tid else {"Id": 1, "Navn": c.case_type}

    def person_id(self, cpr: str) -> int | None:
        """The person's ``Id`` (as ``api/person/search`` gives it)."""
        return self._person_ids.get(cpr) if self.person(cpr) is not None else None

    def person_by_id(self, person_id: object):
        """The person whose ``Id`` is ``person_id`` (``person_id`` inverted), or None."""
        persons = self.m.persons
        ok = isinstance(person_id, int) and 0 < person_id <= len(persons)
        return persons[person_id - 1] if ok else None

    def parts(self, c: Case) -> list[dict]:
        if not c.person:
            return []
        out = []
        for cpr in [c.person, *self.added_parts.get(c.case_id, ())]:
            p = self.person(cpr)
            out.append({"Id": self.person_id(cpr), "PartType": "Person", "CVRnummer": None,
                        "CPRnummer": d.cpr_dashed(cpr),
                        "Navn": f"{p.first_name} {p.last_name}" if p else None})
        return out

    def add_part(self, c: Case, cpr: str) -> None:
        if cpr != c.person and cpr not in self.added_parts.setdefault(c.case_id, []):
            self.added_parts[c.case_id].append(cpr)
            self.touch(c)

    def notes(self, c: Case) -> list[dict]:
        out = []
        for a in c.actions:
            cw = next((w for w in self.m.caseworkers if w.caseworker_id == a.caseworker_id), None)
            text = (a.text or "").replace("\n", "<br/>")
            out.append({"Uuid": str(uuid.uuid5(_NS, a.action_id)), "Overskrift": a.title,
                        "Note": f"<p>{text}</p>", "Oprettet": d.local_time(a.occurred_at),
                        "OprettetAf": {"LogonId": cw.caseworker_id if cw else "robot-a",
                                       "Navn": cw.name if cw else "Robot A"}})
        return out

    def touch(self, c: Case) -> None:
        c.updated_at = max(self.now(), (c.updated_at or c.opened_at) + timedelta(milliseconds=1))


def create_app(municipality: Municipality, faults: Faults, *, client_id: str,
               client_secret: str, username: str, password: str) -> FastAPI:
    app = FastAPI(title="SBSYS web API (simulated)", openapi_url=None, docs_url=None)
    fault_middleware(app, faults)
    state = SbsysState(municipality)
    tokens = Tokens(faults, "sbsys")

    @app.middleware("http")
    async def _date(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["Date"] = format_datetime(state.now().astimezone(UTC), usegmt=True)
        return response

    def denied(request: Request) -> JSONResponse | None:
        if tokens.valid(bearer(request.headers.get("Authorization"))):
            return None
        return JSONResponse({"Message": "Authorization has been denied for this request."},
                            status_code=401)

    def not_found(what: str) -> JSONResponse:
        return JSONResponse({"Message": f"{what} findes ikke"}, status_code=404)

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> Any:
        f = await request.form()
        if (f.get("grant_type") != "password" or f.get("client_id") != client_id
                or f.get("client_secret") != client_secret or f.get("username") != username
                or f.get("password") != password):
            return JSONResponse({"error": "invalid_grant",
                                 "error_description": "Invalid user credentials"},
                                status_code=401)
        tok, ttl = tokens.issue()
        return {"access_token": tok, "expires_in": ttl, "token_type": "Bearer"}

    @app.get("/api/sag/sagStatusList")
    def status_list(request: Request) -> Any:
        return denied(request) or d.STATUS_LIST

    @app.post("/api/sag/search")
    async def search(request: Request) -> Any:
        if (no := denied(request)) is not None:
            return no
        body = await request.json()
        try:
            limit = int(body.get("Limit", 100))
            skip = int(body.get("Skip", 0))
        except (TypeError, ValueError):
            return JSONResponse({"Message": "Limit/Skip skal være tal"}, status_code=400)
        if not 0 < limit <= MAX_LIMIT or skip < 0:
            return JSONResponse({"Message": f"Limit skal være 1..{MAX_LIMIT}"}, status_code=400)
        parts = request.query_params.get("InkluderParterIResultat", "").lower() == "true"
        cpr = ((body.get("PrimaerPerson") or {}).get("CprNummer") or "")
        title = (body.get("Titel") or "").lower()
        statuses = set(body.get("SagsStatusIds") or [])
        templates = set(body.get("SagsSkabeloner") or [])
        with state.lock:
            state.sync()
            rows = []
            for n in sorted(state.by_id):
                c = state.by_id[n]
                if cpr and d.cpr_plain(cpr) != c.person:
                    continue
                if title and title not in c.title.lower():
                    continue
                if body.get("Nummer") and body["Nummer"] != c.case_id:
                    continue
                if statuses and d.STATUS_TO_ID.get(c.status, 1) not in statuses:
                    continue
                if templates and state.template.get(c.case_id, 1) not in templates:
                    continue
                rows.append((n, c))
            page = rows[skip:skip + limit]
            return {"Results": [state.sag(n, c, faults, parts) for n, c in page]}

    @app.get("/api/sag/{key}")
    def get_sag(key: str, request: Request) -> Any:
        if (no := denied(request)) is not None:
            return no
        found = state.find(key)
        return state.sag(*found, faults) if found else not_found(f"Sag {key}")

    @app.get("/api/sag/{key}/part")
    def parts(key: str, request: Request) -> Any:
        if (no := denied(request)) is not None:
            return no
        found = state.find(key)
        return state.parts(found[1]) if found else not_found(f"Sag {key}")

    @app.post("/api/sag/{key}/part")
    async def add_part(key: str, request: Request) -> Any:
        if (no := denied(request)) is not None:
            return no
        body = await request.json()
        if body.get("PartType") != "Person":
            return JSONResponse({"Message": "Kun PartType Person understøttes"}, status_code=400)
        with state.lock:
            found = state.find(key)
            if not found:
                return not_found(f"Sag {key}")
            cpr = d.cpr_plain(body.get("Cprnummer") or body.get("CprNummer") or "")
            person = state.person(cpr) if cpr else state.person_by_id(body.get("PartId"))
            if person is None:
                return not_found(f"Person {body.get('PartId')}")
            state.add_part(found[1], person.cpr)
            return True

    @app.get("/api/sag/{key}/journalarknotes")
    def notes(key: str, request: Request) -> Any:
        if (no := denied(request)) is not None:
            return no
        found = state.find(key)
        return state.notes(found[1]) if found else not_found(f"Sag {key}")

    @app.post("/api/person/search")
    async def person_search(request: Request) -> Any:
        if (no := denied(request)) is not None:
            return no
        cpr = d.cpr_plain((await request.json()).get("CprNummer") or "")
        p = state.person(cpr)
        if p is None:
            return []
        return [{"Id": state.person_id(p.cpr), "Uuid": str(uuid.uuid5(_NS, p.cpr)),
                 "Navn": f"{p.first_name} {p.last_name}", "CprNummer": d.cpr_dashed(p.cpr)}]

    # --- writes (Tyra) -------------------------------------------------------------------

    @app.post("/api/v10/sag/template")
    async def create_from_template(request: Request) -> Any:
        if (no := denied(request)) is not None:
            return no
        body = await request.json()
        primary = body.get("PrimaryPart") or {}
        if primary.get("PartType") != "Person" or not primary.get("PartId"):
            return JSONResponse({"Message": "PrimaryPart mangler"}, status_code=400)
        if body.get("SkabelonId") not in TEMPLATES or not body.get("SagsTitel"):
            return JSONResponse({"Message": "SkabelonId/SagsTitel mangler"}, status_code=400)
        with state.lock:
            person = state.person_by_id(primary["PartId"])
            if person is None:
                return not_found(f"Person {primary['PartId']}")
            parties = [found.cpr for p in body.get("Parts") or []
                       if p.get("PartType") == "Person"
                       and (found := state.person_by_id(p.get("PartId"))) is not None]
            cw = next((w for i, w in enumerate(state.m.caseworkers)
                       if i + 1 == body.get("SagsbehandlerID")), None)
            now = state.now()
            case = Case(case_id=f"SBSYS-T{len(state.created) + 1:06d}", system="sbsys",
                        department="BUF", unit_id=cw.unit_id if cw else "BUF",
                        case_type=TEMPLATES[body["SkabelonId"]], title=body["SagsTitel"],
                        person=person.cpr, opened_at=now, caseworker_id=cw.caseworker_id
                        if cw else None, status_history=[StatusChange("open", now)],
                        updated_at=now)
            n = state.create(case, body["SkabelonId"], parties)
            return state.sag(n, case, faults)

    @app.put("/api/sag/{key}")
    async def put_sag(key: str, request: Request) -> Any:
        if (no := denied(request)) is not None:
            return no
        body = await request.json()
        with state.lock:
            found = state.find(key)
            if not found:
                return not_found(f"Sag {key}")
            n, c = found
            if body.get("SagsTitel"):
                c.title = body["SagsTitel"]
            behandler = body.get("Behandler") or {}
            if behandler.get("Brugernavn"):
                c.caseworker_id = behandler["Brugernavn"]
            if not body.get("PrimaryPart"):
                c.person = ""  # the real endpoint drops the party link without the whole case
            state.touch(c)
            return state.sag(n, c, faults)

    @app.put("/api/sag/{key}/status")
    async def put_status(key: str, request: Request) -> Any:
        if (no := denied(request)) is not None:
            return no
        body = await request.json()
        status = next((s for s in d.STATUS_LIST if s["Id"] == body.get("SagsStatusID")), None)
        if status is None:
            return JSONResponse({"Message": "Ukendt SagsStatusID"}, status_code=400)
        if status["KraeverKommentarer"] and not body.get("Kommentar"):
            return JSONResponse({"Message": "Status kræver kommentar"}, status_code=400)
        with state.lock:
            found = state.find(key)
            if not found:
                return not_found(f"Sag {key}")
            n, c = found
            new = d.NAME_TO_STATUS[status["Navn"]]
            if new != c.status:
                state.touch(c)
                c.status = new
                state.comment[c.case_id] = body.get("Kommentar")
                c.status_history.append(StatusChange(new, c.updated_at))
                if new == "closed":
                    c.closed_at = c.updated_at
            return state.sag(n, c, faults)

    @app.post("/api/journalarknote/create")
    async def create_note(request: Request) -> Any:
        if (no := denied(request)) is not None:
            return no
        body = await request.json()
        with state.lock:
            found = state.find(str(body.get("SagID", "")))
            if not found:
                return not_found(f"Sag {body.get('SagID')}")
            _, c = found
            at = d.parse_local(body["KontaktTidspunkt"]) if body.get("KontaktTidspunkt") \
                else state.now()
            text = re.sub(r"<br\s*/?>", "\n", body.get("Note") or "")
            c.actions.append(CaseAction(f"{c.case_id}-J{len(c.actions) + 1}", "journal_note",
                                        at, body.get("Overskrift") or "", text=text))
            state.touch(c)
            return {"Uuid": str(uuid.uuid5(_NS, c.actions[-1].action_id))}

    return app
