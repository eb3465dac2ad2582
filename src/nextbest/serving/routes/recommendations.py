"""`GET` and `POST /v1/recommendations`: the next-best items for a session on a placement, now.

The route parses, calls the recommender (the placement's pipeline) and records the list; a
bad placement, filter or parameter is a 422 that names it.

The route is `async def`: its work is short and mostly CPU (one state read, one scoring of
every item, well under a millisecond), and running it on the event loop saves the switch to
a worker thread that a plain `def` costs. A state rebuild from the log (once per session
after a restart or a model switch) blocks the loop for one indexed query.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from nextbest.events.log import ServedList
from nextbest.events.schema import MAX_ID_LENGTH
from nextbest.recommend.context import Query as RecommendQuery
from nextbest.recommend.rules.filters import FilterError, ParamError
from nextbest.serving import metrics
from nextbest.serving.auth import Scope
from nextbest.serving.deps import (
    VALIDATION_ERROR_DOC,
    AdminAccess,
    ReadOrBrowserAccess,
    access,
    acting_user,
    json_reply,
    query_parameters_doc,
    query_params,
    session_refused,
)
from nextbest.serving.errors import ApiError
from nextbest.serving.experiments import Choice
from nextbest.serving.recommend import (
    MissingInput,
    Recommended,
    SessionOfAnotherUser,
    UnknownPlacement,
    served_list,
)
from nextbest.serving.registry import LoadedModel
from nextbest.serving.schemas import (
    MAX_CANDIDATES,
    MAX_N,
    Outcome,
    RecommendationFields,
    RecommendationsIn,
    RecommendationsOut,
    RecommendationsQuery,
    RecommendedItem,
    ServedItem,
    ServedOut,
)
from nextbest.serving.services import Services

router = APIRouter(prefix="/v1", tags=["recommendations"])

IdParam = Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH)]
CountParam = Annotated[int, Query(ge=1, le=MAX_N, description="how many items")]
MAX_OUTCOMES = 1_000


MAX_FILTER_PARAMS_CHARS = 10_000


def reply_items(items: list[Recommended]) -> list[RecommendedItem]:
    for source, count in Counter(item.source for item in items).items():
        metrics.RECOMMENDED.labels(source).inc(count)
    return [
        RecommendedItem(
            item_id=i.item_id,
            score=i.score,
            source=i.source,
            reason=i.reason,
            because=dict(i.because) if i.because else None,
        )
        for i in items
    ]


def run_query(
    services: Services, query: RecommendQuery, choice: Choice | None = None
) -> tuple[LoadedModel | None, list[Recommended], Any]:
    """The placement's list for `query` (and what a learned ranker saw of it), by the
    experiment's variant when `choice` names one; ApiError 422 naming what is wrong with it."""
    model = services.model if choice is None else choice.model
    recommender = services.recommender if choice is None else choice.recommender
    if query.item_id is not None and services.catalog.unknown([query.item_id], model):
        raise ApiError(422, "unknown item", "item_id", f"unknown item {query.item_id!r}")
    try:
        record = choice.record if choice is not None else None
        return model, *recommender.recommend_ranked(model, query, record)
    except UnknownPlacement as exc:
        raise ApiError(422, "unknown placement", "placement", str(exc)) from None
    except MissingInput as exc:
        raise ApiError(422, "missing input", exc.field, str(exc)) from None
    except FilterError as exc:
        raise ApiError(422, "invalid filter", "filter", str(exc)) from None
    except ParamError as exc:
        raise ApiError(
            422, "invalid filter parameter", f"filter_params.{exc.param}", str(exc)
        ) from None
    except SessionOfAnotherUser as exc:
        raise session_refused(exc.session_id) from None


def parse_filter_params(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    if len(text) > MAX_FILTER_PARAMS_CHARS:
        raise ApiError(
            422, "invalid filter parameters", "filter_params",
            f"at most {MAX_FILTER_PARAMS_CHARS} characters",
        )  # fmt: skip
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise ApiError(
            422, "invalid filter parameters", "filter_params", f"not JSON: {exc}"
        ) from None
    if not isinstance(params, dict):
        raise ApiError(422, "invalid filter parameters", "filter_params", "must be a JSON object")
    return params


def parse_candidates(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    ids = tuple(part.strip() for part in text.split(",") if part.strip())
    if len(ids) > MAX_CANDIDATES:
        raise ApiError(422, "too many candidates", "candidates", f"at most {MAX_CANDIDATES}")
    return ids


def answer(services: Services, query: RecommendQuery) -> RecommendationsOut:
    choice = services.experiments.choose(query)
    model, items, ranked = run_query(services, query, choice)
    recommendation_id = new_recommendation_id()
    if ranked is not None and services.online is not None:
        services.online.impression(model, recommendation_id, ranked, items)
    keep_served(
        services, recommendation_id, model, items, query.session_id, query.user_id,
        query.placement, query.item_id, choice,
    )  # fmt: skip
    if choice is not None:
        metrics.EXPERIMENT_SERVED.labels(choice.experiment, choice.variant).inc()
    return RecommendationsOut(
        recommendation_id=recommendation_id,
        model_version=model.version if model else None,
        placement=query.placement,
        experiment=choice.experiment if choice else None,
        variant=choice.variant if choice else None,
        items=reply_items(items),
    )


def new_recommendation_id() -> str:
    return uuid.uuid4().hex


def keep_served(
    services: Services,
    recommendation_id: str,
    model: LoadedModel | None,
    items: list[Recommended],
    session_id: str | None = None,
    user_id: str | None = None,
    placement: str | None = None,
    item_id: str | None = None,
    choice: Choice | None = None,
) -> None:
    """Hand the answered list to the recorder (written in the background, for attribution)."""
    experiment = (choice.experiment, choice.variant, choice.unit) if choice else None
    services.served.record(
        served_list(
            recommendation_id, model, items, session_id, user_id, placement, item_id, experiment
        )
    )


@router.get(
    "/recommendations",
    response_model=RecommendationsOut,
    openapi_extra={"parameters": query_parameters_doc(RecommendationsQuery)},
    responses={422: VALIDATION_ERROR_DOC},
)
async def get_recommendations(request: Request) -> Response:
    """The `n` next-best items for the session as it is now on a placement (`home` when none),
    each with its source and a reason to show; never an item the session (or the user)
    bought, nor the item on screen. A session without events gets popular items.

    Takes a read key, or a browser key: then a `user_id` needs the user's token
    (X-User-Token), and a session that belongs to a user is that user's only."""
    services = access(request, Scope.READ, browser=True)
    params = query_params(RecommendationsQuery, request)
    query = query_of(
        request,
        params,
        parse_candidates(params.candidates),
        parse_filter_params(params.filter_params),
    )
    await caught_up(services, query.session_id)
    return json_reply(answer(services, query))


@router.post("/recommendations", response_model=RecommendationsOut)
async def post_recommendations(
    body: RecommendationsIn, services: ReadOrBrowserAccess, request: Request
) -> RecommendationsOut:
    """The same as `GET`, with the fields in a JSON body (for long `candidates` lists)."""
    query = query_of(request, body, tuple(body.candidates), body.filter_params)
    await caught_up(services, query.session_id)
    return answer(services, query)


async def caught_up(services: Services, session_id: str | None) -> None:
    """With the event bus on, wait a little (NEXTBEST_EVENT_BUS_WAIT_SECONDS) for the events
    this node took for the session to be logged and applied, so that a list right after an
    event sees it; a session with none pending costs nothing."""
    wait = services.settings.event_bus_wait_seconds
    if services.bus is not None and session_id is not None and wait > 0:
        await services.bus.session_caught_up(session_id, wait)


def query_of(
    request: Request,
    fields: RecommendationFields,
    candidates: tuple[str, ...],
    filter_params: dict[str, Any],
) -> RecommendQuery:
    """The recommender's query from either route's validated fields (the two differ only in
    how candidates and filter parameters arrive: text in a query string, lists in a body)."""
    return RecommendQuery(
        n=fields.n,
        placement=fields.placement,
        session_id=fields.session_id,
        user_id=acting_user(request, fields.user_id),
        from_browser=request.state.caller.browser,
        item_id=fields.item_id,
        candidates=candidates,
        filter=fields.filter,
        filter_params=filter_params,
        explain=fields.explain,
    )


@router.get(
    "/recommendations/{recommendation_id}",
    response_model=ServedOut,
    responses={404: {"description": "no list was answered under this id"}},
)
async def get_served(
    recommendation_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)],
    services: AdminAccess,
    outcomes: Annotated[int, Query(ge=0, le=MAX_OUTCOMES, description="events, at most")] = 100,
) -> ServedOut:
    """Attribution: the list answered under this id, and the events that carried it back.

    Lists are written in the background, each worker once a second. This waits for the
    lists this worker answered before it; an id it does not find yet is looked up once more
    after a writer's interval, since another worker may have answered it. An unknown id is
    404."""
    served = await _find_served(services, recommendation_id)
    if served is None:
        raise ApiError(
            404, "unknown recommendation", "recommendation_id",
            f"no list was answered under {recommendation_id!r}",
        )  # fmt: skip
    events = await asyncio.to_thread(services.log.outcomes, recommendation_id, outcomes)
    position = {item: k for k, (item, _, _) in enumerate(served.items, start=1)}
    return ServedOut(
        **asdict(served)
        | {
            "items": [
                ServedItem(position=k, item_id=item, source=source, score=score)
                for k, (item, source, score) in enumerate(served.items, start=1)
            ],
            "outcomes": [
                Outcome(
                    event_id=event.event_id,
                    type=event.type,
                    item_id=event.item_id,
                    timestamp=event.timestamp,
                    position=position.get(event.item_id) if event.item_id else None,
                )
                for event in events
            ],
        }
    )


async def _find_served(services: Services, recommendation_id: str) -> ServedList | None:
    await asyncio.to_thread(services.served.flush)
    served = await asyncio.to_thread(services.log.served, recommendation_id)
    if served is None:  # maybe answered by another worker, whose writer has not run yet
        await asyncio.sleep(services.served.interval)
        served = await asyncio.to_thread(services.log.served, recommendation_id)
    return served
