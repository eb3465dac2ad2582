"""The operator's dashboard: a static page at `/dashboard/` and its data at `GET /v1/dashboard`.

The page holds no secret and no data: it asks the operator for an admin key (kept in the
browser tab's session storage) and draws what the admin-key endpoints answer, with Plotly
(its `plotly.min.js` is served from the installed `plotly` package, so the page needs no
network beyond this server). `GET /v1/dashboard` (admin key) gives the server's own series:
events and recommendations per second, latency percentiles, the model versions, and its
operations (the learned ranker's fallbacks, the feature store's served day, the event bus's
backlog); each running experiment's report comes from `GET /v1/experiments/{name}/report`.
"""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import redis
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from nextbest.serving.dashboard import read_operations
from nextbest.serving.deps import AdminAccess
from nextbest.serving.services import Services
from nextbest.twostage.store.online import OnlineFeatures, status

router = APIRouter(prefix="/v1", tags=["dashboard"])
page = APIRouter(include_in_schema=False)


class ModelOut(BaseModel):
    version: str
    model: str
    loaded_at: float
    serves: str = Field(description='"answering", or "experiment" (a variant pins it)')


class FeatureStoreOut(BaseModel):
    version: str | None = Field(default=None, description="the online store's served version")
    as_of: float | None = Field(
        default=None, description="its values count the events before this moment (a day's start)"
    )
    rows: dict[str, int] = Field(default_factory=dict, description="entities per kind")
    error: str | None = Field(default=None, description="why the store could not be read")


class OperationsOut(BaseModel):
    ranked_lists: dict[str, float] = Field(
        description="lists of a learned ranker since the server started, by outcome: "
        "learned, or fallback (the generators' order: no usable ranker or store)"
    )
    feature_store: FeatureStoreOut | None = Field(
        description="the online feature store the rankers read (null: no Redis configured)"
    )
    event_bus: dict[str, float] | None = Field(
        description="events in the bus not yet logged, by state: waiting, unacknowledged "
        "(null: no event bus)"
    )


class DashboardOut(BaseModel):
    now: float
    refresh_seconds: float
    series: list[dict[str, float | None]] = Field(
        description="per interval: at, events_per_second, recommendations_per_second, "
        "p50_ms, p95_ms, p99_ms (the lists' latency; null without lists)"
    )
    models: list[ModelOut]
    versions: list[str] = Field(description="the version folders on disk, oldest first")
    experiments: list[str] = Field(description="the experiments running now")
    operations: OperationsOut


@router.get("/dashboard", response_model=DashboardOut)
async def get_dashboard(services: AdminAccess) -> DashboardOut:
    """Admin key. The server's rates and latency over the last hour, its model versions, the
    experiments running (their reports: `/v1/experiments/{name}/report`), and its operations:
    the learned ranker's lists by outcome, the feature store's served version, day and rows,
    the event bus's pending messages."""
    current = services.model
    return DashboardOut(
        now=time.time(),
        refresh_seconds=services.settings.refresh_seconds,
        series=services.throughput.series(),
        models=[
            ModelOut(
                version=m.version,
                model=m.name,
                loaded_at=m.loaded_at,
                serves="answering" if m is current else "experiment",
            )
            for m in services.registry.loaded()
        ],
        versions=services.registry.versions(),
        experiments=[e.name for e in services.experiments.running()],
        operations=await run_in_threadpool(operations, services),
    )


def operations(services: Services) -> OperationsOut:
    """The ranker's fallbacks, the feature store's served day, the bus's backlog."""
    counted = read_operations()
    bus = counted["bus_pending"] if services.settings.event_bus else None
    return OperationsOut(
        ranked_lists=counted["ranked_lists"],
        feature_store=feature_store_status(services.recommender.feature_store),
        event_bus=bus,
    )


def feature_store_status(reader: Any) -> FeatureStoreOut | None:
    if not isinstance(reader, OnlineFeatures):
        return None
    try:
        found = status(reader.client, reader.prefix)
    except redis.RedisError as exc:
        return FeatureStoreOut(error=f"Redis: {exc}")
    if found is None:
        return FeatureStoreOut(error="nothing materialized: run `nextbest features materialize`")
    return FeatureStoreOut(version=found.version, as_of=found.as_of, rows=dict(found.rows))


@page.get("/dashboard")
async def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@page.get("/dashboard/plotly.min.js")
async def plotly_js() -> FileResponse:
    bundled = files("plotly") / "package_data" / "plotly.min.js"
    return FileResponse(str(bundled), media_type="text/javascript")


def mount_dashboard(app: FastAPI, web: Path) -> bool:
    """Serve the page from `web/dashboard` (False, and nothing mounted, if it is missing)."""
    folder = web / "dashboard"
    if not folder.is_dir():
        return False
    app.include_router(page)
    app.mount("/dashboard", StaticFiles(directory=folder, html=True), name="dashboard")
    return True
