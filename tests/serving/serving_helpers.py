"""What the serving tests share: items, keys, sessions that walk in circles, requests."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from event_tables import event_table
from nextbest.data.sessions import Sessions
from nextbest.events.log import EventLog
from nextbest.keywords.graph import KEYWORDS_DIR, QueryGraph, QueryGraphConfig, build_query_graph
from nextbest.models.base import SessionModel
from nextbest.models.covisit import CoVisitation
from nextbest.models.gru4rec import GRU4Rec
from nextbest.models.popularity import MostPopular, SessionPopular
from nextbest.models.sasrec import SASRec
from nextbest.models.srgnn import SRGNN
from nextbest.models.store import latest_version
from nextbest.serving.app import create_app
from nextbest.serving.settings import ServingSettings

with warnings.catch_warnings():  # Starlette would rather see another HTTP client installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

N_ITEMS = 30
WRITE, READ, ADMIN = "test-write-key-0001", "test-read-key-00001", "test-admin-key-0001"
BROWSER = "test-browser-key-001"
SECRET = "test-identity-secret-0123456789abcdef"
CLASSES: dict[str, type[SessionModel[Any, Any]]] = {
    model.name: model
    for model in (GRU4Rec, MostPopular, SessionPopular, CoVisitation, SRGNN, SASRec)
}


def item(j: int) -> str:
    return f"i{j % N_ITEMS:02d}"


def cyclic_sessions(n_sessions: int = 400, seed: int = 0) -> Sessions:
    """Sessions that walk the items in a circle: after item j comes item j + 1."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 8, n_sessions)
    starts = rng.integers(0, N_ITEMS, n_sessions)
    walks = [(s + np.arange(n)) % N_ITEMS for s, n in zip(starts, lengths, strict=True)]
    items = np.concatenate(walks)
    return Sessions(
        item_ids=np.array([item(j) for j in range(N_ITEMS)], dtype=object),
        session_ids=np.array([f"train-{k}" for k in range(n_sessions)], dtype=object),
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        items=items.astype(np.int64),
        times=np.arange(len(items), dtype=np.float64),
    )


def model_scores(model: GRU4Rec, *items: int) -> dict[str, float]:
    """The trained model's own scores of every item after a session of these items, by item
    id: GRU4Rec's `step` and `score`, without any of serving's code (an expectation that does
    not come from the code under test)."""
    assert model.item_ids is not None
    index = {str(i): k for k, i in enumerate(model.item_ids)}
    state = model.initial_state(1)
    for j in items:
        state = model.step(state, np.array([index[item(j)]]), np.array([0.0]))
    scores = model.score(state)[0]
    return {str(i): float(scores[k]) for k, i in enumerate(model.item_ids)}


def settings_for(home: Path, **overrides: Any) -> ServingSettings:
    values: dict[str, Any] = {
        "home": home,
        "write_keys": (WRITE,),
        "read_keys": (READ,),
        "admin_keys": (ADMIN,),
        "browser_keys": (BROWSER,),
        "identity_secrets": (SECRET,),
        "refresh_seconds": 60.0,  # tests refresh explicitly
        "model_poll_seconds": 60.0,
    }
    return ServingSettings(**(values | overrides))


MakeClient = Callable[..., TestClient]


@contextmanager
def started_clients(
    home: Path, classes: dict[str, type[Any]] | None = None
) -> Iterator[MakeClient]:
    """`make(**settings overrides)` starts the app (lifespan included) over `home`; every
    client still running at the end is shut down."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(settings_for(home, **overrides), classes or CLASSES))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        if client not in _stopped:
            client.__exit__(None, None, None)


_stopped: list[TestClient] = []


def stop(client: TestClient) -> None:
    """Shut one client's app down now (its lifespan's shutdown runs)."""
    client.__exit__(None, None, None)
    _stopped.append(client)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def view(event_id: str, session: str, item_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "view",
        "session_id": session,
        "item_id": item_id,
        **extra,
    }


def send(client: TestClient, *events: Any) -> Any:
    return client.post("/v1/events", json={"events": list(events)}, headers=auth(WRITE))


def recommend(client: TestClient, **params: Any) -> Any:
    return client.get("/v1/recommendations", params=params, headers=auth(READ))


def top(client: TestClient, **params: Any) -> str:
    """The first recommended item id."""
    return str(recommend(client, **params).json()["items"][0]["item_id"])


KINDS = {"treadmill": range(0, 10), "running shoe": range(10, 20), "coffee": range(20, 30)}
TOP = {"treadmill": "Sports", "running shoe": "Sports", "coffee": "Home"}


def plant_query_graph(home: Path) -> None:
    """Give the newest model version under `home` a query graph: shoppers on a running shoe
    (i10-i19) search "running shoe" and "socks" (socks lead to i19); treadmill (i00-i09) and
    coffee (i20-i29) shoppers search "treadmill" and "coffee"."""
    graph, _ = planted_graph()
    folder = latest_version(home)
    assert folder is not None
    graph.save(folder / KEYWORDS_DIR)


def plant_keyword_ranker(home: Path) -> None:
    """The planted query graph, and a keyword ranker fitted on cards of a shoe page that
    offered "running shoe", "socks" and "treadmill", where shoppers always clicked "socks"."""
    from nextbest.keywords.card_ranker import fit_keyword_ranker

    graph, catalog = planted_graph()
    queries = ["running shoe", "socks", "treadmill"]
    cards = pl.DataFrame(
        {
            "card_id": [f"c{k}" for k in range(40) for _ in queries],
            "session_id": [f"s{k}" for k in range(40) for _ in queries],
            "user_id": [None] * 120,
            "timestamp": [1000.0 + k for k in range(40) for _ in queries],
            "item_id": [item(12)] * 120,
            "position": [p for _ in range(40) for p in range(3)],
            "query": queries * 40,
            "clicked": [q == "socks" for _ in range(40) for q in queries],
        }
    )
    views = event_table(
        [(f"s{k}", 1000.0 + k, "view", item(12)) for k in range(40)],
        ("session_id", "timestamp", "type", "item_id"),
    )
    folder = latest_version(home)
    assert folder is not None
    graph.save(folder / KEYWORDS_DIR)
    fit_keyword_ranker(cards, views, graph, catalog).save(folder)


def planted_graph() -> tuple[QueryGraph, pl.DataFrame]:
    rows: list[tuple[Any, ...]] = []
    for k in range(20):
        for query, items in [*KINDS.items(), ("socks", range(19, 20))]:
            session = f"{query}-{k}"
            if query == "socks":
                rows.append((session, 0.0, "view", item(12), None))
            rows.append((session, 1.0, "search", None, query))
            rows += [(session, 2.0, "view", item(j), None) for j in items if j % 3 == k % 3]
    catalog = pl.DataFrame(
        {
            "item_id": [item(j) for j in range(30)],
            "title": [f"{kind.title()} {j}" for kind, items in KINDS.items() for j in items],
            "category_path": [
                f"{TOP[kind]} > {kind.title()}" for kind, items in KINDS.items() for _ in items
            ],
            "brand": ["Acme"] * 30,
        }
    )
    events = event_table(rows, ("session_id", "timestamp", "type", "item_id", "query"))
    return build_query_graph(events, catalog, QueryGraphConfig(min_count=1.0)), catalog


def assert_logged_exactly_once(log: EventLog, acknowledged: list[str]) -> None:
    try:
        counts = Counter(e.event_id for e in log.iter_events())
    finally:
        log.close()
    missing = [i for i in acknowledged if counts[i] == 0]
    repeated = [i for i in acknowledged if counts[i] > 1]
    assert not missing and not repeated, (missing[:5], repeated[:5])
    assert max(counts.values()) == 1  # nothing else is in the log twice either


def drained(url: str, stream: str, timeout: float = 20.0) -> None:
    """Wait until every message in the event bus's stream is logged and acknowledged."""
    from nextbest.serving.bus import EventBus

    async def wait() -> None:
        bus = EventBus(url, stream)
        await bus.connect()
        try:
            deadline = time.monotonic() + timeout
            while await bus.pending() != (0, 0):
                assert time.monotonic() < deadline, await bus.pending()
                await asyncio.sleep(0.05)
        finally:
            await bus.close()

    asyncio.run(wait())
