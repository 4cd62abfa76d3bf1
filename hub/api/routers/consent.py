"""/api/v1/persons/{key}/consents: record a citizen's consent given or withdrawn (events)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from hub.api.deps import current_user, get_ctx
from hub.api.views import ConsentView
from hub.domain.access import User

router = APIRouter(prefix="/api/v1/persons", tags=["consent"])


class ConsentRequest(BaseModel):
    purpose: str = Field(description="A purpose id from the access policy")
    unit_ids: list[str] = Field(default_factory=list,
                                description="Units the consent covers (default: yours)")
    valid_from: date | None = None
    valid_until: date | None = None


class WithdrawRequest(BaseModel):
    reason: str | None = None


@router.post("/{person_key}/consents", response_model=ConsentView, status_code=201)
def give(request: Request, person_key: str, body: ConsentRequest,
         user: Annotated[User, Depends(current_user)]) -> ConsentView:
    """Writes ConsentGiven to the event store; decisions use it from the next request on."""
    return get_ctx(request).service.give_consent(user, person_key, body.purpose, body.unit_ids,
                                                 body.valid_from, body.valid_until)


@router.post("/{person_key}/consents/{consent_id}/withdraw", status_code=204)
def withdraw(request: Request, person_key: str, consent_id: str,
             user: Annotated[User, Depends(current_user)],
             body: WithdrawRequest | None = None) -> Response:
    """Writes ConsentWithdrawn; the consent stops counting at once."""
    get_ctx(request).service.withdraw_consent(user, person_key, consent_id,
                                              body.reason if body else None)
    return Response(status_code=204)
