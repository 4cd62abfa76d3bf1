"""/api/v1/cases: a case's history (timeline)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from hub.api.deps import current_user, get_ctx
from hub.api.views import CaseHistory
from hub.domain.access import User

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])


@router.get("/{case_key:path}/history", response_model=CaseHistory)
def case_history(request: Request, case_key: str, user: Annotated[User, Depends(current_user)],
                 purpose: Annotated[str | None, Query()] = None) -> CaseHistory:
    """The timeline of a case (business and recorded time, source, actor, what changed).
    Without the right to its content only the case's existence and owner are returned."""
    return get_ctx(request).service.case_history(user, case_key, purpose)
