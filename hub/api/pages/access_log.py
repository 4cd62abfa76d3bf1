"""Dashboard page: Adgangslog (auditors): views of a person or by a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from hub.api.deps import current_user, get_ctx
from hub.api.errors import ApiError
from hub.api.pages.render import page
from hub.domain.access import User

router = APIRouter(include_in_schema=False)
NAV = [("Adgangslog", "/adgangslog", "access_log")]


@router.get("/adgangslog", response_class=HTMLResponse)
def access_log_page(request: Request, user: Annotated[User, Depends(current_user)],
                    borger: str = "", bruger: str = "", q: str = "") -> Response:
    service = get_ctx(request).service
    if not service.capable(user, "access_log"):
        raise ApiError(403, "forbidden", "only auditors read the access log",
                       "Kun revisorer (auditor) kan se adgangsloggen.")
    entries, hits, error = None, [], None
    try:
        if q.strip():
            hits = service.search(user, q)
        if borger or bruger:
            entries = service.access_log(user, person_key=borger or None,
                                         user_id=bruger or None)
    except ApiError as exc:
        if exc.status != 400:
            raise
        error = exc.message_da
    return page(request, "access_log.html", user, entries=entries, hits=hits, q=q,
                borger=borger, bruger=bruger, error=error)
