"""Dashboard pages: search, Borgeroverblik (citizen overview), Husstand, Samtykke."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hub.api.deps import check_csrf, current_user, get_ctx
from hub.api.errors import ApiError
from hub.api.pages.render import page
from hub.domain.access import User

router = APIRouter(include_in_schema=False)
NAV = [("Søg borger", "/", None)]


@router.get("/", response_class=HTMLResponse)
def search_page(request: Request, user: Annotated[User, Depends(current_user)],
                q: str = "", formaal: str | None = None) -> Response:
    ctx = get_ctx(request)
    hits, error = [], None
    if q.strip():
        try:
            hits = ctx.service.search(user, q, formaal)
        except ApiError as exc:
            if exc.status != 400:
                raise
            error = exc.message_da
    return page(request, "search.html", user, q=q, hits=hits, error=error,
                purpose=ctx.config.policy.purpose(formaal).purpose_id)


@router.get("/borger/{person_key}", response_class=HTMLResponse)
def citizen_page(request: Request, person_key: str, user: Annotated[User, Depends(current_user)],
                 formaal: str | None = None) -> Response:
    ctx = get_ctx(request)
    o = ctx.service.overview(user, person_key, formaal)
    return page(request, "citizen.html", user, o=o, purpose=o.purpose,
                may_consent=ctx.service.capable(user, "consent"), today=ctx.today())


@router.get("/borger/{person_key}/husstand", response_class=HTMLResponse)
def household_page(request: Request, person_key: str,
                   user: Annotated[User, Depends(current_user)],
                   formaal: str | None = None) -> Response:
    h = get_ctx(request).service.household(user, person_key, formaal)
    return page(request, "household.html", user, h=h, purpose=h.purpose)


def _back(person_key: str, purpose: str) -> RedirectResponse:
    return RedirectResponse(f"/borger/{quote(person_key)}?formaal={quote(purpose)}",
                            status_code=303)


@router.post("/borger/{person_key}/samtykke")
def give_consent(request: Request, person_key: str, user: Annotated[User, Depends(current_user)],
                 formaal: Annotated[str, Form()], csrf: Annotated[str, Form()] = "",
                 enheder: Annotated[str, Form()] = "",
                 gyldig_til: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf)
    try:
        until = date.fromisoformat(gyldig_til) if gyldig_til.strip() else None
    except ValueError:
        raise ApiError(400, "bad-date", "valid_until is not a date",
                       "Datoen skal skrives ÅÅÅÅ-MM-DD.") from None
    units = [u for u in enheder.replace(",", " ").split() if u]
    get_ctx(request).service.give_consent(user, person_key, formaal, units, None, until)
    return _back(person_key, formaal)


@router.post("/borger/{person_key}/samtykke/{consent_id}/tilbagekald")
def withdraw_consent(request: Request, person_key: str, consent_id: str,
                     user: Annotated[User, Depends(current_user)],
                     formaal: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "",
                     begrundelse: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf)
    ctx = get_ctx(request)
    ctx.service.withdraw_consent(user, person_key, consent_id, begrundelse.strip() or None)
    return _back(person_key, ctx.config.policy.purpose(formaal or None).purpose_id)
