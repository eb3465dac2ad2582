"""Fixtures of the serving tests: a small GRU4Rec that learned "after item j comes j + 1", a
data folder holding it as a model version, and the app over it (SQLite log, in-process state);
an empty event log, and each state store (in-process and Redis)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_process import Server, demo_server
from serving_helpers import (
    N_ITEMS,
    MakeClient,
    TestClient,
    cyclic_sessions,
    item,
    started_clients,
)

from nextbest.data.sessions import Sessions
from nextbest.events.log import EventLog, open_event_log, sqlite_url
from nextbest.models.gru4rec import GRU4Rec, GRU4RecConfig
from nextbest.models.store import save_version
from nextbest.serving.state import StateStore, open_state_store

# The serving tests' GRU4Rec: small and quick. The summed mini-batch loss moves a 30-item
# model further in three epochs than the authors' mean does, and some tests read planted
# second choices off its lists (the product placement's blend, for one).
PLANTED = GRU4RecConfig(
    layers=(32,), n_epochs=3, batch_size=16, n_sample=0, learning_rate=0.1, batch_loss="sum"
)


@pytest.fixture(scope="session")
def trained_gru() -> GRU4Rec:
    return GRU4Rec(PLANTED).fit(cyclic_sessions())


@pytest.fixture(scope="session")
def backwards_gru() -> GRU4Rec:
    """A GRU4Rec that learned the other direction: after item j comes j - 1."""
    forward = cyclic_sessions(seed=1)
    sessions = Sessions(**{**forward.__dict__, "items": (N_ITEMS - forward.items) % N_ITEMS})
    return GRU4Rec(PLANTED).fit(sessions)


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory, trained_gru: GRU4Rec) -> Path:
    home = tmp_path_factory.mktemp("model-home")
    save_version(trained_gru, home, {"model": "gru4rec"})
    return home


@pytest.fixture
def home(tmp_path: Path, model_home: Path) -> Path:
    """A fresh data folder holding the trained GRU4Rec as its only model version."""
    folder = tmp_path / "home"
    shutil.copytree(model_home, folder)
    return folder


@pytest.fixture
def make_client(home: Path) -> Iterator[MakeClient]:
    """Start the app (lifespan included) over `home`, with settings overrides."""
    with started_clients(home) as make:
        yield make


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    if request.param == "memory":
        opened = open_state_store(None, 60.0)
    else:
        url, prefix = request.getfixturevalue("redis_prefix")
        opened = open_state_store(url, 60.0, prefix)
    yield opened
    opened.close()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    opened = open_event_log(sqlite_url(tmp_path))
    yield opened
    opened.close()


CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module; each test opens its own page (a new browser
    context: no cookie or storage is shared between tests)."""
    reason = None
    if not CHROMIUM.exists():
        reason = f"Chromium not found at {CHROMIUM}: run `make browser-deps`"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the playwright package is not installed"
    if reason:
        if os.environ.get("NEXTBEST_REQUIRE_BACKENDS") == "1":
            pytest.fail(f"{reason} (NEXTBEST_REQUIRE_BACKENDS=1 forbids skipping)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=FLAGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory, model_home: Path) -> Path:
    """The data folder of a test module's `demo` server (a copy of `model_home`)."""
    folder = tmp_path_factory.mktemp("demo") / "home"
    shutil.copytree(model_home, folder)
    return folder


@pytest.fixture(scope="module")
def demo(demo_home: Path) -> Iterator[Server]:
    """One demo server per test module (starting one takes seconds); its tests tell their
    shoppers apart by session, as each opens its own browser context."""
    items = [{"item_id": item(j), "title": f"Product {item(j)}", "category_path": ["Things", "Odd"],
              "brand": "Acme", "price": 10.0 + j, "discount": 0.2 if j % 5 == 0 else None}
             for j in range(N_ITEMS)]  # fmt: skip
    yield from demo_server(demo_home, items)
