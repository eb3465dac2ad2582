"""`GET /v1/keywords`: the keyword card for a shopper, or why there is none.

Read key (the browser's): the answer holds keywords other shoppers searched and a title,
derived from the session's own events and the product on screen; nothing of another
shopper. The version's query graph (learned by `nextbest train` from the search log) finds
the keywords from the session's latest item events, the user's purchases and the product on
screen (`keywords/card.py`), as the placements file's `[keywords]` table sets, with its
campaigns first while they run. The card is recorded like a recommendation list (placement
`keywords`, its keywords in place of items), so a `keyword-click` event that carries its
`recommendation_id` and `query` back is attributed to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from nextbest.events.schema import ITEMLESS_EVENT_TYPES
from nextbest.keywords.card import keyword_card
from nextbest.keywords.graph import normalise_text
from nextbest.keywords.recall import Keyword
from nextbest.serving.deps import ReadOrBrowserAccess, acting_user, check_sessions
from nextbest.serving.errors import ApiError
from nextbest.serving.recommend import Recommended
from nextbest.serving.registry import LoadedModel
from nextbest.serving.routes.recommendations import IdParam, keep_served, new_recommendation_id
from nextbest.serving.services import Services

router = APIRouter(prefix="/v1", tags=["keywords"])

PLACEMENT = "keywords"
RECALL_ORDER = "recall"
MAX_KEYWORDS = 10


class KeywordOut(BaseModel):
    query: str = Field(description="the keyword: run it as a search when clicked")
    score: float
    path: str = Field(
        description="the meta-path that found it most: i2q (via an item), c2q (via a "
        "category), scene (via a scenario), or campaign (pushed by the placements file)"
    )
    paths: dict[str, float] = Field(description="each path that found it, with its score")


class KeywordsOut(BaseModel):
    show: bool = Field(description="whether the card is worth showing now")
    reason: str = Field(description="why it is shown, or why not")
    title: str
    keywords: list[KeywordOut]
    recommendation_id: str = Field(description="send it back with a keyword-click event")
    ranker: str = Field(
        description="what ordered the keywords: the version's learned keyword ranker (ftrl or "
        "attention-gru), or recall (the meta-paths' score) without one"
    )
    model_version: str | None


@router.get("/keywords", response_model=KeywordsOut)
async def get_keywords(
    services: ReadOrBrowserAccess,
    request: Request,
    session_id: IdParam = None,
    user_id: IdParam = None,
    item_id: IdParam = None,
    n: Annotated[int, Query(ge=1, le=MAX_KEYWORDS, description="keywords on the card")] = 4,
    page: Annotated[
        Literal["product", "home", "cart", "search", "other"] | None,
        Query(
            description="the page the card would show on (default: product with an item_id, "
            "else home); the placements file's [keywords] show_on says where it may"
        ),
    ] = None,
) -> KeywordsOut:
    """Three or four keywords to ask the shopper about (`n`), with a title, and whether to
    show the card at all (not in a purchase funnel, not with too few keywords).

    Takes a read key, or a browser key (a `user_id`, or a session of a logged-in user, then
    needs the user's X-User-Token)."""
    user_id = acting_user(request, user_id)
    model = services.model
    if item_id is not None and services.catalog.unknown([item_id], model):
        raise ApiError(422, "unknown item", "item_id", f"unknown item {item_id!r}")
    record = services.live.session(model, session_id) if session_id else None
    if session_id is not None and record is not None:  # before any answer
        check_sessions(request.state.caller, {session_id: record.user_id})
    recommendation_id = new_recommendation_id()
    graph = model.query_graph if model is not None else None
    if model is None or graph is None:
        return KeywordsOut(
            show=False, reason="the model version has no query graph: train it on a log "
            "with search events", title="", keywords=[], recommendation_id=recommendation_id,
            model_version=model.version if model else None, ranker=RECALL_ORDER,
        )  # fmt: skip
    searched = await asyncio.to_thread(_searched, services, session_id) if session_id else set()
    events = [(i.item_id, i.type, i.time) for i in record.recent] if record else []
    owner = (record.user_id if record else None) or user_id
    bought: list[tuple[str, str, float]] = []
    if owner:
        user = services.live.user(owner)
        bought = sorted(
            ((item, "purchase", at) for item, at in zip(user.bought, user.bought_at, strict=True)),
            key=lambda event: event[2],
        )
    now = max(time.time(), record.last_time if record else 0.0)
    settings = services.recommender.placements.keyword_card  # the placements file's [keywords]
    card = keyword_card(
        graph, events, now, n, item_on_screen=item_id, earlier=bought,
        searched=frozenset(searched), config=settings.config, campaigns=settings.campaigns,
        rank=_learned_order(model, [*bought, *events], now, item_id),
        show_check=_show_model(model, events, bought, now, item_id, owner is not None)
        if settings.show_model else None,
        page=page or ("product" if item_id is not None else "home"),
    )  # fmt: skip
    shown = [
        Recommended(k.query, k.score, max(k.paths, key=lambda p: k.paths[p]), card.title)
        for k in card.keywords
    ]
    if card.show:
        keep_served(
            services, recommendation_id, model, shown, session_id, owner, PLACEMENT, item_id
        )
    return KeywordsOut(
        show=card.show,
        reason=card.reason,
        title=card.title,
        keywords=[
            KeywordOut(query=k.query, score=k.score, path=s.source, paths=k.paths)
            for k, s in zip(card.keywords, shown, strict=True)
        ],
        recommendation_id=recommendation_id,
        model_version=model.version if model else None,
        ranker=model.keyword_ranker.kind if model.keyword_ranker else RECALL_ORDER,
    )


def _learned_order(
    model: LoadedModel, history: list[tuple[str, str, float]], now: float, on_screen: str | None
) -> Callable[[list[Keyword]], np.ndarray] | None:
    """The version's keyword ranker scoring recalled keywords for this shopper, if it has one."""
    ranker, graph = model.keyword_ranker, model.query_graph
    if ranker is None or graph is None:
        return None
    ordered = sorted(history, key=lambda event: event[2])

    def scores(keywords: list[Keyword]) -> np.ndarray:
        return ranker.scores(graph, [k.query for k in keywords], ordered, now, on_screen)

    return scores


def _show_model(
    model: LoadedModel,
    session: list[tuple[str, str, float]],
    bought: list[tuple[str, str, float]],
    now: float,
    on_screen: str | None,
    signed_in: bool,
) -> Callable[[], str | None] | None:
    """The version's show model as the card's check: why not to show it, or None."""
    ranker = model.keyword_ranker
    if ranker is None or ranker.show is None:
        return None
    threshold = ranker.show.threshold

    def check() -> str | None:
        chance = ranker.show_chance(session, bought, now, on_screen, signed_in)
        if chance is None or chance >= threshold:
            return None
        return (
            f"the show model expects no click (chance {chance:.3f}, below {threshold:.3f}): "
            "the shopper seems sure of what they want"
        )

    return check


SEARCHED_EVENTS = 50  # the session's latest events read for its searches


def _searched(services: Services, session_id: str) -> set[str]:
    """The queries the session searched or clicked on a card (its latest events, from the
    log: the live record keeps item events only)."""
    events = services.log.session_events([session_id], SEARCHED_EVENTS).get(session_id, [])
    return {
        normalise_text(event.query)
        for event in events
        if event.type in ITEMLESS_EVENT_TYPES and event.query  # searches and keyword clicks
    }
