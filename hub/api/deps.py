"""Request dependencies shared by every router: the app context, the user, CSRF."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from fastapi import Request

from hub.api.errors import ApiError, not_authenticated
from hub.api.users import user_from_session
from hub.domain.access import User

if TYPE_CHECKING:
    from hub.api.context import ApiContext


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def current_user(request: Request) -> User:
    data = request.session.get("user")
    if not data:
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
