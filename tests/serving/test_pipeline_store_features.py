"""A two-stage version whose ranker reads feature-store features: the training cases read
them as of their day from the training events, the server reads the same values from the
online store in Redis, and a server without the store keeps answering in the generators'
order."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import (
    CLASSES,
    READ,
    TestClient,
    auth,
    cyclic_sessions,
    item,
    send,
    started_clients,
    view,
)

from nextbest.data.sessions import Sessions
from nextbest.models.store import save_version
from nextbest.serving import metrics
from nextbest.twostage.generate import Cases
from nextbest.twostage.model import PipelineModel, train_pipeline
from nextbest.twostage.protocol import (
    Generators,
    GeneratorSpec,
    PipelineSpec,
    check_store_features,
    typed_events,
)
from nextbest.twostage.store.offline import EventsAsOf, materialize_offline
from nextbest.twostage.store.online import OnlineFeatures, connect, write_online

DAY = 86_400.0
NAMES = ("item.views_7d", "item.carts_7d", "item.purchase_rate_28d", "item.age_days")
SPEC = PipelineSpec(
    generators=(GeneratorSpec("covisit", 10), GeneratorSpec("pop", 20)),
    ranker="gbdt",
    ranker_params={"n_estimators": 20, "threads": 1},
    ranker_share=0.3,
    store_features=NAMES,
)


def typed_sessions() -> Sessions:
    """The circle walk over 20 days: each session a day's slice, a cart every fifth event
    and a purchase every thirteenth."""
    sessions = cyclic_sessions()
    n = sessions.n_events
    kinds = np.where(
        np.arange(n) % 13 == 0, "purchase", np.where(np.arange(n) % 5 == 0, "cart", "view")
    )
    starts = np.repeat(
        np.arange(sessions.n_sessions) * 20 * DAY / sessions.n_sessions, sessions.lengths
    )
    times = 1_700_000_000.0 - 1_700_000_000.0 % DAY + starts + np.arange(n) % 7 * 60.0
    users = np.array([None if k % 3 == 0 else f"u{k % 17}" for k in range(sessions.n_sessions)])
    return dataclasses.replace(
        sessions, event_types=kinds.astype(object), times=times, user_ids=users.astype(object)
    )


def test_training_cases_read_the_store_as_of_their_day() -> None:
    train = typed_sessions()
    early = train.take(np.arange(300))
    after = train.take(np.arange(300, 400))
    generators = Generators.fit(SPEC.generators, early)
    data, _ = generators.candidates(Cases.of(after), store_features=NAMES)
    assert data.groups["store"] == tuple(f"store.{name}" for name in NAMES)
    views = data.features[:, data.names.index("store.item.views_7d")]
    # by hand: the candidate's views in the 7 days before its case's day, in both parts
    events = typed_events([early, after])
    ids = early.item_ids[data.item]
    cases = Cases.of(after)
    moments = after.times[cases.target - 1][data.case]
    days = moments // DAY
    expected = np.zeros(len(ids))
    event_days = events["timestamp"].to_numpy() // DAY
    event_items = events["item_id"].to_numpy()
    seen = events["type"].to_numpy() == "view"
    for row, (item_id, day) in enumerate(zip(ids, days, strict=True)):
        window = (event_items == item_id) & seen & (event_days < day) & (event_days >= day - 7)
        expected[row] = window.sum()
    np.testing.assert_array_equal(views, expected.astype(np.float32))
    assert views.max() > 0  # and the store saw something: the test could fail


def test_store_features_are_item_features_of_the_store() -> None:
    check_store_features(NAMES)
    with pytest.raises(ValueError, match="unknown feature"):
        check_store_features(["item.nope"])
    with pytest.raises(ValueError, match="item features only"):
        check_store_features(["user.events_28d"])


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, _ = train_pipeline(SPEC, typed_sessions())
    assert model.ranker is not None
    home = tmp_path_factory.mktemp("store-home")
    save_version(model, home, {"model": "pipeline"})
    return home


@pytest.fixture
def start(tmp_path: Path, store_home: Path) -> Iterator[Callable[..., TestClient]]:
    folder = tmp_path / "home"
    shutil.copytree(store_home, folder)
    with started_clients(folder, {**CLASSES, "pipeline": PipelineModel}) as make:
        yield make


def ranked(outcome: str) -> float:
    return metrics.RANKED.labels(outcome)._value.get()  # type: ignore[attr-defined,no-any-return]


def test_the_server_reads_the_store_from_redis(
    start: Callable[..., TestClient], redis_prefix: tuple[str, str], tmp_path: Path
) -> None:
    url, prefix = redis_prefix
    client = start(redis_url=url, redis_prefix=prefix)
    events = typed_events([typed_sessions()])
    done = materialize_offline(events, tmp_path / "features")
    write_online(connect(url), prefix, done.as_of, done.online_tables())
    # what the server reads equals what training computes for a case on the store's day
    reader = client.app.state.services.recommender.feature_store  # type: ignore[attr-defined]
    ids = [item(j) for j in range(20)]
    served = reader.read("item", ids, NAMES)
    offline = EventsAsOf(events).as_of_rows("item", ids, np.full(len(ids), done.as_of), NAMES)
    np.testing.assert_array_equal(served, offline)
    assert isinstance(reader, OnlineFeatures) and served[:, 0].max() > 0
    learned, fallback = ranked("learned"), ranked("fallback")
    assert send(client, view("s1", "sf", item(3)), view("s2", "sf", item(4))).status_code == 200
    reply = client.get(
        "/v1/recommendations",
        params={"session_id": "sf", "placement": "next", "n": 5},
        headers=auth(READ),
    )
    assert reply.status_code == 200, reply.text
    assert ranked("learned") == learned + 1 and ranked("fallback") == fallback


def test_without_the_store_the_list_keeps_the_generators_order(
    start: Callable[..., TestClient],
) -> None:
    client = start()  # no Redis: no feature store
    assert send(client, view("t1", "sg", item(3))).status_code == 200
    fallback = ranked("fallback")
    reply = client.get(
        "/v1/recommendations",
        params={"session_id": "sg", "placement": "next", "n": 5},
        headers=auth(READ),
    )
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["items"]) == 5
    assert ranked("fallback") == fallback + 1
