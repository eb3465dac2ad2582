"""`DELETE /v1/users/{user_id}`: erase a person (admin key only).

Everything the server holds under the user id goes, at once and for good: see
`nextbest.serving.erasure` for what that is and what it cannot reach. The reply counts what
was deleted; erasing an unknown or already erased user deletes nothing and is not an error,
so a retried request is safe.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from nextbest.events.schema import MAX_ID_LENGTH
from nextbest.serving.deps import AdminAccess
from nextbest.serving.erasure import erase_user

router = APIRouter(prefix="/v1", tags=["privacy"])


class ErasedOut(BaseModel):
    user_id: str
    sessions: int = Field(description="sessions of the user whose events and states went")
    events: int
    links: int = Field(description="session-to-user links")
    served_lists: int = Field(description="answered lists kept for attribution")


@router.delete("/users/{user_id}", response_model=ErasedOut)
async def delete_user(
    user_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)], services: AdminAccess
) -> ErasedOut:
    """Erase the user: their events (their sessions' whole, before the login too), links,
    answered lists, live states and affinity profile. Idempotent. Takes the admin key."""
    erased = await asyncio.to_thread(erase_user, services, user_id)
    return ErasedOut(
        user_id=user_id,
        sessions=len(erased.sessions),
        events=erased.events,
        links=erased.links,
        served_lists=erased.served,
    )
