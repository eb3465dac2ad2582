"""`PUT /v1/items` (catalog upsert), `GET /v1/catalog/report` and `GET /v1/items/{id}/similar`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from nextbest.events.catalog_quality import check_items
from nextbest.events.schema import MAX_ID_LENGTH
from nextbest.serving.deps import AdminAccess, ReadOrBrowserAccess
from nextbest.serving.errors import ApiError
from nextbest.serving.routes.recommendations import (
    CountParam,
    keep_served,
    new_recommendation_id,
    reply_items,
)
from nextbest.serving.schemas import CatalogReportOut, ItemsIn, ItemsOut, SimilarOut

router = APIRouter(prefix="/v1", tags=["items"])


@router.put("/items", response_model=ItemsOut)
def put_items(batch: ItemsIn, services: AdminAccess) -> ItemsOut:
    """Insert or replace up to 1000 catalog items. New items are recommendable at once (by
    live co-visitation and popularity); the model learns them at its next training."""
    upserted = services.catalog.catalog.upsert(batch.items)
    services.catalog.upserted(batch.items)
    return ItemsOut(upserted=upserted)


@router.get("/catalog/report", response_model=CatalogReportOut, tags=["catalog"])
def catalog_report(services: AdminAccess) -> CatalogReportOut:
    """Admin key: what the catalog lacks. Per key attribute the share of items without a
    value, per free attribute its coverage, attributes with one value everywhere, and advice.
    (Impossible values never reach the catalog: `PUT /v1/items` refuses them with a 422.)"""
    items = sorted(services.catalog.items(), key=lambda item: item.item_id)
    report = check_items(items).to_dict()
    report.pop("unknown_columns")
    return CatalogReportOut.model_validate(report)


@router.get(
    "/items/{item_id}/similar",
    response_model=SimilarOut,
    responses={404: {"description": "unknown item"}},
)
async def get_similar(
    item_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)],
    services: ReadOrBrowserAccess,
    n: CountParam = 10,
) -> SimilarOut:
    """Items to show beside `item_id`: what sessions go on to after it (a read or browser
    key: nothing personal)."""
    model = services.model
    if services.catalog.unknown([item_id], model):
        raise ApiError(404, "unknown item", "item_id", f"unknown item {item_id!r}")
    items = services.recommender.similar(model, item_id, n)
    recommendation_id = new_recommendation_id()
    keep_served(services, recommendation_id, model, items, item_id=item_id)
    return SimilarOut(
        item_id=item_id,
        recommendation_id=recommendation_id,
        model_version=model.version if model else None,
        items=reply_items(items),
    )
