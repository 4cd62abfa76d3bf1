"""Dashboard pages (Danish) for target groups, the overlap run, write-back approval and
management information. Read models: ``projections.target_groups`` and ``projections.management``
(kept up to date by the projection runner); rules from ``[components.targets] rules``.

Lists show citizens by pseudonym with the explanation of each match; opening a citizen goes
through the citizen page, which logs the access. "Hvorfor er borgeren på listen" shows one
person's matches and is itself logged as an access.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from hub.api.deps import check_csrf, csrf_token, current_user, get_ctx
from hub.api.errors import ApiError, forbidden
from hub.domain.access import User
from hub.sql import create_all
from hub.targets import queries, writeback
from hub.targets.cadence import load_cadences
from hub.targets.loader import RuleFileError, load_rules
from hub.targets.mi import REPORTS, Filter

router = APIRouter(include_in_schema=False)
NAV = [("Målgrupper", "/maalgrupper", "person"),
       ("Ledelsesinformation", "/ledelsesinformation", "person")]
TEMPLATES = Path(__file__).resolve().parents[2] / "targets" / "templates"
MI_TITLES = {
    "pathway-summary": "Sammenhængende forløb pr. forankring", "pathways": "Forløb",
    "tovholdere": "Forløb pr. tovholder", "caseload": "Sagstal pr. sagsbehandler og team",
    "cases-by-paragraph": "Sager pr. paragraf og enhed",
    "grants-by-paragraph": "Bevillinger pr. paragraf og enhed",
    "decision-time": "Tid fra ansøgning til afgørelse",
    "followup-compliance": "Opfølgning i forhold til kadence",
}


def _parts(request: Request) -> dict[str, Any]:
    """Projections and the write-back record (their tables created) and templates, built once
    per app. The rule file is read per request, so an edited file shows without a restart (as
    the nightly run reads it)."""
    state = request.app.state
    if not hasattr(state, "targets"):
        from projections.management import ManagementProjection
        from projections.target_groups import TargetGroupsProjection
        ctx = get_ctx(request)
        key_of = ctx.hub.store.person_key
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(TEMPLATES)),
                                      ctx.templates.env.loader])
        env = jinja2.Environment(loader=loader, autoescape=True)
        env.globals.update(ctx.templates.env.globals)
        tg, mi = TargetGroupsProjection(key_of), ManagementProjection(key_of)
        # the pages read these tables before the projections may have run
        engine = ctx.service.engine
        create_all(engine, tg.metadata)
        create_all(engine, mi.metadata)
        writeback.create_tables(engine)
        state.targets = {"tg": tg, "mi": mi, "templates": Jinja2Templates(env=env)}
    return state.targets


def _rules(request: Request):  # noqa: ANN202
    name = get_ctx(request).hub.settings.component("targets", "rules", "odense")
    try:
        return load_rules(name)
    except RuleFileError as exc:
        raise ApiError(500, "rules", str(exc), "Målgruppereglerne kan ikke indlæses.") from None


def _page(request: Request, template: str, user: User, **context: Any) -> HTMLResponse:
    return _parts(request)["templates"].TemplateResponse(
        request, template, {"user": user, "csrf": csrf_token(request), **context})


def _require(request: Request, user: User, capability: str) -> None:
    if not get_ctx(request).service.capable(user, capability):
        raise forbidden(f"needs {capability}", "Du har ikke adgang til denne side.")


def _conn(request: Request):  # noqa: ANN202
    return get_ctx(request).service.engine.connect()


@router.get("/maalgrupper", response_class=HTMLResponse)
def target_groups(request: Request, user: Annotated[User, Depends(current_user)],
                  regel: str = "", enhed: str = "") -> Response:
    _require(request, user, "person")
    rules = _rules(request)
    tg = _parts(request)["tg"]
    rule = next((r for r in rules.rules if r.rule_id == regel), rules.rules[0]
                if rules.rules else None)
    with _conn(request) as conn:
        units = sorted({u for r_id, u, _ in queries.counts_by_rule_and_unit(conn, tg)
                        if rule and r_id == rule.rule_id})
        rows = queries.match_list(conn, tg, rule.rule_id, enhed or None, 200) if rule else []
        planned = writeback.pending(conn, "planned")
        handled = writeback.handled(conn)
        overlaps = conn.execute(tg.overlaps.select().where(tg.overlaps.c.open == True)  # noqa: E712
                                .order_by(tg.overlaps.c.detected_at).limit(200)).all()
    # each citizen listed is a view (pseudonym and why: a person in a target group), recorded
    # as search hits are, before the page is answered
    from hub.api.service import Access
    get_ctx(request).service.record(user, "målgruppe-afklaring", [
        Access(m.subject, None, "target-group-list", "summary") for m in rows])
    return _page(request, "target_groups.html", user, rules=rules, rule=rule, rows=rows,
                 units=units, unit=enhed, planned=planned, handled=handled,
                 overlaps=overlaps,
                 may_approve=user.has("leader"))


@router.get("/maalgrupper/forklaring/{person_key}", response_class=HTMLResponse)
def why(request: Request, person_key: str, user: Annotated[User, Depends(current_user)]
        ) -> Response:
    """Hvorfor er borgeren på listen: every open match of one person, with its evidence."""
    _require(request, user, "person")
    from hub.api.service import Access
    ctx = get_ctx(request)
    ctx.service.record(user, "målgruppe-afklaring",
                       [Access(person_key, None, "target-groups", "summary")])
    with _conn(request) as conn:
        rows = queries.person_matches(conn, _parts(request)["tg"], person_key)
    return _page(request, "target_why.html", user, person_key=person_key, rows=rows)


@router.post("/maalgrupper/godkend")
def approve(request: Request, user: Annotated[User, Depends(current_user)],
            kommando: Annotated[list[str], Form()], csrf: Annotated[str, Form()] = ""
            ) -> Response:
    """A leader approves planned write-back commands (markings, pathway cases)."""
    check_csrf(request, csrf)
    if not user.has("leader"):
        raise forbidden("only leaders approve write-back",
                        "Kun ledere kan godkende tilbageskrivning.")
    _parts(request)  # the write-back tables exist (created once per app)
    with get_ctx(request).service.engine.begin() as conn:
        writeback.approve(conn, kommando, user.user_id, datetime.now(UTC))
    return RedirectResponse("/maalgrupper", status_code=303)


@router.get("/ledelsesinformation", response_class=HTMLResponse)
def management(request: Request, user: Annotated[User, Depends(current_user)],
               fra: str = "", til: str = "", enhed: str = "") -> Response:
    _require(request, user, "person")
    today = get_ctx(request).today()
    try:
        f = Filter(date.fromisoformat(fra) if fra else today.replace(month=1, day=1),
                   date.fromisoformat(til) if til else today, enhed or None, load_cadences())
    except ValueError:
        raise ApiError(400, "bad-date", "from/to are not dates",
                       "Datoer skrives ÅÅÅÅ-MM-DD.") from None
    mi = _parts(request)["mi"]
    with _conn(request) as conn:
        tables = [(MI_TITLES[name], REPORTS[name](conn, mi, f)) for name in MI_TITLES]
    return _page(request, "management.html", user, tables=tables, f=f, unit=enhed)
