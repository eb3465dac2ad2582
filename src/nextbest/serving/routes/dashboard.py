"""The operator's dashboard: a static page at `/dashboard/` and its data at `GET /v1/dashboard`.

The page holds no secret and no data: it asks the operator for an admin key (kept in the
browser tab's session storage) and draws what the admin-key endpoints answer, with Plotly
(its `plotly.min.js` is served from the installed `plotly` package, so the page needs no
network beyond this server). `GET /v1/dashboard` (admin key) gives the server's own series:
events and recommendations per second, latency percentiles, the model versions; each running
experiment's report comes from `GET /v1/experiments/{name}/report`.
"""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from nextbest.serving.deps import AdminAccess

router = APIRouter(prefix="/v1", tags=["dashboard"])
page = APIRouter(include_in_schema=False)


class ModelOut(BaseModel):
    version: str
    model: str
    loaded_at: float
    serves: str = Field(description='"answering", or "experiment" (a variant pins it)')


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


@router.get("/dashboard", response_model=DashboardOut)
async def get_dashboard(services: AdminAccess) -> DashboardOut:
    """Admin key. The server's rates and latency over the last hour, its model versions, and
    the experiments running (their reports: `/v1/experiments/{name}/report`)."""
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
    )


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
