"""Rendering a dashboard page: the template plus what every page needs (user, CSRF token)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from hub.api.deps import csrf_token, get_ctx
from hub.domain.access import User

STATUS_DA = {"open": "åben", "active": "aktiv", "closed": "lukket", "passive": "passiv",
             "passivated": "passiv", "reopened": "genåbnet", "given": "givet",
             "withdrawn": "trukket tilbage", "expired": "udløbet", "pending": "ikke trådt i kraft"}
RELATION_DA = {"parent": "forælder", "child": "barn", "spouse": "ægtefælle",
               "co_resident": "samboende", "custody_holder": "forældremyndighedsindehaver",
               "in_custody": "under forældremyndighed", None: "bor på adressen"}
CIVIL_DA = {"U": "ugift", "G": "gift", "F": "fraskilt", "E": "enke/enkemand",
            "P": "registreret partnerskab", "L": "længstlevende partner", "D": "død"}


def page(request: Request, template: str, user: User | None, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    ctx = get_ctx(request)
    return ctx.templates.TemplateResponse(request, template, {
        "user": user, "csrf": csrf_token(request), "status_da": STATUS_DA,
        "relation_da": RELATION_DA, "civil_da": CIVIL_DA,
        "purposes": ctx.config.policy.purposes, **context}, status_code=status_code)
