"""`GET /v1/users/{user_id}/affinity` and `GET /v1/sessions/{session_id}/affinity`.

A profile is what the rankers and a shop's own pages use to personalise. It says which brands,
categories and price bands a user leans to and how much discounts sway them: a read key (the
shop's server) reads any user's and session's; a browser key only its token's user's
(X-User-Token) and sessions that are anonymous or that user's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from nextbest.events.schema import MAX_ID_LENGTH
from nextbest.recommend.affinity import Affinity, describe
from nextbest.recommend.affinity import decode as decode_affinity
from nextbest.serving.deps import ReadOrBrowserAccess, acting_user, check_sessions
from nextbest.serving.schemas import AffinityOut
from nextbest.serving.services import Services

router = APIRouter(prefix="/v1", tags=["affinity"])

IdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]
TopParam = Annotated[int, Query(ge=1, le=8, description="values per attribute")]


@router.get("/users/{user_id}/affinity", response_model=AffinityOut)
def user_affinity(
    user_id: IdPath, services: ReadOrBrowserAccess, request: Request, n: TopParam = 5
) -> AffinityOut:
    """The user's affinity profile over their sessions (a six-hour half-life, so the latest
    visits weigh most): the top `n` values per attribute with a score in [0, 1], and the
    discount sensitivity (0.5: neutral). An unknown user gets an empty profile."""
    acting_user(request, user_id)
    profile = services.live.user_affinity(user_id) or Affinity()
    return _answer(services, profile, n, user_id=user_id)


@router.get("/sessions/{session_id}/affinity", response_model=AffinityOut)
def session_affinity(
    session_id: IdPath, services: ReadOrBrowserAccess, request: Request, n: TopParam = 5
) -> AffinityOut:
    """The session's affinity profile (a 10-minute half-life: what it is after now)."""
    record = services.live.session(services.model, session_id)  # its owner, and its profile
    check_sessions(request.state.caller, {session_id: record.user_id})
    return _answer(services, decode_affinity(record.affinity), n, session_id=session_id)


def _answer(
    services: Services,
    profile: Affinity,
    n: int,
    user_id: str | None = None,
    session_id: str | None = None,
) -> AffinityOut:
    base = services.catalog.facets().discount_base
    return AffinityOut(
        user_id=user_id,
        session_id=session_id,
        events=profile.events,
        affinity=describe(profile, base, n),  # type: ignore[arg-type]
    )
