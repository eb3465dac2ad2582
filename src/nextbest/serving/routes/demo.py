"""The demo shop's page (`nextbest demo`): static files, its keys and its catalog.

Only mounted with NEXTBEST_DEMO=1. `/demo/config.json` hands the demo's browser key to the
page, as a shop's page would hold its own. `/demo/login` plays the shop's server at a login:
it signs a user token for whoever asks, which is what a demo on 127.0.0.1 wants and a shop's
server never does (it signs only for the user who logged in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from nextbest.events.schema import CATEGORY_SEPARATOR, MAX_ID_LENGTH
from nextbest.serving.deps import ServicesDep
from nextbest.serving.errors import ApiError
from nextbest.user_tokens import sign_user_token

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
    keys = services.keys.current
    return {"key": keys.browser[0] if keys.browser else ""}


DEMO_TOKEN_SECONDS = 3600


@router.post("/demo/login")
async def login(
    services: ServicesDep, user_id: Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH)]
) -> dict[str, str]:
    """A user token for `user_id`, as a shop's server makes one after a login."""
    secrets = services.keys.current.identity_secrets
    if not secrets:
        raise ApiError(503, "no identity secret", "user_id", "the demo keys have none")
    return {"user_id": user_id, "token": sign_user_token(user_id, secrets[0], DEMO_TOKEN_SECONDS)}


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
    for folder in ("demo", "sdk/dist"):
        if not (web / folder).is_dir():
            raise ValueError(
                f"the demo page needs {web / folder}: set NEXTBEST_WEB_DIR to the web/ folder"
            )
    app.include_router(router)
    app.mount("/demo", StaticFiles(directory=web / "demo", html=True), name="demo")


def mount_sdk(app: FastAPI, web: Path) -> bool:
    """Serve the browser SDK's builds at /sdk/ (nextbest.js, nextbest.mjs, nextbest.d.ts):
    public files, no key (False, and nothing mounted, without web/sdk/dist)."""
    folder = web / "sdk" / "dist"
    if not folder.is_dir():
        return False
    app.mount("/sdk", StaticFiles(directory=folder), name="sdk")
    return True
