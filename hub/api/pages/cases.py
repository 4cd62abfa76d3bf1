"""Dashboard page: Sagsforløb (a case's history)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from hub.api.deps import current_user, get_ctx
from hub.api.pages.render import page
from hub.domain.access import User

router = APIRouter(include_in_schema=False)


@router.get("/sag/{case_key:path}/forloeb", response_class=HTMLResponse)
def case_page(request: Request, case_key: str, user: Annotated[User, Depends(current_user)],
              formaal: str | None = None) -> Response:
    h = get_ctx(request).service.case_history(user, case_key, formaal)
    return page(request, "case_history.html", user, h=h, purpose=h.purpose)
