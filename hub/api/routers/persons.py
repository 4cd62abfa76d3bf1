"""/api/v1/persons: search, the citizen overview, the household."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from hub.api.deps import current_user, get_ctx
from hub.api.views import Household, Overview
from hub.domain.access import User
from projections.queries import PersonSummary

router = APIRouter(prefix="/api/v1/persons", tags=["persons"])
Purpose = Annotated[str | None, Query(description="Why you look (see the access policy); "
                                                  "recorded with the view")]


@router.get("", response_model=list[PersonSummary])
def search(request: Request, user: Annotated[User, Depends(current_user)],
           q: Annotated[str, Query(min_length=1, description="CPR (DDMMYY-XXXX) or name prefix")],
           purpose: Purpose = None,
           limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[PersonSummary]:
    """Find persons by CPR number or by the start of their name. Each hit is recorded."""
    return get_ctx(request).service.search(user, q, purpose, limit)


@router.get("/{person_key}/overview", response_model=Overview)
def overview(request: Request, person_key: str, user: Annotated[User, Depends(current_user)],
             purpose: Purpose = None) -> Overview:
    """The glasplade for one person, filtered by the access policy; the view is recorded."""
    return get_ctx(request).service.overview(user, person_key, purpose)


@router.get("/{person_key}/household", response_model=Household)
def household(request: Request, person_key: str, user: Annotated[User, Depends(current_user)],
              purpose: Purpose = None) -> Household:
    """The family: the person, adults and children at the address or related, each filtered;
    every member shown is recorded."""
    return get_ctx(request).service.household(user, person_key, purpose)
