"""`GET /v1/search`: a product search over the catalog, ordered for the shopper.

Read key (the browser's): the answer holds only catalog items, ordered with the session's
own state, as `GET /v1/recommendations` does. The catalog's full-text index (SQLite FTS5,
BM25 over titles, categories, brands and attribute values) finds the matches; they go to the
`search` placement as its candidates, whose `personal` ranker fuses their text order with the
session model's order of them, after the placement's exclusions (bought, out of stock, ...).
The list is recorded like any other, so a click that carries its `recommendation_id` back
is attributed to the search.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from nextbest.events.schema import MAX_ID_LENGTH, MAX_QUERY_LENGTH
from nextbest.keywords.search import match_expression
from nextbest.recommend.context import Query as RecommendQuery
from nextbest.serving.deps import ReadOrBrowserAccess, acting_user, check_sessions
from nextbest.serving.errors import ApiError
from nextbest.serving.routes.recommendations import (
    CountParam,
    IdParam,
    answer,
    keep_served,
    new_recommendation_id,
)
from nextbest.serving.schemas import RecommendationsOut

router = APIRouter(prefix="/v1", tags=["search"])

SEARCH_PLACEMENT = "search"
MATCHES = 200  # full-text matches handed to the placement to order


@router.get("/search", response_model=RecommendationsOut)
async def get_search(
    services: ReadOrBrowserAccess,
    request: Request,
    q: Annotated[
        str,
        Query(min_length=1, max_length=MAX_QUERY_LENGTH, description="what the shopper typed"),
    ],
    session_id: IdParam = None,
    user_id: IdParam = None,
    item_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_ID_LENGTH,
            description="the product on screen when the search began (a keyword card's): it "
            "counts as the session's latest item, and is not among the results",
        ),
    ] = None,
    n: CountParam = 10,
) -> RecommendationsOut:
    """The `n` catalog items that best match `q` for this session. Full-text operators in
    `q` are plain words; a `q` without a letter or digit is a 422.

    Takes a read key, or a browser key (a `user_id` then needs the user's X-User-Token)."""
    user_id = acting_user(request, user_id)
    if match_expression(q) is None:
        raise ApiError(422, "invalid query", "q", "the query holds no word (letters or digits)")
    matches = [item for item, _ in services.catalog.search(q, MATCHES)]
    if SEARCH_PLACEMENT not in services.recommender.placements:
        raise ApiError(
            422, "unknown placement", "placement",
            f"the placements file has no {SEARCH_PLACEMENT!r} placement to order the matches",
        )  # fmt: skip
    if not matches:  # nothing to order: an empty list, recorded all the same (a failed search)
        model, recommendation_id = services.model, new_recommendation_id()
        # (with matches, `answer` refuses an unknown item_id itself)
        if item_id is not None and services.catalog.unknown([item_id], model):
            raise ApiError(422, "unknown item", "item_id", f"unknown item {item_id!r}")
        if session_id is not None and request.state.caller.browser:
            check_sessions(
                request.state.caller, {session_id: services.live.session(model, session_id).user_id}
            )
        keep_served(
            services, recommendation_id, model, [], session_id, user_id, SEARCH_PLACEMENT, item_id
        )
        return RecommendationsOut(
            recommendation_id=recommendation_id,
            model_version=model.version if model else None,
            placement=SEARCH_PLACEMENT,
            items=[],
        )
    query = RecommendQuery(
        n=n,
        placement=SEARCH_PLACEMENT,
        session_id=session_id,
        user_id=user_id,
        item_id=item_id,
        candidates=tuple(matches),
        from_browser=request.state.caller.browser,
    )
    return answer(services, query)
