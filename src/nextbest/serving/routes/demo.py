"""The demo shop's page (`nextbest demo`): static files, its keys and its catalog.

Only mounted with NEXTBEST_DEMO=1: `/demo/config.json` hands the demo's write and read keys
to any visitor, which is what a demo on 127.0.0.1 wants and a shop never does.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from nextbest.events.schema import CATEGORY_SEPARATOR
from nextbest.serving.deps import ServicesDep

router = APIRouter(tags=["demo"], include_in_schema=False)
MAX_DEMO_ITEMS = 5000


def default_web_dir() -> Path:
    """`web/` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[4] / "web"


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/demo/")


@router.get("/demo/config.json")
async def config(services: ServicesDep) -> dict[str, str]:
    keys = services.keys
    return {
        "writeKey": keys.write[0] if keys.write else "",
        "readKey": keys.read[0] if keys.read else "",
    }


@router.get("/demo/catalog.json")
def catalog(services: ServicesDep) -> list[dict[str, object]]:
    """What the shop page shows of each item. `category` is the path as one text (the
    breadcrumb); `category_path` keeps its parts, since a category name may hold the
    separator."""
    return [
        {
            "item_id": item.item_id,
            "title": item.title or item.item_id,
            "category": CATEGORY_SEPARATOR.join(item.category_path),
            "category_path": list(item.category_path),
            "brand": item.brand,
            "price": item.price,
            "discount": item.discount,
            "in_stock": item.in_stock,
        }
        for item in services.catalog.catalog.items(MAX_DEMO_ITEMS)
    ]


def mount_demo(app: FastAPI, web: Path) -> None:
    for folder in ("demo", "sdk"):
        if not (web / folder).is_dir():
            raise ValueError(
                f"the demo page needs {web / folder}: set NEXTBEST_WEB_DIR to the web/ folder"
            )
    app.include_router(router)
    app.mount("/demo", StaticFiles(directory=web / "demo", html=True), name="demo")
    app.mount("/sdk", StaticFiles(directory=web / "sdk"), name="sdk")
