"""Request dependencies shared by every router: the app context, the user, CSRF."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from fastapi import Request

from hub.api.errors import ApiError, not_authenticated
from hub.api.oidc import OidcError
from hub.api.users import user_from_session
from hub.domain.access import User
from hub.logging import get_logger

if TYPE_CHECKING:
    from hub.api.context import ApiContext


log = get_logger("glasplade.api.auth")


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def current_user(request: Request) -> User:
    data = request.session.get("user")
    if not data:
        bearer = _bearer(request)
        if bearer is not None:
            return _user_of_bearer(request, bearer)
        raise not_authenticated()
    try:
        user = user_from_session(data)
    except (KeyError, ValueError, TypeError):
        request.session.clear()
        raise not_authenticated() from None
    ctx = get_ctx(request)
    if ctx.config.auth == "dev":  # the directory is the truth: a removed user is logged out
        known = ctx.config.users.get(user.user_id)
        if known is None:
            request.session.clear()
            raise not_authenticated()
        user = known
    return user


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, token: str | None) -> None:
    expected = request.session.get("csrf")
    if not expected or not token or not secrets.compare_digest(expected, token):
        raise ApiError(403, "csrf", "the form is stale or forged (CSRF token mismatch)",
                       "Formularen er udløbet. Gå tilbage, genindlæs siden og prøv igen.")


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _user_of_bearer(request: Request, token: str) -> User:
    """The user of an ``Authorization: Bearer`` access token (OIDC deployments only)."""
    ctx = get_ctx(request)
    if ctx.config.auth != "oidc" or ctx.oidc is None:
        raise ApiError(401, "bearer-not-accepted", "bearer tokens need API_AUTH=oidc",
                       "Du skal logge ind.")
    try:
        return ctx.oidc.user_from_claims(ctx.oidc.verify_access_token(token), ctx.config.users)
    except OidcError as exc:
        log.info("bearer token refused", reason=str(exc)[:200])
        raise ApiError(401, "bad-token", str(exc), "Adgangsbilletten blev afvist.") from None
