"""The API's request and response bodies (pydantic at the edge).

Events are validated one by one against the event schema (`nextbest.events.schema.Event`),
so that one bad event in a batch rejects that event only. The API differs from the stored
event in two conveniences: `timestamp` may be left out (the server's clock is used), and
`placement` and `device` may travel inside `context`.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from nextbest.events.schema import MAX_ID_LENGTH, Event, Item
from nextbest.serving.errors import detail_of, field_name

MAX_BATCH_EVENTS = 500
MAX_BATCH_ITEMS = 1000
MAX_N = 100
MAX_CANDIDATES = 1000  # items a search placement request may pass to re-rank
MAX_FILTER_CHARS = 2000
CONTEXT_FIELDS = ("placement", "device")


def _event_in_schema() -> dict[str, Any]:
    """Event's JSON schema as the API takes it: no `timestamp` required, $defs inlined."""
    schema = copy.deepcopy(Event.model_json_schema())
    definitions = schema.pop("$defs", {})
    schema["title"] = "EventIn"
    schema["required"] = [name for name in schema["required"] if name != "timestamp"]
    schema["properties"]["timestamp"]["description"] += "; the server's clock when absent"

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return dict(inline(schema))


RawEvent = Annotated[dict[str, Any] | Any, WithJsonSchema(_event_in_schema())]


class EventBatchIn(BaseModel):
    events: list[RawEvent] = Field(max_length=MAX_BATCH_EVENTS)


class FieldError(BaseModel):
    field: str
    message: str


class Rejected(BaseModel):
    index: int
    event_id: str | None
    field: str
    message: str


class EventsOut(BaseModel):
    accepted: int = Field(description="events logged now")
    duplicates: list[str] = Field(description="event ids logged before: accepted once, earlier")
    rejected: list[Rejected] = Field(description="events not logged, and why")
    error: str | None = None
    detail: list[FieldError] = []


def parse_event(raw: Any, index: int, now: float) -> Event | list[Rejected]:
    """One event of a batch, or why it is rejected (fields named as `events[i].field`)."""
    if not isinstance(raw, dict):
        return [
            Rejected(
                index=index,
                event_id=None,
                field=f"events[{index}]",
                message="must be a JSON object",
            )
        ]
    data = dict(raw)
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    if data.get("timestamp") is None:
        data["timestamp"] = now
    moved: set[str] = set()
    context = data.get("context")
    if isinstance(context, dict):
        context = dict(context)
        for name in CONTEXT_FIELDS:
            if name in context and name not in data:
                data[name] = context.pop(name)
                moved.add(name)
        data["context"] = context or None
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        rejected = []
        for error in exc.errors():
            location = list(error["loc"])
            if location and location[0] in moved:
                location = ["context", *location]
            detail = detail_of([{**error, "loc": location}], ("events", index))[0]
            rejected.append(Rejected(index=index, event_id=event_id, **detail))
        return rejected


def unknown_item(index: int, event: Event) -> Rejected:
    return Rejected(
        index=index,
        event_id=event.event_id,
        field=field_name(("events", index, "item_id")),
        message=f"unknown item {event.item_id!r}: add it with PUT /v1/items first",
    )


class IdentifyIn(BaseModel):
    """A login: from now on the session belongs to the user (its earlier events too)."""

    model_config = ConfigDict(extra="forbid")
    session_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    user_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)


class IdentifyOut(BaseModel):
    session_id: str
    user_id: str
    events: int  # the session's events so far, all of which now count for the user


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    source: str = Field(
        description="what put the item here: the model's name, similar, complements, covisit, "
        "popularity, promoted, pinned, search"
    )
    reason: str = Field(description="a short text a page may show, e.g. 'similar to X'")
    because: dict[str, float] | None = Field(
        default=None,
        description="with explain=true on a placement with the learned ranker: the features "
        "that moved the item most, with their signed contribution to its score (left out "
        "otherwise)",
        exclude_if=lambda value: value is None,
    )


class RankerOut(BaseModel):
    version: str | None = Field(description="the model version answering now")
    ranker: str | None = Field(
        description="its learned ranker (gbdt, ftrl, ...); None: not a pipeline"
    )
    state: str = Field(
        description="ranker: as trained; ranker-online: as online learning left it; refused: "
        "unreadable at load (lists come in the generators' order); none: no ranker"
    )
    error: str | None = Field(description="why the ranker was refused")
    online_learning: bool


class RecommendationFields(BaseModel):
    """What `GET` (as query parameters) and `POST /v1/recommendations` (as a body) share."""

    session_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    user_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    placement: str = Field(
        default="home", min_length=1, max_length=MAX_ID_LENGTH, description="home, product, ..."
    )
    item_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="the item on screen, if any",
    )
    n: int = Field(default=10, ge=1, le=MAX_N, description="how many items")
    filter: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FILTER_CHARS,
        description="a filter expression for this request, e.g. "
        "`INCLUDE WHERE item.price <= $max_price`",
    )
    explain: bool = Field(
        default=False,
        description="with the learned ranker: each item's features that moved it most",
    )


class RecommendationsIn(RecommendationFields):
    """`POST /v1/recommendations`: the query's fields as a JSON body."""

    model_config = ConfigDict(extra="forbid")
    candidates: list[Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]] = Field(
        default=[], max_length=MAX_CANDIDATES
    )
    filter_params: dict[str, Any] = {}


class RecommendationsQuery(RecommendationFields):
    """`GET /v1/recommendations`: the query parameters, validated as one model (FastAPI
    resolves declared query parameters one by one on every request)."""

    filter_params: str | None = Field(
        default=None, description="the filters' $parameters as a JSON object"
    )
    candidates: str | None = Field(
        default=None, description="comma-separated item ids to re-rank (search placement)"
    )


class RecommendationsOut(BaseModel):
    recommendation_id: str = Field(description="send it back with the events that follow")
    model_version: str | None
    placement: str | None = None
    experiment: str | None = Field(
        default=None, description="the experiment running on this placement, if any"
    )
    variant: str | None = Field(default=None, description="the experiment's variant that answered")
    items: list[RecommendedItem]


class SimilarOut(RecommendationsOut):
    item_id: str


class ServedItem(BaseModel):
    position: int = Field(description="1 = first in the list")
    item_id: str
    source: str
    score: float


class Outcome(BaseModel):
    event_id: str
    type: str
    item_id: str | None
    timestamp: float
    position: int | None = Field(description="the item's position in the list, if it was in it")


class ServedOut(BaseModel):
    recommendation_id: str
    served_at: float
    session_id: str | None
    user_id: str | None
    placement: str | None
    item_id: str | None = Field(description="the item on screen when it was asked for")
    model_version: str | None
    experiment: str | None = None
    variant: str | None = None
    unit: str | None = Field(default=None, description="the id the experiment assigned by")
    items: list[ServedItem]
    outcomes: list[Outcome] = Field(description="events that carried the id back, in log order")


class ItemsIn(BaseModel):
    items: list[Item] = Field(max_length=MAX_BATCH_ITEMS)


class ItemsOut(BaseModel):
    upserted: int


class CatalogProblemOut(BaseModel):
    row: int = Field(description="1 = the first item (in item id order)")
    column: str
    message: str


class AttributeUseOut(BaseModel):
    share: float = Field(description="share of all items with a value")
    share_where_used: float = Field(
        description="share of the items of the categories where some item has it"
    )
    categories: int


class CatalogReportOut(BaseModel):
    items: int
    missing: dict[str, float] = Field(description="key attribute -> share of items without it")
    attributes: dict[str, AttributeUseOut]
    attributes_per_item: float
    constant: dict[str, Any] = Field(description="attributes with one value on every item")
    problems: list[CatalogProblemOut]
    problem_counts: dict[str, int]
    advice: list[str]


class AffinityValueOut(BaseModel):
    value: str
    score: float = Field(ge=0, le=1, description="share of the attribute's decayed weight")


class AffinityProfileOut(BaseModel):
    brand: list[AffinityValueOut]
    category_1: list[AffinityValueOut] = Field(description="the top level of the category path")
    category_2: list[AffinityValueOut] = Field(description="its first two levels")
    category: list[AffinityValueOut] = Field(description="the full category path")
    price_band: list[AffinityValueOut] = Field(
        description="budget, low, mid, high or premium: the fifth of its category's prices"
    )
    discount_sensitivity: float = Field(
        ge=0, le=1, description="0.5: meets discounts as often as the catalog has them"
    )


class AffinityOut(BaseModel):
    user_id: str | None = None
    session_id: str | None = None
    events: int = Field(description="item events on catalog items the profile counts")
    affinity: AffinityProfileOut


class HealthOut(BaseModel):
    status: str
    model_version: str | None
    model: str | None
    problems: list[str] = []


class ModelsOut(BaseModel):
    current: str | None
    model: str | None
    versions: list[str]
    switched: bool = False
