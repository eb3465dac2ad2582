"""`GET /v1/placements` and `POST /v1/placements/reload` (admin key): which placements the
server answers, and reading the placements file again without a restart."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel

from nextbest.recommend.placements import PlacementsError
from nextbest.serving.deps import AdminAccess
from nextbest.serving.errors import ApiError

router = APIRouter(prefix="/v1", tags=["placements"])


class PlacementsOut(BaseModel):
    source: str
    placements: list[str]


@router.get("/placements", response_model=PlacementsOut)
async def get_placements(services: AdminAccess) -> PlacementsOut:
    """The placements in use and the file they came from."""
    placements = services.recommender.placements
    return PlacementsOut(source=placements.source, placements=placements.names)


@router.post(
    "/placements/reload",
    response_model=PlacementsOut,
    responses={422: {"description": "the placements file is invalid"}},
)
async def reload_placements(services: AdminAccess) -> PlacementsOut:
    """Read the placements file again. A bad file is a 422 naming the key at fault, and the
    placements in use stay. Each worker process reloads on its own call."""
    try:
        placements = await asyncio.to_thread(services.reload_placements)
    except PlacementsError as exc:
        raise ApiError(422, "invalid placements file", "placements", str(exc)) from None
    return PlacementsOut(source=placements.source, placements=placements.names)
