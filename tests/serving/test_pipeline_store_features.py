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
    ADMIN,
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
from nextbest.twostage.store.definitions import pair_key
from nextbest.twostage.store.offline import EventsAsOf, materialize_offline
from nextbest.twostage.store.online import OnlineFeatures, connect, write_online

DAY = 86_400.0
NAMES = (
    "item.views_7d",
    "item.carts_7d",
    "item.purchase_rate_28d",
    "item.age_days",
    "user.events_28d",
    "pair.sessions_28d",
)
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


def test_user_and_pair_features_are_of_the_cases_user_and_latest_item() -> None:
    train = typed_sessions()
    early, after = train.take(np.arange(300)), train.take(np.arange(300, 400))
    generators = Generators.fit(SPEC.generators, early)
    cases = Cases.of(after)
    data, _ = generators.candidates(cases, store_features=NAMES)
    events = typed_events([early, after])
    day_of = events["timestamp"].to_numpy() // DAY
    users, sessions = events["user_id"].to_numpy(), events["session_id"].to_numpy()
    event_items = events["item_id"].to_numpy()
    user_column = data.features[:, data.names.index("store.user.events_28d")]
    pair_column = data.features[:, data.names.index("store.pair.sessions_28d")]
    checked = 0
    for row in range(0, len(data.case), 7):  # a sample of rows: the by-hand count is slow
        case = data.case[row]
        day = after.times[cases.target[case] - 1] // DAY
        window = (day_of < day) & (day_of >= day - 28)
        user = after.user_ids[cases.session[case]]
        expected_user = 0 if user is None else int((window & (users == user)).sum())
        assert user_column[row] == expected_user
        anchor = after.item_ids[after.items[cases.target[case] - 1]]
        candidate = early.item_ids[data.item[row]]
        both = {
            (s, d)
            for s, d in zip(
                sessions[window & (event_items == anchor)],
                day_of[window & (event_items == anchor)],
                strict=True,
            )
        } & {
            (s, d)
            for s, d in zip(
                sessions[window & (event_items == candidate)],
                day_of[window & (event_items == candidate)],
                strict=True,
            )
        }
        assert pair_column[row] == (len(both) if anchor != candidate else 0)
        checked += 1
    assert checked > 50 and user_column.max() > 0 and pair_column.max() > 0


def test_the_server_keys_the_store_as_training_does() -> None:
    """One case: the store columns training computed for its candidates equal what the
    server's ranker reads for the same session, user and moment."""
    from types import SimpleNamespace

    from nextbest.recommend.ranking.learned import _store_values
    from nextbest.twostage.store.offline import ReaderAt

    train = typed_sessions()
    early, after = train.take(np.arange(300)), train.take(np.arange(300, 400))
    generators = Generators.fit(SPEC.generators, early)
    cases = Cases.of(after)
    data, _ = generators.candidates(cases, store_features=NAMES)
    store = EventsAsOf(typed_events([early, after]))
    compared = 0
    for case in range(0, cases.n_cases, 25):
        rows = np.flatnonzero(data.case == case)
        session = cases.session[case]
        start, target = after.offsets[session], cases.target[case]
        recent = [SimpleNamespace(item_id=after.item_ids[j]) for j in after.items[start:target]]
        moment = after.times[target - 1]
        ctx = SimpleNamespace(
            feature_store=ReaderAt(store, moment),
            record=SimpleNamespace(recent=recent),
            query=SimpleNamespace(user_id=after.user_ids[session]),
        )
        ids = [str(i) for i in early.item_ids[data.item[rows]]]
        served = _store_values(ctx, ids, NAMES)  # type: ignore[arg-type]
        for name in NAMES:
            trained = data.features[rows, data.names.index(f"store.{name}")]
            np.testing.assert_array_equal(served[name], trained, err_msg=name)
        compared += 1
    assert compared >= 3


def test_store_features_are_features_of_the_store() -> None:
    check_store_features(NAMES)
    with pytest.raises(ValueError, match="unknown feature"):
        check_store_features(["item.nope"])


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
    version = write_online(connect(url), prefix, done.as_of, done.online_tables())
    # what the server reads equals what training computes for a case on the store's day
    reader = client.app.state.services.recommender.feature_store  # type: ignore[attr-defined]
    items = [item(j) for j in range(20)]
    keys = {
        "item": items,
        "user": [f"u{k}" for k in range(17)],
        "pair": [pair_key(item(3), i) for i in items],
    }
    assert isinstance(reader, OnlineFeatures)
    for entity, ids in keys.items():
        names = [n for n in NAMES if n.startswith(entity + ".")]
        served = reader.read(entity, ids, names)
        moments = np.full(len(ids), done.as_of)
        np.testing.assert_array_equal(
            served, EventsAsOf(events).as_of_rows(entity, ids, moments, names)
        )
        assert served[:, 0].max() > 0, entity
    learned, fallback = ranked("learned"), ranked("fallback")
    assert send(client, view("s1", "sf", item(3)), view("s2", "sf", item(4))).status_code == 200
    reply = client.get(
        "/v1/recommendations",
        params={"session_id": "sf", "placement": "next", "n": 5},
        headers=auth(READ),
    )
    assert reply.status_code == 200, reply.text
    assert ranked("learned") == learned + 1 and ranked("fallback") == fallback
    # the operator's dashboard says which day the store serves, and how many of each kind
    board = client.get("/v1/dashboard", headers=auth(ADMIN)).json()["operations"]
    assert board["feature_store"] == {
        "version": version,
        "as_of": done.as_of,
        "rows": done.rows,
        "error": None,
    }
    assert board["ranked_lists"]["learned"] >= 1 and board["event_bus"] is None


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
    board = client.get("/v1/dashboard", headers=auth(ADMIN)).json()["operations"]
    assert board["feature_store"] is None and board["ranked_lists"]["fallback"] >= 1


def test_the_dashboard_names_a_store_with_nothing_materialized(
    start: Callable[..., TestClient], redis_prefix: tuple[str, str]
) -> None:
    url, prefix = redis_prefix
    client = start(redis_url=url, redis_prefix=prefix)
    board = client.get("/v1/dashboard", headers=auth(ADMIN)).json()["operations"]
    assert board["feature_store"]["version"] is None
    assert "nothing materialized" in board["feature_store"]["error"]


def test_the_dashboard_says_when_the_stores_redis_is_down() -> None:
    import redis

    from nextbest.serving.routes.dashboard import feature_store_status

    down = OnlineFeatures(redis.Redis(port=1, socket_connect_timeout=1), "nextbest:")
    found = feature_store_status(down)
    assert found is not None and found.version is None
    assert found.error is not None and found.error.startswith("Redis: ")
    assert feature_store_status(None) is None  # no Redis configured: nothing to show
