"""/api/v1/projections: the read models' positions and lag (admins operate the hub)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from hub.api.deps import current_user, get_ctx
from hub.api.errors import forbidden
from hub.domain.access import User

router = APIRouter(prefix="/api/v1", tags=["operations"])


@dataclass(frozen=True, slots=True)
class ProjectionState:
    name: str
    version: int
    stored_version: int | None
    position: int
    head: int
    lag: int
    needs_rebuild: bool
    updated_at: datetime | None


@router.get("/projections", response_model=list[ProjectionState])
def projections(request: Request, user: Annotated[User, Depends(current_user)]
                ) -> list[ProjectionState]:
    """Each projection's tracked position against the store's head (admin only)."""
    ctx = get_ctx(request)
    if not ctx.service.capable(user, "operate"):
        raise forbidden("only admins see the projections' state",
                        "Kun drift (admin) kan se projektionernes tilstand.")
    return [ProjectionState(s.name, s.version, s.stored_version, s.position, s.head, s.lag,
                            s.needs_rebuild, s.updated_at)
            for s in ctx.service.runner.status()]
