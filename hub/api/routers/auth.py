"""Login and logout: the development login (pick a configured user) or OIDC."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from hub.api.deps import check_csrf, csrf_token, current_user, get_ctx
from hub.api.errors import ApiError
from hub.api.oidc import OidcError, pkce_pair
from hub.api.users import user_to_session
from hub.domain.access import User
from hub.logging import get_logger

router = APIRouter(tags=["auth"])
log = get_logger("glasplade.api.auth")


def _login(request: Request, user: User) -> None:
    request.session.clear()  # a new session on login (no fixation)
    request.session["user"] = user_to_session(user)
    request.session["csrf"] = secrets.token_urlsafe(24)
    log.info("login", user=user.user_id, roles=sorted(user.roles))


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request) -> Response:
    ctx = get_ctx(request)
    if ctx.config.auth == "oidc":
        assert ctx.oidc is not None
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        request.session["oidc"] = {"state": state, "nonce": nonce, "verifier": verifier}
        try:
            url = ctx.oidc.authorization_url(state, nonce, challenge)
        except OidcError as exc:
            log.error("oidc discovery failed", error=str(exc))
            raise ApiError(503, "oidc-unavailable", str(exc),
                           "Login-tjenesten svarer ikke. Prøv igen om lidt.") from None
        return RedirectResponse(url, status_code=303)
    return ctx.templates.TemplateResponse(request, "login.html", {
        "users": ctx.config.users.users, "csrf": csrf_token(request)})


@router.post("/login", include_in_schema=False)
def login_submit(request: Request, user_id: Annotated[str, Form()],
                 csrf: Annotated[str, Form()] = "") -> Response:
    ctx = get_ctx(request)
    if ctx.config.auth != "dev":
        raise ApiError(404, "not-found", "the development login is off", "Siden findes ikke.")
    check_csrf(request, csrf)
    user = ctx.config.users.get(user_id)
    if user is None:
        raise ApiError(403, "unknown-user", "no such user", "Brugeren findes ikke.")
    _login(request, user)
    return RedirectResponse("/", status_code=303)


@router.get("/auth/callback", include_in_schema=False)
def oidc_callback(request: Request, code: str | None = None, state: str | None = None,
                  error: str | None = None) -> Response:
    ctx = get_ctx(request)
    if ctx.config.auth != "oidc" or ctx.oidc is None:
        raise ApiError(404, "not-found", "OIDC login is off", "Siden findes ikke.")
    pending = request.session.pop("oidc", None)
    if error:
        raise ApiError(401, "oidc-error", f"the identity provider refused: {error}",
                       "Login blev afvist af login-tjenesten.")
    if not pending or not code or not state or not secrets.compare_digest(pending["state"],
                                                                          state):
        raise ApiError(400, "oidc-state", "login state missing or wrong; start again",
                       "Login-forløbet er udløbet. Prøv at logge ind igen.")
    try:
        tokens = ctx.oidc.exchange(code, pending["verifier"])
        claims = ctx.oidc.verify_id_token(tokens["id_token"], pending["nonce"])
        user = ctx.oidc.user_from_claims(claims, ctx.config.users)
    except OidcError as exc:
        log.warning("oidc login rejected", error=str(exc))
        raise ApiError(403, "oidc-rejected", str(exc),
                       "Du har ikke adgang til Glasplade.") from None
    _login(request, user)
    request.session["id_token"] = tokens["id_token"]  # the hint for the provider's logout
    return RedirectResponse("/", status_code=303)


@router.post("/logout", include_in_schema=False)
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    """End the session here and, after an OIDC login, at the provider too (else the next
    /login would log the same person straight in again)."""
    check_csrf(request, csrf)
    id_token = request.session.get("id_token")
    request.session.clear()
    ctx = get_ctx(request)
    if id_token and ctx.config.auth == "oidc" and ctx.oidc is not None:
        try:
            url = ctx.oidc.end_session_url(id_token)
        except OidcError as exc:  # logged out here; the provider's session stays
            log.warning("oidc end-session unavailable", error=str(exc))
            url = None
        if url:
            return RedirectResponse(url, status_code=303)
    return RedirectResponse("/login", status_code=303)


# --- the same for API clients (JSON) ------------------------------------------------------


class SessionRequest(BaseModel):
    user_id: str


class SessionUser(BaseModel):
    user_id: str
    name: str
    roles: list[str]
    units: list[str]


def _out(user: User) -> SessionUser:
    return SessionUser(user_id=user.user_id, name=user.name, roles=sorted(user.roles),
                       units=sorted(user.units))


@router.post("/api/v1/session", response_model=SessionUser, tags=["auth"])
def api_login(request: Request, body: SessionRequest) -> SessionUser:
    """Development login for API clients: sets the signed session cookie (dev auth only)."""
    ctx = get_ctx(request)
    if ctx.config.auth != "dev":
        raise ApiError(404, "not-found", "the development login is off; use OIDC")
    user = ctx.config.users.get(body.user_id)
    if user is None:
        raise ApiError(403, "unknown-user", f"no user {body.user_id!r} in the directory")
    _login(request, user)
    return _out(user)


@router.get("/api/v1/session", response_model=SessionUser, tags=["auth"])
def api_whoami(user: Annotated[User, Depends(current_user)]) -> SessionUser:
    """The logged-in user with roles and units."""
    return _out(user)
