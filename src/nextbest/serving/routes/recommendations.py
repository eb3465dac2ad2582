"""`GET /v1/recommendations`: the next-best items for a session, now.

The route is `async def`: its work is short and mostly CPU (one state read, one scoring of
every item, well under a millisecond), and running it on the event loop saves the switch to
a worker thread that a plain `def` costs. A state rebuild from the log (once per session
after a restart or a model switch) blocks the loop for one indexed query.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Query

from nextbest.events.schema import MAX_ID_LENGTH
from nextbest.serving import metrics
from nextbest.serving.deps import ReadAccess
from nextbest.serving.errors import ApiError
from nextbest.serving.recommend import Recommended
from nextbest.serving.schemas import MAX_N, RecommendationsOut, RecommendedItem

router = APIRouter(prefix="/v1", tags=["recommendations"])

IdParam = Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH)]
CountParam = Annotated[int, Query(ge=1, le=MAX_N, description="how many items")]


def reply_items(items: list[Recommended]) -> list[RecommendedItem]:
    for source, count in Counter(item.source for item in items).items():
        metrics.RECOMMENDED.labels(source).inc(count)
    return [RecommendedItem(item_id=i.item_id, score=i.score, source=i.source) for i in items]


def new_recommendation_id() -> str:
    return uuid.uuid4().hex


@router.get("/recommendations", response_model=RecommendationsOut)
async def get_recommendations(
    services: ReadAccess,
    session_id: IdParam = None,
    user_id: IdParam = None,
    placement: IdParam = None,
    item_id: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_ID_LENGTH, description="the item on screen, if any"),
    ] = None,
    n: CountParam = 10,
) -> RecommendationsOut:
    """The `n` next-best items for the session as it is now, leaving out items it (or the
    user) bought, and the item on screen. A session without events gets popular items."""
    model = services.model
    if item_id is not None and services.catalog.unknown([item_id], model):
        raise ApiError(422, "unknown item", "item_id", f"unknown item {item_id!r}")
    items = services.recommender.recommend(model, n, session_id, user_id, item_id)
    return RecommendationsOut(
        recommendation_id=new_recommendation_id(),
        model_version=model.version if model else None,
        items=reply_items(items),
    )
