"""/api/v1/access-log: who looked at whom (auditors only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from hub.api.deps import current_user, get_ctx
from hub.api.views import AccessEntry
from hub.domain.access import User

router = APIRouter(prefix="/api/v1/access-log", tags=["access log"])


@router.get("", response_model=list[AccessEntry])
def access_log(request: Request, user: Annotated[User, Depends(current_user)],
               person: Annotated[str | None, Query(description="person key")] = None,
               user_id: Annotated[str | None, Query(alias="user")] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AccessEntry]:
    """Views of one person (``person``) or by one user (``user``), newest first."""
    return get_ctx(request).service.access_log(user, person_key=person, user_id=user_id,
                                               limit=limit)
